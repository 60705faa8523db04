"""Facade behaviour of flashinfer.sampling: parameter conventions, errors, RNG semantics,
torch.compile, CUDA graphs, the raw-op module."""
import pytest
import torch

import flashinfer
import flashinfer.sampling as S
from flashinfer_ops.reference import sampling as ref
from helpers import HAS_GPU

DEV = "cuda" if HAS_GPU else "cpu"


def _probs(b, v, scale=2.0):
    return torch.softmax(torch.randn(b, v, device=DEV) * scale, -1)


def test_exports_and_aliases():
    for name in ("sampling_from_probs", "sampling_from_logits", "top_p_sampling_from_probs", "top_k_sampling_from_probs",
                 "min_p_sampling_from_probs", "top_k_top_p_sampling_from_probs", "top_k_top_p_sampling_from_logits",
                 "top_p_renorm_probs", "top_k_renorm_probs", "top_k_mask_logits", "chain_speculative_sampling",
                 "softmax"):
        assert callable(getattr(flashinfer, name))
    assert S.top_p_renorm_prob is S.top_p_renorm_probs and S.top_k_renorm_prob is S.top_k_renorm_probs


def test_values_through_facade():
    x = torch.randn(5, 64, device=DEV) * 3
    t = torch.rand(5, device=DEV) + 0.3
    torch.testing.assert_close(flashinfer.softmax(x, t), ref.softmax(x, t), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(flashinfer.softmax(x), torch.softmax(x, -1), rtol=1e-4, atol=1e-6)
    p = torch.softmax(x, -1)
    torch.testing.assert_close(flashinfer.top_p_renorm_probs(p, 0.6), ref.top_p_renorm_probs(p, 0.6), rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(flashinfer.top_k_renorm_probs(p, 7), ref.top_k_renorm_probs(p, 7), rtol=1e-3, atol=1e-6)
    assert torch.equal(flashinfer.top_k_mask_logits(x, 7), ref.top_k_mask_logits(x, 7))


@pytest.mark.parametrize("order", ["top_k_first", "joint"])
def test_top_k_top_p_orders_stay_in_support(order):
    x = torch.randn(6, 300, device=DEV) * 3
    p = torch.softmax(x, -1)
    idx = torch.arange(6, device=DEV, dtype=torch.int32).repeat(20)
    sup = ref.sampler_support("top_k_top_p", p, top_k=20, top_p=0.7, filter_apply_order=order)
    for out in (flashinfer.top_k_top_p_sampling_from_probs(p, 20, 0.7, indices=idx, filter_apply_order=order),
                flashinfer.top_k_top_p_sampling_from_logits(x, 20, 0.7, indices=idx, filter_apply_order=order)):
        assert out.dtype == torch.int32 and out.shape == (120,)
        assert sup[idx.long(), out.long()].all()


def test_invalid_filter_apply_order():
    p = _probs(2, 10)
    with pytest.raises(ValueError, match="filter_apply_order"):
        flashinfer.top_k_top_p_sampling_from_probs(p, 3, 0.5, filter_apply_order="top_p_first")
    with pytest.raises(ValueError, match="filter_apply_order"):
        flashinfer.top_k_top_p_sampling_from_logits(p.log(), 3, 0.5, filter_apply_order="bad")


@pytest.mark.parametrize("bad,match", [
    (lambda d: torch.tensor(0.5, device=d), "0-dimensional"),
    (lambda d: torch.full((3, 1), 0.5, device=d), "2D tensor"),
    (lambda d: torch.full((4,), 0.5, device=d), "batch size mismatch"),
])
def test_check_tensor_param(bad, match):
    p = _probs(3, 20)
    for fn in (flashinfer.top_p_sampling_from_probs, flashinfer.min_p_sampling_from_probs, flashinfer.top_p_renorm_probs):
        with pytest.raises(ValueError, match=match):
            fn(p, bad(DEV))
    with pytest.raises(ValueError, match=match):
        flashinfer.softmax(p, bad(DEV))
    # the length must match the input rows even when indices select other rows
    with pytest.raises(ValueError, match="batch size mismatch"):
        flashinfer.top_k_sampling_from_probs(p, torch.full((5,), 3, device=DEV), indices=torch.zeros(5, dtype=torch.int32, device=DEV))


def test_check_nan():
    p = _probs(2, 10)
    p[1, 3] = float("nan")
    with pytest.raises(ValueError, match="Input probs contains NaN."):
        flashinfer.sampling_from_probs(p, check_nan=True)
    with pytest.raises(ValueError, match="Input logits contains NaN."):
        flashinfer.sampling_from_logits(p, check_nan=True)


@pytest.mark.parametrize("name,fn", [
    ("probs", lambda d: flashinfer.sampling_from_probs(torch.rand(10, device=d))),
    ("probs", lambda d: flashinfer.top_p_sampling_from_probs(torch.rand(3, 10, device=d, dtype=torch.float64), 0.5)),
    ("probs", lambda d: flashinfer.top_k_sampling_from_probs(torch.rand(3, 20, device=d)[:, ::2], 3)),
    ("indices", lambda d: flashinfer.sampling_from_probs(torch.rand(3, 10, device=d), indices=torch.zeros(2, 2, dtype=torch.int32, device=d))),
    ("target_probs", lambda d: flashinfer.chain_speculative_sampling(
        torch.rand(2, 3, 8, device=d), torch.zeros(2, 3, dtype=torch.int32, device=d), torch.rand(2, 3, 8, device=d))),
    ("draft_token_ids", lambda d: flashinfer.chain_speculative_sampling(
        torch.rand(2, 3, 8, device=d), torch.zeros(2, 2, dtype=torch.int32, device=d), torch.rand(2, 4, 8, device=d))),
])
def test_bad_input_names_argument(name, fn):
    with pytest.raises(ValueError, match=name):
        fn(DEV)


def test_rng_manual_seed_reproduces_and_calls_differ():
    p = torch.full((64, 1000), 1e-3, device=DEV)
    torch.manual_seed(123)
    a = flashinfer.top_p_sampling_from_probs(p, 0.9)
    b = flashinfer.top_p_sampling_from_probs(p, 0.9)
    torch.manual_seed(123)
    c = flashinfer.top_p_sampling_from_probs(p, 0.9)
    d = flashinfer.top_p_sampling_from_probs(p, 0.9)
    assert not torch.equal(a, b)
    assert torch.equal(a, c) and torch.equal(b, d)


def test_explicit_generator_is_reproducible():
    p = torch.full((64, 1000), 1e-3, device=DEV)
    g1 = torch.Generator(device=DEV).manual_seed(7)
    g2 = torch.Generator(device=DEV).manual_seed(7)
    a1, a2 = flashinfer.sampling_from_probs(p, generator=g1), flashinfer.sampling_from_probs(p, generator=g1)
    b1, b2 = flashinfer.sampling_from_probs(p, generator=g2), flashinfer.sampling_from_probs(p, generator=g2)
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and not torch.equal(a1, a2)


@pytest.mark.gpu
def test_explicit_generator_offset_advances_like_flashinfer():
    p = _probs(5, 100)
    g = torch.Generator(device="cuda").manual_seed(1)
    o0 = g.get_offset()
    flashinfer.top_p_sampling_from_probs(p, 0.5, generator=g)
    assert g.get_offset() == o0 + ref.rng_increment(5 * 32)
    flashinfer.sampling_from_probs(p, generator=g)
    assert g.get_offset() == o0 + ref.rng_increment(5 * 32) + ref.rng_increment(5)
    flashinfer.sampling_from_logits(p, generator=g)
    assert g.get_offset() == o0 + ref.rng_increment(5 * 32) + ref.rng_increment(5) + ref.rng_increment(500)
    # set_offset back reproduces
    g.set_offset(o0)
    x = flashinfer.top_p_sampling_from_probs(torch.full((64, 1000), 1e-3, device="cuda"), 0.9, generator=g)
    g.set_offset(o0)
    y = flashinfer.top_p_sampling_from_probs(torch.full((64, 1000), 1e-3, device="cuda"), 0.9, generator=g)
    assert torch.equal(x, y)


def test_chain_speculative_counts_are_added_to():
    b, n, v = 3, 2, 20
    draft = _probs(b * n, v).reshape(b, n, v)
    target = torch.cat([draft, _probs(b, v).reshape(b, 1, v)], 1)
    ids = torch.multinomial(draft.reshape(-1, v), 1).reshape(b, n).int()
    acc = torch.full((b,), 10, dtype=torch.int32, device=DEV)
    emit = torch.full((b,), 20, dtype=torch.int32, device=DEV)
    out, acc2, emit2 = flashinfer.chain_speculative_sampling(draft, ids, target, acc, emit)
    assert acc2 is acc and emit2 is emit
    assert (acc == 10 + n).all() and (emit == 20 + n).all()
    assert out.shape == (b, n + 1) and torch.equal(out[:, :n], ids)


def test_get_sampling_module_raw_convention():
    m = S.get_sampling_module()
    p = _probs(4, 50)
    out = m.top_k_top_p_sampling_from_probs(p, None, None, 5, None, 0.9, True, None)
    assert out.shape == (4,)
    assert ref.sampler_support("top_k_top_p", p, top_k=5, top_p=0.9)[torch.arange(4), out.long().cpu()].all()
    out = m.top_p_sampling_from_probs(p, None, torch.full((4,), 0.5, device=DEV), 0.0, True, None)
    assert ref.top_p_mask(p, 0.5)[torch.arange(4), out.long().cpu()].all()


# ---- torch.compile / CUDA graphs -------------------------------------------------------------------

def _sampler(logits):
    return flashinfer.top_k_top_p_sampling_from_logits(logits, 10, 0.8, filter_apply_order="joint")


def test_compile_fullgraph():
    backend = "inductor" if HAS_GPU else "aot_eager"
    f = torch.compile(_sampler, fullgraph=True, backend=backend)
    x = torch.randn(4, 100, device=DEV) * 3
    out = f(x)
    sup = ref.sampler_support("top_k_top_p", torch.softmax(x, -1), top_k=10, top_p=0.8)
    assert sup[torch.arange(4), out.long().cpu()].all()
    g = torch.compile(lambda x: flashinfer.softmax(x, 0.7), fullgraph=True, backend=backend)
    torch.testing.assert_close(g(x), torch.softmax(x / 0.7, -1), rtol=1e-4, atol=1e-6)
    h = torch.compile(lambda p: flashinfer.top_p_renorm_probs(p, 0.5), fullgraph=True, backend=backend)
    p = torch.softmax(x, -1)
    torch.testing.assert_close(h(p), ref.top_p_renorm_probs(p, 0.5), rtol=1e-3, atol=1e-6)


def test_compiled_sampler_draws_fresh_numbers_and_reseeds():
    backend = "inductor" if HAS_GPU else "aot_eager"
    f = torch.compile(lambda p: flashinfer.sampling_from_probs(p), fullgraph=True, backend=backend)
    p = torch.full((64, 1000), 1e-3, device=DEV)
    torch.manual_seed(5)
    a, b = f(p), f(p)
    torch.manual_seed(5)
    c = f(p)
    assert not torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.gpu
def test_cuda_graph_replays_differ_and_reseed_reproduces():
    p = torch.full((64, 1000), 1e-3, device="cuda")
    x = torch.randn(8, 4000, device="cuda")
    out = {}

    def step():
        out["a"] = flashinfer.top_p_sampling_from_probs(p, 0.9)
        out["b"] = flashinfer.top_k_top_p_sampling_from_logits(x, 20, 0.9)

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()

    def series():
        res = []
        for _ in range(3):
            g.replay()
            res.append((out["a"].clone(), out["b"].clone()))
        return res

    torch.manual_seed(11)
    r1 = series()
    torch.manual_seed(11)
    r2 = series()
    assert not torch.equal(r1[0][0], r1[1][0])
    for (a1, b1), (a2, b2) in zip(r1, r2):
        assert torch.equal(a1, a2) and torch.equal(b1, b2)
    sup = ref.sampler_support("top_k_top_p", torch.softmax(x, -1), top_k=20, top_p=0.9, filter_apply_order="top_k_first")
    for _, b in r1:
        assert sup[torch.arange(8, device="cuda"), b.long()].all()


@pytest.mark.parametrize("split", ["1", "0"])
def test_top_k_first_from_logits_both_paths(split, monkeypatch):
    """FLASHINFER_SAMPLING_SPLIT=1: one operator (vocabulary-split kernels on a GPU); =0: the three
    separate ops. Both draw inside the top-k-first support and advance the generator alike."""
    monkeypatch.setenv("FLASHINFER_SAMPLING_SPLIT", split)
    x = torch.randn(5, 400, device=DEV) * 3
    idx = torch.arange(5, device=DEV, dtype=torch.int32).repeat(10)
    g = torch.Generator(device=DEV).manual_seed(3)
    o0 = g.get_offset() if HAS_GPU else None
    for k, p in ((7, 0.6), (torch.tensor([1, 3, 5, 400, 0], dtype=torch.int32, device=DEV), 0.9)):
        out = flashinfer.top_k_top_p_sampling_from_logits(x, k, p, indices=idx, generator=g)
        sup = ref.sampler_support("top_k_top_p", torch.softmax(x, -1), top_k=k, top_p=p,
                                  filter_apply_order="top_k_first")
        assert out.dtype == torch.int32 and sup[idx.long(), out.long()].all()
    if HAS_GPU:
        assert g.get_offset() == o0 + 2 * ref.rng_increment(50 * 32)


def test_top_k_first_from_logits_check_nan(monkeypatch):
    monkeypatch.setenv("FLASHINFER_SAMPLING_SPLIT", "1")
    x = torch.randn(2, 30, device=DEV)
    x[1, 4] = float("nan")
    with pytest.raises(ValueError, match="Input logits contains NaN."):
        flashinfer.top_k_top_p_sampling_from_logits(x, 5, 0.9, check_nan=True)
