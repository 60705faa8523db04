"""Gated activations and packbits kernels against the reference."""
import numpy as np
import pytest
import torch

from flashinfer_ops.reference import activation as ref
from flashinfer_ops.reference import quantization as qref
from helpers import KERNEL_DEVICE, assert_close, needs_kernels, poison, run_kernel, shapes, strided

pytestmark = needs_kernels

ACT_SHAPES = shapes(
    [(1, 64), (1, 128), (4, 256), (8, 512), (1, 2752), (4, 4096), (8, 5504), (16, 7168), (1, 8192), (4, 14336),
     (989, 111), (19, 16384)],
    [(1, 8), (3, 37), (2, 100)],
)


@pytest.mark.parametrize("tokens,d", ACT_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("act", ["silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_act_and_mul(tokens, d, dtype, act, contiguous):
    x = torch.randn(tokens, 2 * d, dtype=dtype, device=KERNEL_DEVICE)
    if not contiguous:
        x = strided(x)
    out = poison(torch.empty(tokens, d, dtype=dtype, device=KERNEL_DEVICE))
    run_kernel(act, out, x)
    assert_close(out, getattr(ref, act)(x), rtol=2e-2 if dtype == torch.bfloat16 else 1e-3)


def test_act_and_mul_3d():
    x = torch.randn(2, 5, 2 * 48, dtype=torch.bfloat16, device=KERNEL_DEVICE)
    out = poison(torch.empty(2, 5, 48, dtype=torch.bfloat16, device=KERNEL_DEVICE))
    run_kernel("silu_and_mul", out, x)
    assert_close(out, ref.silu_and_mul(x))


@pytest.mark.parametrize("n", shapes([1, 10, 99, 128, 999, 5000, 131072, 999999], [1, 10, 99, 130]))
@pytest.mark.parametrize("bitorder", ["big", "little"])
def test_packbits(n, bitorder):
    x = torch.rand(n, device=KERNEL_DEVICE) > 0.5
    out = poison(torch.empty((n + 7) // 8, dtype=torch.uint8, device=KERNEL_DEVICE))
    run_kernel("packbits", out, x, bitorder)
    want = np.packbits(x.cpu().numpy(), bitorder=bitorder)
    assert np.array_equal(out.cpu().numpy(), want)


@pytest.mark.parametrize("batch", shapes([1, 10, 99, 128, 777, 999], [1, 4]))
@pytest.mark.parametrize("bitorder", ["big", "little"])
def test_segment_packbits(batch, bitorder):
    lens = torch.randint(0, 1000 if batch < 200 else 100, (batch,))
    ip = torch.cat([torch.zeros(1, dtype=torch.int64), lens.cumsum(0)]).to(torch.int32)
    x = torch.rand(int(ip[-1]), device=KERNEL_DEVICE) > 0.5
    want, new_ip = qref.segment_packbits(x.cpu(), ip, bitorder)
    out = poison(torch.empty(want.numel(), dtype=torch.uint8, device=KERNEL_DEVICE))
    run_kernel("segment_packbits", out, x, ip.to(KERNEL_DEVICE), new_ip.to(KERNEL_DEVICE), bitorder)
    assert torch.equal(out.cpu(), want)
