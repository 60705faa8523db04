"""Metadata contracts of the norm ops: the checks every implementation runs first, and the fakes.

A fake is the check alone: the ops write into caller-provided tensors and return (), so there is
no output to invent; running the checks on fake tensors makes torch.compile report bad input at
trace time with the same message as eager.
"""
import torch

from .._checks import (
    FLOAT16_TYPES,
    check_dtype,
    check_last_dim_contiguous,
    check_ndim,
    check_out,
    check_same_device,
    check_same_dtype,
    check_shape,
)


def check_norm_input(input: torch.Tensor) -> None:
    check_ndim("input", input, (2, 3))
    check_dtype("input", input, FLOAT16_TYPES)
    check_last_dim_contiguous("input", input)


def check_norm_weight(name: str, weight: torch.Tensor, hidden: int, dtypes) -> None:
    check_shape(name, weight, (hidden,))
    check_dtype(name, weight, dtypes)
    check_last_dim_contiguous(name, weight)


def check_rmsnorm(out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, eps: float) -> None:
    check_norm_input(input)
    check_norm_weight("weight", weight, input.shape[-1], (input.dtype,))
    check_out("out", out, input.shape, input.dtype, input.device)
    check_last_dim_contiguous("out", out)
    check_same_device([("input", input), ("weight", weight)])


def check_fused_add_rmsnorm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float) -> None:
    check_norm_input(input)
    check_shape("residual", residual, input.shape)
    check_same_dtype("residual", residual, "input", input)
    check_last_dim_contiguous("residual", residual)
    check_norm_weight("weight", weight, input.shape[-1], (input.dtype,))
    check_same_device([("input", input), ("residual", residual), ("weight", weight)])


def check_layernorm(out: torch.Tensor, input: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> None:
    check_norm_input(input)
    check_norm_weight("gamma", gamma, input.shape[-1], (torch.float32,))
    check_norm_weight("beta", beta, input.shape[-1], (torch.float32,))
    check_out("out", out, input.shape, input.dtype, input.device)
    check_last_dim_contiguous("out", out)
    check_same_device([("input", input), ("gamma", gamma), ("beta", beta)])


rmsnorm_fake = check_rmsnorm
gemma_rmsnorm_fake = check_rmsnorm
fused_add_rmsnorm_fake = check_fused_add_rmsnorm
gemma_fused_add_rmsnorm_fake = check_fused_add_rmsnorm
layernorm_fake = check_layernorm
