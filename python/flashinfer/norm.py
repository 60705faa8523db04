"""Normalisation: RMSNorm (Llama and Gemma flavours, with fused residual add) and LayerNorm.

Each function is a thin wrapper over a torch.ops.flashinfer operator: it allocates the output when
none is given and picks the overload; the operator validates its arguments and raises ValueError
before writing anything.
"""
from typing import Optional

import torch

import flashinfer_ops  # noqa: F401  (registers torch.ops.flashinfer)
from flashinfer_ops.aiter import aiter_overloads_loaded, load_aiter_overloads
from flashinfer_ops.aiter.norm import select_rmsnorm_backend

_ops = torch.ops.flashinfer


def rmsnorm(
    input: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out: Optional[torch.Tensor] = None,
    enable_pdl: Optional[bool] = None,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Root-mean-square normalisation.

    ``out[i] = input[i] / sqrt(mean(input[i]**2) + eps) * weight``, accumulated in float32.

    Args:
        input: ``[batch, hidden]`` or ``[batch, heads, hidden]`` (per-head QK-norm), fp16/bf16;
            only the last dimension must be contiguous.
        weight: ``[hidden]``, same dtype as ``input``.
        eps: added to the mean square.
        out: optional destination, same shape and dtype as ``input``.
        enable_pdl: accepted for FlashInfer compatibility; ignored (no PDL on AMD).
        backend: ``"auto"`` (our Triton kernel), ``"native"``/``"triton"`` (the same), or
            ``"aiter"`` (``aiter.rms_norm``; 2-D only; needs the AITER package).

    Returns:
        The normalised tensor (``out`` when given), shape of ``input``.
    """
    if backend == "aiter":
        load_aiter_overloads()
    chosen = select_rmsnorm_backend(backend, aiter_overloads_loaded())
    if out is None:
        out = torch.empty_like(input)
    if chosen == "aiter":
        _ops.rmsnorm.aiter(out, input, weight, eps)
    else:
        _ops.rmsnorm.default(out, input, weight, eps)
    return out


def fused_add_rmsnorm(
    input: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    enable_pdl: Optional[bool] = None,
) -> None:
    r"""Residual add followed by RMSNorm, both in place.

    ``residual += input`` (added in float32, stored in the residual dtype), then
    ``input = rmsnorm(residual) * weight`` computed from the float32 sum.

    Args:
        input: ``[batch, hidden]`` or ``[batch, heads, hidden]``, fp16/bf16; overwritten with the
            normalised values.
        residual: same shape and dtype as ``input``; overwritten with ``input + residual``.
        weight: ``[hidden]``, same dtype.
        eps: added to the mean square.
        enable_pdl: ignored.
    """
    _ops.fused_add_rmsnorm.default(input, residual, weight, eps)


def gemma_rmsnorm(
    input: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out: Optional[torch.Tensor] = None,
    enable_pdl: Optional[bool] = None,
) -> torch.Tensor:
    r"""Gemma RMSNorm: ``input / sqrt(mean(input**2) + eps) * (1 + weight)``.

    Shapes as :func:`rmsnorm`. Returns ``out`` (allocated when not given).
    """
    if out is None:
        out = torch.empty_like(input)
    _ops.gemma_rmsnorm.default(out, input, weight, eps)
    return out


def gemma_fused_add_rmsnorm(
    input: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    enable_pdl: Optional[bool] = None,
) -> None:
    r"""Gemma flavour of :func:`fused_add_rmsnorm` (scales by ``1 + weight``); in place."""
    _ops.gemma_fused_add_rmsnorm.default(input, residual, weight, eps)


def layernorm(input: torch.Tensor, gemma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    r"""LayerNorm: ``(input - mean) / sqrt(var + eps) * gemma + beta`` over the last dimension.

    Args:
        input: ``[batch, hidden]`` (or ``[batch, heads, hidden]``), fp16/bf16.
        gemma: ``[hidden]`` float32 scale (FlashInfer's name for gamma).
        beta: ``[hidden]`` float32 shift.
        eps: added to the (biased) variance.

    Returns:
        ``[batch, hidden]`` in the input dtype.
    """
    out = torch.empty_like(input)
    _ops.layernorm.default(out, input, gemma, beta, eps)
    return out
