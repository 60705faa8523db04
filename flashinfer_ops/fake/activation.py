"""Metadata contract of the gated activations: input [..., 2d] -> out [..., d]."""
import torch

from .._checks import FLOAT16_TYPES, check_dtype, check_last_dim_contiguous, check_same_device


def check_act_and_mul(out: torch.Tensor, input: torch.Tensor) -> None:
    if input.dim() < 1:
        raise ValueError(f"input: expected at least 1 dimension [..., 2d], got shape {tuple(input.shape)}")
    check_dtype("input", input, FLOAT16_TYPES)
    if input.shape[-1] % 2 != 0:
        raise ValueError(f"input: the last dimension must be even (2d), got {input.shape[-1]}")
    check_last_dim_contiguous("input", input)
    want = tuple(input.shape[:-1]) + (input.shape[-1] // 2,)
    if tuple(out.shape) != want:
        raise ValueError(f"out: expected shape {want}, got {tuple(out.shape)}")
    if out.dtype != input.dtype:
        raise ValueError(f"out: expected dtype {input.dtype}, got {out.dtype}")
    check_last_dim_contiguous("out", out)
    check_same_device([("input", input), ("out", out)])


act_and_mul_fake = check_act_and_mul
