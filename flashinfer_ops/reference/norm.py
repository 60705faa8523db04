"""Plain-PyTorch semantics of the norm ops: the CPU kernels and the test oracles.

All math in float32 (float64 when given float64), result cast to the input dtype.
"""
from typing import Tuple

import torch


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rmsnorm(input: torch.Tensor, weight: torch.Tensor, eps: float, weight_offset: float = 0.0) -> torch.Tensor:
    """y = x / sqrt(mean(x^2, -1) + eps) * (weight + weight_offset); x [..., hidden], weight [hidden].

    weight_offset is 0 for Llama-style RMSNorm and 1 for Gemma's (1 + weight) scaling.
    """
    acc = _acc_dtype(input)
    x = input.to(acc)
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return (x * rstd * (weight.to(acc) + weight_offset)).to(input.dtype)


def fused_add_rmsnorm(
    input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float, weight_offset: float = 0.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (normed, new_residual): s = input + residual in fp32; new_residual = s in the
    residual dtype; normed = rmsnorm(s) computed from the unrounded fp32 sum (as FlashInfer does)."""
    acc = _acc_dtype(input)
    s = input.to(acc) + residual.to(acc)
    rstd = torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps)
    normed = (s * rstd * (weight.to(acc) + weight_offset)).to(input.dtype)
    return normed, s.to(residual.dtype)


def layernorm(input: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dim (biased variance)."""
    acc = _acc_dtype(input)
    x = input.to(acc)
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return ((x - mean) * torch.rsqrt(var + eps) * gamma.to(acc) + beta.to(acc)).to(input.dtype)
