"""The cached-compiled-kernel launch path (flashinfer_ops/_launch.py) must only reuse a kernel
where Triton would: tensors of another alignment or ints of another divisibility class get their
own compile, and results stay right when calls alternate between them."""
import pytest
import torch

import flashinfer
from flashinfer_ops import _launch
from flashinfer_ops.reference import norm as ref
from helpers import assert_close


@pytest.mark.gpu
def test_alternating_specialisations_stay_correct():
    w = torch.randn(4096, dtype=torch.bfloat16, device="cuda")
    base = torch.randn(64 * 4096 + 8, dtype=torch.bfloat16, device="cuda")
    aligned = base[: 64 * 4096].view(64, 4096)
    misaligned = base[1: 1 + 64 * 4096].view(64, 4096)  # data_ptr off by 2 bytes: not 16-aligned
    odd = torch.randn(33, 4000, dtype=torch.bfloat16, device="cuda")[:, :3999]  # odd hidden and row stride
    w_odd = torch.randn(3999, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        for x, ww in ((aligned, w), (misaligned, w), (odd, w_odd), (aligned[:1], w)):
            assert_close(flashinfer.rmsnorm(x, ww), ref.rmsnorm(x, ww, 1e-6))
    from flashinfer_ops.kernels.norm import norm_kernel

    keys = [k for k in _launch._CACHE if k[0] == id(norm_kernel)]
    assert len(keys) >= 3, "aligned, misaligned and odd-stride calls must not share one compiled kernel"


@pytest.mark.gpu
def test_fast_path_is_used_after_the_first_call(monkeypatch):
    x = torch.randn(8, 1024, dtype=torch.float16, device="cuda")
    w = torch.randn(1024, dtype=torch.float16, device="cuda")
    flashinfer.rmsnorm(x, w)
    calls = []
    from flashinfer_ops.kernels import norm as kn

    real_getitem = type(kn.norm_kernel).__getitem__
    monkeypatch.setattr(type(kn.norm_kernel), "__getitem__", lambda self, grid: calls.append(grid) or real_getitem(self, grid))
    out = flashinfer.rmsnorm(x, w)
    assert calls == [], "a cached specialisation should launch without Triton's binder"
    assert_close(out, ref.rmsnorm(x, w, 1e-6))
