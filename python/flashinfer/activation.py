"""Gated activations used by MLP blocks: ``act(x[..., :d]) * x[..., d:]``."""
from typing import Optional

import torch

import flashinfer_ops  # noqa: F401

_ops = torch.ops.flashinfer


def _out_for(input: torch.Tensor, out: Optional[torch.Tensor]) -> torch.Tensor:
    if out is not None:
        return out
    return torch.empty(input.shape[:-1] + (input.shape[-1] // 2,), dtype=input.dtype, device=input.device)


def silu_and_mul(input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    r"""SwiGLU gate: ``silu(input[..., :d]) * input[..., d:]`` with ``silu(a) = a / (1 + exp(-a))``.

    Args:
        input: ``[..., 2d]`` fp16/bf16, last dimension contiguous.
        out: optional ``[..., d]`` destination of the same dtype.
        enable_pdl: ignored.

    Returns:
        ``[..., d]`` (``out`` when given). Any even width is accepted (FlashInfer requires
        ``2d * itemsize`` to be a multiple of 16 bytes; we do not).
    """
    out = _out_for(input, out)
    _ops.silu_and_mul.default(out, input)
    return out


def gelu_and_mul(input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    r"""GeGLU with exact GELU: ``0.5 a (1 + erf(a / sqrt 2)) * b``; shapes as :func:`silu_and_mul`."""
    out = _out_for(input, out)
    _ops.gelu_and_mul.default(out, input)
    return out


def gelu_tanh_and_mul(
    input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None
) -> torch.Tensor:
    r"""GeGLU with tanh GELU: ``0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) * b``; shapes as
    :func:`silu_and_mul`."""
    out = _out_for(input, out)
    _ops.gelu_tanh_and_mul.default(out, input)
    return out
