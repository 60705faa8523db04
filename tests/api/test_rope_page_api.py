"""Facade behaviour of flashinfer.rope / flashinfer.page: results, indptr/offsets mapping, errors,
validation before writes, backend routing and the AITER adapter (recording fake), torch.compile,
CUDA graphs. On CPU the dispatcher runs the reference kernels; on a GPU the Triton kernels."""
import sys

import pytest
import torch

import fake_aiter
import flashinfer
import flashinfer.page as fpage
import flashinfer.rope as frope
from flashinfer_ops.aiter.page import select_append_backend, slot_mapping
from flashinfer_ops.reference import page as pref
from helpers import HAS_GPU, assert_close, strided

DEV = "cuda" if HAS_GPU else "cpu"


def _qk(nnz=7, hq=4, hk=2, d=64, dtype=torch.bfloat16):
    qkv = torch.randn(nnz, hq + 2 * hk, d, dtype=dtype, device=DEV)
    return qkv[:, :hq], qkv[:, hq:hq + hk]


# ---- RoPE facade -------------------------------------------------------------------------------

@pytest.mark.parametrize("llama31", [False, True])
def test_indptr_offsets_forms_equal_pos_ids_forms(llama31):
    q, k = _qk(9)
    indptr = torch.tensor([0, 2, 2, 9], dtype=torch.int32, device=DEV)
    offsets = torch.tensor([5, 0, 100], dtype=torch.int32, device=DEV)
    pos = torch.tensor([5, 6, 100, 101, 102, 103, 104, 105, 106], dtype=torch.int32, device=DEV)
    f_ragged = flashinfer.apply_llama31_rope if llama31 else flashinfer.apply_rope
    f_pos = flashinfer.apply_llama31_rope_pos_ids if llama31 else flashinfer.apply_rope_pos_ids
    qa, ka = f_ragged(q, k, indptr, offsets, rotary_dim=32, interleave=True)
    qb, kb = f_pos(q, k, pos, rotary_dim=32, interleave=True)
    assert torch.equal(qa, qb) and torch.equal(ka, kb)
    q2, k2 = q.clone(), k.clone()
    (flashinfer.apply_llama31_rope_inplace if llama31 else flashinfer.apply_rope_inplace)(
        q2, k2, indptr, offsets, rotary_dim=32, interleave=True)
    assert torch.equal(q2, qa) and torch.equal(k2, ka)
    q3, k3 = q.clone(), k.clone()
    (flashinfer.apply_llama31_rope_pos_ids_inplace if llama31 else flashinfer.apply_rope_pos_ids_inplace)(
        q3, k3, pos.long(), rotary_dim=32, interleave=True)
    assert torch.equal(q3, qa) and torch.equal(k3, ka)
    # partial rotary: the tail passes through unchanged
    assert torch.equal(qa[..., 32:], q[..., 32:])


def test_rotary_dim_none_is_head_dim():
    q, k = _qk()
    pos = torch.arange(7, device=DEV)
    a = flashinfer.apply_rope_pos_ids(q, k, pos)
    b = flashinfer.apply_rope_pos_ids(q, k, pos, rotary_dim=64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("is_neox", [True, False])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cos_sin_cache_nonplace_equals_inplace(is_neox, dtype):
    nnz, hs = 5, 64
    query = torch.randn(nnz, 4 * hs, dtype=dtype, device=DEV)
    key = strided(torch.randn(nnz, 2 * hs, dtype=dtype, device=DEV))
    cache = torch.randn(100, 32, device=DEV)
    pos = torch.randint(0, 100, (nnz,), device=DEV)
    q0, k0 = query.clone(), key.clone()
    qo, ko = flashinfer.apply_rope_with_cos_sin_cache(pos, query, key, hs, cache, is_neox)
    assert torch.equal(query, q0) and torch.equal(key, k0)
    assert qo.shape == query.shape and ko.shape == key.shape
    flashinfer.apply_rope_with_cos_sin_cache_inplace(pos, query, key, hs, cache, is_neox)
    assert torch.equal(query, qo) and torch.equal(key, ko)


def test_cos_sin_cache_must_be_float32():
    q = torch.randn(3, 64, dtype=torch.bfloat16, device=DEV)
    with pytest.raises(ValueError, match="cos_sin_cache should be float32"):
        flashinfer.apply_rope_with_cos_sin_cache(torch.arange(3, device=DEV), q, q.clone(), 64,
                                                 torch.randn(10, 64, dtype=torch.bfloat16, device=DEV))


def test_cos_sin_cache_positions_checked_before_writing(monkeypatch):
    monkeypatch.setenv("FLASHINFER_CHECK_INPUTS", "1")
    q = torch.randn(3, 64, dtype=torch.bfloat16, device=DEV)
    k = q.clone()
    q0 = q.clone()
    with pytest.raises(ValueError, match="positions"):
        flashinfer.apply_rope_with_cos_sin_cache_inplace(torch.tensor([0, 1, 10], device=DEV), q, k, 64,
                                                         torch.randn(10, 64, device=DEV))
    assert torch.equal(q, q0)


@pytest.mark.parametrize("case", ["rotary_dim", "dtype", "pos_len", "kdim", "offsets_dtype"])
def test_rope_bad_input_raises_before_writing(case):
    q, k = _qk()
    q0, k0 = q.clone(), k.clone()
    pos = torch.arange(7, device=DEV)
    with pytest.raises(ValueError, match={"rotary_dim": "rotary_dim", "dtype": "q", "pos_len": "pos_ids",
                                          "kdim": "k", "offsets_dtype": "offsets"}[case]):
        if case == "rotary_dim":
            flashinfer.apply_rope_pos_ids_inplace(q, k, pos, rotary_dim=65)
        elif case == "dtype":
            flashinfer.apply_rope_pos_ids_inplace(q.float(), k.float(), pos)
        elif case == "pos_len":
            flashinfer.apply_rope_pos_ids_inplace(q, k, pos[:5])
        elif case == "kdim":
            flashinfer.apply_rope_pos_ids_inplace(q, k[..., :32], pos)
        else:
            flashinfer.apply_rope_inplace(q, k, torch.tensor([0, 7], dtype=torch.int32, device=DEV),
                                          torch.tensor([0], dtype=torch.int64, device=DEV))
    assert torch.equal(q, q0) and torch.equal(k, k0)


@pytest.mark.parametrize("mla", [False, True])
def test_rope_quantize_fp8_default_dtype_works(mla):
    """FlashInfer+ROCm rejects its own default quantize_dtype; ours is the device's e4m3."""
    nnz = 5
    q_rope = torch.randn(nnz, 4, 64, dtype=torch.bfloat16, device=DEV)
    k_rope = torch.randn(*((nnz,) if mla else (nnz, 2)), 64, dtype=torch.bfloat16, device=DEV)
    q_nope = torch.randn(nnz, 4, 128, dtype=torch.bfloat16, device=DEV)
    k_nope = torch.randn(*k_rope.shape[:-1], 128, dtype=torch.bfloat16, device=DEV)
    cache = torch.randn(64, 64, device=DEV)
    pos = torch.randint(0, 64, (nnz,), device=DEV)  # int64: coerced
    fn = frope.mla_rope_quantize_fp8 if mla else frope.rope_quantize_fp8
    outs = fn(q_rope, k_rope, q_nope, k_nope, cache, pos)
    assert all(o.dtype == frope.default_fp8_dtype(q_rope.device) for o in outs)
    assert_close(outs[2].float(), q_nope.float(), rtol=0.07, atol=1e-2)
    outs2 = fn(q_rope, k_rope, None, None, cache, pos, quantize_dtype=torch.float8_e5m2fnuz)
    assert outs2[0].dtype == torch.float8_e5m2fnuz and outs2[2].shape == (nnz, 4, 0)


@pytest.mark.parametrize("layout", ["NHD", "HND"])
def test_rope_quantize_fp8_append_facade(layout):
    nnz, hk, ps = 6, 2, 4
    q_rope = torch.randn(nnz, 4, 32, dtype=torch.float16, device=DEV)
    k_rope = torch.randn(nnz, hk, 32, dtype=torch.float16, device=DEV)
    v = torch.randn(nnz, hk, 32, dtype=torch.float16, device=DEV)
    cache = torch.randn(64, 32, device=DEV)
    pos = torch.arange(nnz, device=DEV)
    shape = (3, ps, hk, 32) if layout == "NHD" else (3, hk, ps, 32)
    kc = torch.zeros(shape, dtype=torch.float8_e4m3fnuz, device=DEV)
    vc = torch.zeros(shape, dtype=torch.float8_e4m3fnuz, device=DEV)
    indices = torch.tensor([2, 0], dtype=torch.int32)  # CPU page table: validated, then moved
    indptr = torch.tensor([0, 2], dtype=torch.int32)
    b = torch.zeros(nnz, dtype=torch.int32)
    p = torch.arange(nnz, dtype=torch.int32)
    qo, qn = frope.rope_quantize_fp8_append_paged_kv_cache(
        q_rope, k_rope, None, None, v, cache, pos, (kc, vc), indices, indptr, b, p, page_size=ps,
        kv_layout=layout, quantize_dtype=torch.float8_e4m3fnuz)
    assert qo.dtype == torch.float8_e4m3fnuz and qn.shape == (nnz, 4, 0)
    vcn = vc if layout == "NHD" else vc.transpose(1, 2)
    got_v = torch.cat([vcn[2], vcn[0]])[:nnz].float()
    assert_close(got_v, v.float(), rtol=0.07, atol=2e-2)
    with pytest.raises(ValueError, match="page_size"):
        frope.rope_quantize_fp8_append_paged_kv_cache(
            q_rope, k_rope, None, None, v, cache, pos, (kc, vc), indices, indptr, b, p, page_size=16,
            kv_layout=layout, quantize_dtype=torch.float8_e4m3fnuz)
    with pytest.raises(ValueError, match="positions"):
        frope.rope_quantize_fp8_append_paged_kv_cache(
            q_rope, k_rope, None, None, v, cache, pos, (kc, vc), indices, indptr, b, p + 3, page_size=ps,
            kv_layout=layout, quantize_dtype=torch.float8_e4m3fnuz)


# ---- paged KV ----------------------------------------------------------------------------------

def test_get_seq_lens_and_batch_indices_positions():
    kv_indptr = torch.tensor([0, 1, 3, 3, 7], dtype=torch.int32, device=DEV)
    last = torch.tensor([5, 16, 1, 3], dtype=torch.int32, device=DEV)
    seq = flashinfer.get_seq_lens(kv_indptr, last, 16)
    assert seq.tolist() == [5, 32, 1, 51]
    append_indptr = torch.tensor([0, 2, 2, 3, 7], dtype=torch.int32, device=DEV)
    b, p = flashinfer.get_batch_indices_positions(append_indptr, seq, 7)
    assert b.dtype == torch.int32 and p.dtype == torch.int32
    assert b.tolist() == [0, 0, 2, 3, 3, 3, 3]
    assert p.tolist() == [3, 4, 0, 47, 48, 49, 50]


def _table(lens, ps, device=DEV):
    npages = [-(-n // ps) for n in lens]
    indices = torch.randperm(sum(npages) + 2)[: sum(npages)].to(torch.int32)
    indptr = torch.tensor([0] + torch.tensor(npages).cumsum(0).tolist(), dtype=torch.int32)
    last = torch.tensor([n - (q - 1) * ps for n, q in zip(lens, npages)], dtype=torch.int32)
    append_indptr = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32)
    seq = pref.get_seq_lens(indptr, last, ps)
    b, p = pref.get_batch_indices_positions(append_indptr, seq, sum(lens))
    return sum(npages) + 2, *(t.to(device) for t in (indices, indptr, last, b, p))


@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("form", ["5d", "tuple"])
def test_append_paged_kv_cache_facade(layout, form):
    lens, ps, h, d = (5, 17, 1), 4, 2, 32
    num_pages, indices, indptr, last, b, p = _table(lens, ps)
    shape = (num_pages, ps, h, d) if layout == "NHD" else (num_pages, h, ps, d)
    cache = torch.zeros(num_pages, 2, *shape[1:], dtype=torch.bfloat16, device=DEV)
    kv = cache if form == "5d" else tuple(cache.unbind(1))
    k = torch.randn(sum(lens), h, d, dtype=torch.bfloat16, device=DEV)
    v = torch.randn(sum(lens), h, d, dtype=torch.bfloat16, device=DEV)
    flashinfer.append_paged_kv_cache(k, v, b, p, kv, indices, indptr, last, kv_layout=layout, backend="native")
    kc, vc = cache.unbind(1)
    page, slot = pref.page_slots(b, p, indices, indptr, ps)
    rd = (lambda c: c[page, slot]) if layout == "NHD" else (lambda c: c[page, :, slot])
    assert torch.equal(rd(kc), k) and torch.equal(rd(vc), v)


def test_append_fp8_cache_and_dtype_mismatch():
    num_pages, indices, indptr, last, b, p = _table((6,), 4)
    kc = torch.zeros(num_pages, 4, 2, 16, dtype=torch.float8_e4m3fnuz, device=DEV)
    vc = torch.zeros_like(kc)
    k = torch.randn(6, 2, 16, device=DEV).to(torch.float8_e4m3fnuz)
    flashinfer.append_paged_kv_cache(k, k, b, p, (kc, vc), indices, indptr, last)
    page, slot = pref.page_slots(b, p, indices, indptr, 4)
    assert torch.equal(kc[page, slot].view(torch.uint8), k.view(torch.uint8))
    with pytest.raises(ValueError, match="append_key"):
        other_format = torch.randn(6, 2, 16, device=DEV).to(torch.float8_e4m3fn)
        flashinfer.append_paged_kv_cache(other_format, k, b, p, (kc, vc), indices, indptr, last)


@pytest.mark.parametrize("case", ["past_pages", "page_id", "strides", "batch", "kv_layout"])
def test_append_validation_rejects_before_any_write(case, monkeypatch):
    monkeypatch.setenv("FLASHINFER_CHECK_INPUTS", "1")  # also validate device index tensors
    num_pages, indices, indptr, last, b, p = _table((5, 3), 4)
    kc = torch.zeros(num_pages, 4, 2, 16, dtype=torch.float16, device=DEV)
    vc = torch.zeros_like(kc)
    k = torch.randn(8, 2, 16, dtype=torch.float16, device=DEV)
    err, match = ValueError, case
    if case == "past_pages":
        p = p.clone()
        p[3] = 8  # request 0 owns 2 pages of 4 slots
        match = "past the request's 2 pages"
    elif case == "page_id":
        indices = indices.clone()
        indices[0] = num_pages
        match = "kv_indices"
    elif case == "strides":
        vc = torch.zeros(num_pages, 4, 2, 32, dtype=torch.float16, device=DEV)[..., :16]
        match = "identical strides"
    elif case == "batch":
        b = b.clone()
        b[0] = 2
        match = "batch_indices"
    else:
        err, match = KeyError, "kv_layout"
    with pytest.raises(err, match=match):
        flashinfer.append_paged_kv_cache(k, k, b, p, (kc, vc), indices, indptr, last,
                                         kv_layout="NDH" if case == "kv_layout" else "NHD")
    assert not kc.any() and not vc.any(), "a rejected append must write nothing"


def test_append_paged_mla_kv_cache_facade():
    num_pages, indices, indptr, last, b, p = _table((3, 6), 4)
    ckv = torch.zeros(num_pages, 4, 64, dtype=torch.bfloat16, device=DEV)
    kpe = torch.zeros(num_pages, 4, 16, dtype=torch.bfloat16, device=DEV)
    a_c = torch.randn(9, 64, dtype=torch.bfloat16, device=DEV)
    a_p = torch.randn(9, 16, dtype=torch.bfloat16, device=DEV)
    fpage.append_paged_mla_kv_cache(a_c, a_p, b, p, ckv, kpe, indices, indptr, last)
    page, slot = pref.page_slots(b, p, indices, indptr, 4)
    assert torch.equal(ckv[page, slot], a_c) and torch.equal(kpe[page, slot], a_p)


# ---- routing and the AITER adapter -------------------------------------------------------------

def test_append_backend_rule():
    bf, h = torch.bfloat16, torch.float16
    assert select_append_backend("auto", "gfx942", "NHD", h, True) == "aiter"
    assert select_append_backend("auto", "gfx950", "NHD", bf, True) == "aiter"
    assert select_append_backend("auto", "gfx942", "HND", h, True) == "native"
    assert select_append_backend("auto", "gfx942", "NHD", torch.float32, True) == "native"
    assert select_append_backend("auto", "gfx942", "NHD", torch.float8_e4m3fnuz, True) == "native"
    assert select_append_backend("auto", "gfx942", "NHD", h, False) == "native"
    assert select_append_backend("auto", "gfx90a", "NHD", h, True) == "native"
    assert select_append_backend("auto", "", "NHD", h, True) == "native"
    assert select_append_backend("native", "gfx942", "NHD", h, True) == "native"
    assert select_append_backend("aiter", "", "NHD", h, True) == "aiter"
    with pytest.raises(ImportError, match="AITER"):
        select_append_backend("aiter", "gfx942", "NHD", h, False)
    with pytest.raises(ValueError, match="kv_layout"):
        select_append_backend("aiter", "gfx942", "HND", h, True)
    with pytest.raises(ValueError, match="Unknown backend"):
        select_append_backend("fa2", "gfx942", "NHD", h, True)


def test_slot_mapping_marks_bad_tokens_minus_one():
    indices = torch.tensor([3, 1, 4], dtype=torch.int32)
    indptr = torch.tensor([0, 2, 3], dtype=torch.int32)
    b = torch.tensor([0, 0, 1, 1, 2, 0], dtype=torch.int32)
    p = torch.tensor([0, 5, 2, 4, 0, -1], dtype=torch.int32)
    got = slot_mapping(b, p, indices, indptr, 4, num_pages=5)
    assert got.dtype == torch.int64
    assert got.tolist() == [12, 5, 18, -1, -1, -1]
    assert slot_mapping(b, p, indices, indptr, 4, num_pages=4).tolist() == [12, 5, -1, -1, -1, -1]
    assert slot_mapping(b, p, indices, indptr, 4, num_pages=2).tolist() == [-1, 5, -1, -1, -1, -1]


@pytest.fixture
def fake_aiter_module():
    saved = {k: v for k, v in sys.modules.items() if k == "aiter" or k.startswith("aiter.")}
    fake = fake_aiter.install()
    from flashinfer_ops.aiter import load_aiter_overloads

    assert load_aiter_overloads()
    fake.CALLS.clear()
    yield fake
    for k in [k for k in sys.modules if k == "aiter" or k.startswith("aiter.")]:
        del sys.modules[k]
    sys.modules.update(saved)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("ps", [16, 32])
def test_append_aiter_adapter_matches_native(fake_aiter_module, dtype, ps):
    """Adapter test with the recording fake AITER: proves the slot mapping and the call, nothing
    about AITER's numerics. The result must equal our Triton kernel's (on CPU: the reference)."""
    lens, h, d = (37, 100, 5, 64, 23), 4, 64
    num_pages, indices, indptr, last, b, p = _table(lens, ps)
    k = torch.randn(sum(lens), h, d, dtype=dtype, device=DEV)
    v = torch.randn(sum(lens), h, d, dtype=dtype, device=DEV)
    cache_a = torch.zeros(num_pages, 2, ps, h, d, dtype=dtype, device=DEV)
    cache_n = cache_a.clone()
    flashinfer.append_paged_kv_cache(k, v, b, p, cache_a, indices, indptr, last, backend="aiter")
    flashinfer.append_paged_kv_cache(k, v, b, p, cache_n, indices, indptr, last, backend="native")
    assert torch.equal(cache_a, cache_n)
    (name, call), = fake_aiter_module.CALLS
    assert name == "reshape_and_cache_flash" and call["kv_cache_dtype"] == "auto"
    page, slot = pref.page_slots(b, p, indices, indptr, ps)
    assert call["slot_mapping"] == (page * ps + slot).tolist()
    with pytest.raises(ValueError, match="NHD"):
        flashinfer.append_paged_kv_cache(k, v, b, p, cache_a.transpose(2, 3), indices, indptr, last,
                                         kv_layout="HND", backend="aiter")


def test_auto_stays_native_off_amd(fake_aiter_module):
    num_pages, indices, indptr, last, b, p = _table((3,), 4)
    cache = torch.zeros(num_pages, 2, 4, 1, 8, dtype=torch.float16, device=DEV)
    k = torch.randn(3, 1, 8, dtype=torch.float16, device=DEV)
    flashinfer.append_paged_kv_cache(k, k, b, p, cache, indices, indptr, last)
    assert fake_aiter_module.CALLS == [], "auto must not route to AITER on a non-AMD device"


# ---- torch.compile / CUDA graphs ---------------------------------------------------------------

def _step(q, k, cos_sin_cache, positions, v, kv_cache, b, p, indices, indptr, last):
    flashinfer.apply_rope_with_cos_sin_cache_inplace(positions, q, k, 64, cos_sin_cache)
    flashinfer.apply_rope_pos_ids_inplace(q, k, positions, rotary_dim=32)
    flashinfer.append_paged_kv_cache(k, v, b, p, kv_cache, indices, indptr, last)
    return q * 2


def _step_inputs(nnz=5):
    q = torch.randn(nnz, 4, 64, dtype=torch.bfloat16, device=DEV)
    k = torch.randn(nnz, 2, 64, dtype=torch.bfloat16, device=DEV)
    v = torch.randn(nnz, 2, 64, dtype=torch.bfloat16, device=DEV)
    cache = torch.randn(128, 64, device=DEV)  # rows for every position used
    num_pages, indices, indptr, last, b, p = _table((nnz,), 4)
    positions = p.long()
    kv = torch.zeros(num_pages, 2, 4, 2, 64, dtype=torch.bfloat16, device=DEV)
    return [q, k, cache, positions, v, kv, b, p, indices, indptr, last]


def test_torch_compile_fullgraph_no_graph_break():
    args = _step_inputs()
    want_args = [a.clone() for a in args]
    want = _step(*want_args)
    torch._dynamo.reset()
    compiled = torch.compile(_step, fullgraph=True, backend="aot_eager" if DEV == "cpu" else "inductor")
    got = compiled(*args)
    assert_close(got, want)
    assert torch.equal(args[0], want_args[0]) and torch.equal(args[1], want_args[1])
    assert torch.equal(args[5], want_args[5])


@pytest.mark.gpu
def test_cuda_graph_capture_and_replay():
    args = _step_inputs(64)
    q, k, cache, positions, v, kv = args[:6]
    _step(*[a.clone() for a in args])  # warm up (compiles the kernels)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = _step(*args)
    for _ in range(2):
        fresh = _step_inputs(64)
        for dst, src in zip((q, k, v), (fresh[0], fresh[1], fresh[4])):
            dst.copy_(src)
        kv.zero_()
        want_args = [a.clone() for a in args]
        want = _step(*want_args)
        g.replay()
        torch.cuda.synchronize()
        assert_close(out, want)
        assert torch.equal(kv, want_args[5])
