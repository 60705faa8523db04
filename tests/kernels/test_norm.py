"""Triton norm kernels against flashinfer_ops/reference/norm.py (float32 oracle)."""
import itertools

import pytest
import torch

from flashinfer_ops.reference import norm as ref
from helpers import KERNEL_DEVICE, assert_close, needs_kernels, poison, run_kernel, shapes, strided

pytestmark = needs_kernels

BATCHES = shapes([1, 19, 99, 989], [1, 3])
HIDDENS = shapes([111, 500, 1024, 3072, 4096, 8192, 16384], [1, 37, 64])
DTYPES = [torch.float16, torch.bfloat16]
GRID = list(itertools.product(BATCHES, HIDDENS, DTYPES, [True, False]))


def _input(batch, hidden, dtype, contiguous, scale=1.0):
    x = torch.randn(batch, hidden, dtype=torch.float32, device=KERNEL_DEVICE).mul_(scale).to(dtype)
    return x if contiguous else strided(x)


@pytest.mark.parametrize("batch,hidden,dtype,contiguous", GRID)
@pytest.mark.parametrize("gemma", [False, True])
@pytest.mark.parametrize("give_out", [True, False])
def test_rmsnorm(batch, hidden, dtype, contiguous, gemma, give_out):
    x = _input(batch, hidden, dtype, contiguous)
    w = torch.randn(hidden, dtype=dtype, device=KERNEL_DEVICE)
    out = poison(torch.empty_like(x)) if give_out else poison(strided(torch.empty_like(x)))
    run_kernel("gemma_rmsnorm" if gemma else "rmsnorm", out, x, w, 1e-6)
    assert_close(out, ref.rmsnorm(x, w, 1e-6, weight_offset=1.0 if gemma else 0.0))


@pytest.mark.parametrize("batch,hidden,dtype,contiguous", GRID)
@pytest.mark.parametrize("gemma", [False, True])
def test_fused_add_rmsnorm(batch, hidden, dtype, contiguous, gemma):
    x = _input(batch, hidden, dtype, contiguous)
    r = _input(batch, hidden, dtype, contiguous)
    w = torch.randn(hidden, dtype=dtype, device=KERNEL_DEVICE)
    off = 1.0 if gemma else 0.0
    want_x, want_r = ref.fused_add_rmsnorm(x, r, w, 1e-6, weight_offset=off)
    run_kernel("gemma_fused_add_rmsnorm" if gemma else "fused_add_rmsnorm", x, r, w, 1e-6)
    assert_close(r, want_r)
    assert_close(x, want_x)


@pytest.mark.parametrize("batch,hidden,dtype,contiguous", GRID)
def test_layernorm(batch, hidden, dtype, contiguous):
    x = _input(batch, hidden, dtype, contiguous, scale=3.0).add_(1.5)
    g = torch.randn(hidden, device=KERNEL_DEVICE)
    b = torch.randn(hidden, device=KERNEL_DEVICE)
    out = poison(torch.empty_like(x))
    run_kernel("layernorm", out, x, g, b, 1e-5)
    assert_close(out, ref.layernorm(x, g, b, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_3d_qk_norm(dtype):
    """[tokens, heads, head_dim] per-head norm, with q sliced out of a packed qkv tensor."""
    t, h = shapes((77, 32), (5, 3))
    qkv = torch.randn(t, 3 * h, 128, dtype=dtype, device=KERNEL_DEVICE)
    q = qkv[:, :h]
    w = torch.randn(128, dtype=dtype, device=KERNEL_DEVICE)
    out = poison(torch.empty(t, h, 128, dtype=dtype, device=KERNEL_DEVICE))
    run_kernel("rmsnorm", out, q, w, 1e-6)
    assert_close(out, ref.rmsnorm(q, w, 1e-6))


@pytest.mark.parametrize("hidden", shapes([20000, 65536], [40000]))
def test_wide_rows_two_pass(hidden):
    """Rows wider than the single-pass limit take the two-pass kernel."""
    x = torch.randn(3, hidden, dtype=torch.bfloat16, device=KERNEL_DEVICE)
    r = torch.randn_like(x)
    w = torch.randn(hidden, dtype=torch.bfloat16, device=KERNEL_DEVICE)
    out = poison(torch.empty_like(x))
    run_kernel("rmsnorm", out, x, w, 1e-6)
    assert_close(out, ref.rmsnorm(x, w, 1e-6))
    want_x, want_r = ref.fused_add_rmsnorm(x, r, w, 1e-6)
    run_kernel("fused_add_rmsnorm", x, r, w, 1e-6)
    assert_close(r, want_r)
    # the second pass recomputes in + residual in fp32: the unrounded sum is normalised, as in the
    # single pass
    assert_close(x, want_x)
