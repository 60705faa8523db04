"""Shared test helpers: where kernels run, tolerances, poisoning, comparison."""
import os

import pytest
import torch

HAS_GPU = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
# "gpu": full grids through torch.ops on CUDA tensors. "interpret": the CUDA-key implementation
# called directly on CPU tensors in Triton's interpreter, tiny shapes.
KERNEL_MODE = "gpu" if HAS_GPU else ("interpret" if INTERPRET else None)
KERNEL_DEVICE = "cuda" if HAS_GPU else "cpu"
needs_kernels = pytest.mark.skipif(KERNEL_MODE is None, reason="no GPU and TRITON_INTERPRET unset")

# (rtol, atol) by dtype for elementwise/norm outputs.
TOL = {
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float32: (1e-5, 1e-5),
}


def shapes(gpu, interpret):
    """Pick the GPU grid or the small interpreter grid."""
    return gpu if KERNEL_MODE == "gpu" else interpret


def run_kernel(name: str, *args):
    """Run the Triton implementation of flashinfer::<name> (name may be "op.overload")."""
    if KERNEL_MODE == "gpu":
        op, _, overload = name.partition(".")
        getattr(getattr(torch.ops.flashinfer, op), overload or "default")(*args)
    else:
        from flashinfer_ops._library import implementation

        implementation(name, "CUDA")(*args)


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill with NaN (floats) or a sentinel so elements a kernel failed to write are caught."""
    if t.dtype.is_floating_point:
        return t.fill_(float("nan"))
    return t.fill_(-7 if t.dtype.is_signed else 0xA5)


def strided(t: torch.Tensor, pad: int = 7) -> torch.Tensor:
    """The same values as `t` in a tensor whose rows are padded (last dim stays contiguous)."""
    wide = torch.empty(*t.shape[:-1], t.shape[-1] + pad, dtype=t.dtype, device=t.device)
    wide[..., : t.shape[-1]] = t
    return wide[..., : t.shape[-1]]


def assert_close(actual, expected, dtype=None, rtol=None, atol=None):
    dt = dtype or expected.dtype
    r, a = TOL.get(dt, (1e-5, 1e-5))
    torch.testing.assert_close(actual.float(), expected.float(), rtol=rtol or r, atol=atol or a, equal_nan=False)
