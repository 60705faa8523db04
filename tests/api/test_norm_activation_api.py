"""Facade behaviour of norm / activation / packbits: results, out=, errors, compile, export, graphs,
and rmsnorm's backend routing (with the recording fake AITER)."""
import sys

import numpy as np
import pytest
import torch

import fake_aiter
import flashinfer
from flashinfer_ops.aiter.norm import select_rmsnorm_backend
from flashinfer_ops.reference import activation as aref
from flashinfer_ops.reference import norm as ref
from helpers import HAS_GPU, assert_close

DEV = "cuda" if HAS_GPU else "cpu"


def test_version_string():
    assert flashinfer.__version__.startswith("0.5.3+rocm.")


def test_rmsnorm_out_is_returned_and_written():
    x = torch.randn(4, 64, dtype=torch.bfloat16, device=DEV)
    w = torch.randn(64, dtype=torch.bfloat16, device=DEV)
    out = torch.full_like(x, float("nan"))
    got = flashinfer.rmsnorm(x, w, eps=1e-5, out=out, enable_pdl=True)
    assert got is out
    assert_close(out, ref.rmsnorm(x, w, 1e-5))


def test_fused_add_mutates_both():
    x = torch.randn(3, 32, dtype=torch.float16, device=DEV)
    r = torch.randn_like(x)
    w = torch.randn(32, dtype=torch.float16, device=DEV)
    want_x, want_r = ref.fused_add_rmsnorm(x, r, w, 1e-6)
    assert flashinfer.fused_add_rmsnorm(x, r, w) is None
    assert_close(x, want_x)
    assert_close(r, want_r)


def test_layernorm_works():
    x = torch.randn(5, 96, dtype=torch.bfloat16, device=DEV)
    g, b = torch.randn(96, device=DEV), torch.randn(96, device=DEV)
    assert_close(flashinfer.layernorm(x, g, b, 1e-5), ref.layernorm(x, g, b, 1e-5))


def test_activations_and_packbits():
    x = torch.randn(2, 3, 80, dtype=torch.float16, device=DEV)
    assert_close(flashinfer.silu_and_mul(x), aref.silu_and_mul(x))
    assert_close(flashinfer.gelu_and_mul(x), aref.gelu_and_mul(x))
    assert_close(flashinfer.gelu_tanh_and_mul(x), aref.gelu_tanh_and_mul(x))
    bits = torch.rand(37, device=DEV) > 0.5
    assert np.array_equal(flashinfer.packbits(bits, "little").cpu().numpy(), np.packbits(bits.cpu().numpy(), bitorder="little"))
    y, ip = flashinfer.segment_packbits(bits, torch.tensor([0, 9, 9, 37], dtype=torch.int32, device=DEV), "big")
    assert ip.tolist() == [0, 2, 2, 6] and y.shape == (6,)


# ---- bad input: ValueError naming the argument, nothing written ------------------------------

def _bad_cases():
    bf, f16 = torch.bfloat16, torch.float16
    x = lambda *s, dt=bf: torch.randn(*s, dtype=dt, device=DEV)  # noqa: E731
    return [
        ("input", lambda: flashinfer.rmsnorm(x(4, 8, dt=torch.float32), x(8, dt=torch.float32))),
        ("input", lambda: flashinfer.rmsnorm(x(8), x(8))),
        ("weight", lambda: flashinfer.rmsnorm(x(4, 8), x(9))),
        ("weight", lambda: flashinfer.rmsnorm(x(4, 8), x(8, dt=f16))),
        ("out", lambda: flashinfer.rmsnorm(x(4, 8), x(8), out=x(4, 9))),
        ("input", lambda: flashinfer.rmsnorm(x(4, 16)[:, ::2], x(8))),
        ("residual", lambda: flashinfer.fused_add_rmsnorm(x(4, 8), x(3, 8), x(8))),
        ("residual", lambda: flashinfer.gemma_fused_add_rmsnorm(x(4, 8), x(4, 8, dt=f16), x(8))),
        ("gamma", lambda: flashinfer.layernorm(x(4, 8), x(8), torch.randn(8, device=DEV))),
        ("input", lambda: flashinfer.silu_and_mul(x(4, 7))),
        ("input", lambda: flashinfer.gelu_and_mul(x(4, 8, dt=torch.float32))),
        ("out", lambda: flashinfer.silu_and_mul(x(4, 8), out=x(4, 8))),
        ("bitorder", lambda: flashinfer.packbits(x(8), "middle")),
        ("backend", lambda: flashinfer.rmsnorm(x(4, 8), x(8), backend="cudnn")),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_input_raises_value_error_naming_argument(case):
    name, call = _bad_cases()[case]
    with pytest.raises(ValueError, match=name):
        call()


def test_rejected_fused_add_writes_nothing():
    x = torch.randn(4, 8, dtype=torch.bfloat16, device=DEV)
    r = torch.randn(4, 8, dtype=torch.bfloat16, device=DEV)
    x0, r0 = x.clone(), r.clone()
    with pytest.raises(ValueError, match="weight"):
        flashinfer.fused_add_rmsnorm(x, r, torch.randn(9, dtype=torch.bfloat16, device=DEV))
    assert torch.equal(x, x0) and torch.equal(r, r0)


# ---- torch.compile / export / graphs -----------------------------------------------------------

class Block(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(hidden, dtype=torch.bfloat16), requires_grad=False)

    def forward(self, x, residual):
        h = flashinfer.silu_and_mul(torch.cat([x, x], -1))
        flashinfer.fused_add_rmsnorm(h, residual, self.w)
        return flashinfer.rmsnorm(h, self.w) + residual


def test_torch_compile_fullgraph_no_graph_break():
    m = Block(64).to(DEV)
    x = torch.randn(5, 64, dtype=torch.bfloat16, device=DEV)
    r = torch.randn(5, 64, dtype=torch.bfloat16, device=DEV)
    want = m(x.clone(), r.clone())
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager" if DEV == "cpu" else "inductor")
    got = compiled(x.clone(), r.clone())
    assert_close(got, want)


def test_torch_export_round_trip(tmp_path):
    m = Block(32).to(DEV)
    x = torch.randn(3, 32, dtype=torch.bfloat16, device=DEV)
    r = torch.randn(3, 32, dtype=torch.bfloat16, device=DEV)
    ep = torch.export.export(m, (x, r.clone()))
    path = tmp_path / "block.pt2"
    torch.export.save(ep, str(path))
    loaded = torch.export.load(str(path))
    assert_close(loaded.module()(x, r.clone()), m(x, r.clone()))
    assert any("flashinfer" in str(n.target) for n in ep.graph.nodes)


@pytest.mark.gpu
def test_cuda_graph_capture_and_replay():
    x = torch.randn(128, 4096, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(4096, dtype=torch.bfloat16, device="cuda")
    out = torch.empty_like(x)
    flashinfer.rmsnorm(x, w, out=out)  # warm up (compiles the kernel)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        flashinfer.rmsnorm(x, w, out=out)
        y = flashinfer.silu_and_mul(x)
    for _ in range(2):
        x.copy_(torch.randn_like(x))
        g.replay()
        torch.cuda.synchronize()
        assert_close(out, ref.rmsnorm(x, w, 1e-6))
        assert_close(y, aref.silu_and_mul(x), rtol=2e-2, atol=2e-2)


# ---- backend routing ---------------------------------------------------------------------------

def test_rmsnorm_backend_rule():
    assert select_rmsnorm_backend("auto", True) == "native"
    assert select_rmsnorm_backend("auto", False) == "native"
    assert select_rmsnorm_backend("native", True) == "native"
    assert select_rmsnorm_backend("aiter", True) == "aiter"
    with pytest.raises(ImportError, match="aiter"):
        select_rmsnorm_backend("aiter", False)
    with pytest.raises(ValueError, match="backend"):
        select_rmsnorm_backend("fa3", True)


def test_rmsnorm_aiter_without_aiter_is_a_clear_error():
    if "aiter" in sys.modules:
        pytest.skip("an aiter module is loaded in this process")
    from flashinfer_ops.aiter import aiter_overloads_loaded

    if aiter_overloads_loaded():
        pytest.skip("the fake aiter was registered earlier in this process")
    with pytest.raises(ImportError, match="AITER"):
        flashinfer.rmsnorm(torch.randn(2, 8, dtype=torch.bfloat16), torch.randn(8, dtype=torch.bfloat16), backend="aiter")


def test_rmsnorm_aiter_adapter_with_fake_aiter():
    saved = {k: v for k, v in sys.modules.items() if k == "aiter" or k.startswith("aiter.")}
    fake = fake_aiter.install()
    try:
        fake.CALLS.clear()
        x = torch.randn(6, 48, dtype=torch.float16)
        w = torch.randn(48, dtype=torch.float16)
        out = torch.empty_like(x)
        got = flashinfer.rmsnorm(x, w, eps=1e-5, out=out, backend="aiter")
        assert got is out
        assert fake.CALLS == [("rms_norm", dict(shape=(6, 48), epsilon=1e-5))]
        assert_close(out, ref.rmsnorm(x, w, 1e-5))
        fake.CALLS.clear()
        flashinfer.rmsnorm(x, w, backend="auto")
        assert fake.CALLS == [], "auto must stay on the Triton kernel"
        with pytest.raises(ValueError, match="2-D"):
            flashinfer.rmsnorm(torch.randn(2, 3, 48, dtype=torch.float16), w, backend="aiter")
    finally:
        for k in [k for k in sys.modules if k == "aiter" or k.startswith("aiter.")]:
            del sys.modules[k]
        sys.modules.update(saved)
