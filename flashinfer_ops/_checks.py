"""Input validation shared by every op (DESIGN.md §4).

Each check looks only at metadata (rank, shape, dtype, device, strides), never at device memory, so
it runs unchanged on real, fake and meta tensors: the fakes call the same checks, and torch.compile
reports bad input at trace time. Every failure is a ValueError (TypeError for a wrong Python type)
that names the argument, what was expected and what was given, and is raised before anything is
written.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch

FLOAT16_TYPES = (torch.float16, torch.bfloat16)
# OCP (gfx950, NVIDIA) and FNUZ (gfx942) fp8 formats, those this torch build has.
FP8_TYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                  if hasattr(torch, n))


def _names(dtypes: Iterable[torch.dtype]) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def check_dtype(name: str, t: torch.Tensor, allowed: Sequence[torch.dtype]) -> None:
    if t.dtype not in allowed:
        raise ValueError(f"{name}: expected dtype in ({_names(allowed)}), got {str(t.dtype).replace('torch.', '')}")


def check_ndim(name: str, t: torch.Tensor, allowed: Sequence[int]) -> None:
    if t.dim() not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name}: expected a {want} tensor, got shape {tuple(t.shape)}")


def check_shape(name: str, t: torch.Tensor, shape: Sequence[int]) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")


def check_same_device(pairs: Sequence[tuple]) -> None:
    """pairs: (name, tensor) items; all must live on the first one's device."""
    ref_name, ref = pairs[0]
    for name, t in pairs[1:]:
        if t is not None and t.device != ref.device:
            raise ValueError(f"{name}: expected device {ref.device} (as {ref_name}), got {t.device}")


def check_last_dim_contiguous(name: str, t: torch.Tensor) -> None:
    if t.dim() > 0 and t.shape[-1] > 1 and t.stride(-1) != 1:
        raise ValueError(f"{name}: the last dimension must be contiguous (stride 1), got strides {tuple(t.stride())}")


def check_same_dtype(name: str, t: torch.Tensor, like_name: str, like: torch.Tensor) -> None:
    if t.dtype != like.dtype:
        raise ValueError(
            f"{name}: expected dtype {str(like.dtype).replace('torch.', '')} (same as {like_name}), "
            f"got {str(t.dtype).replace('torch.', '')}"
        )


def check_out(name: str, out: Optional[torch.Tensor], shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> None:
    """Validate a caller-provided destination tensor."""
    if out is None:
        return
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(out.shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {str(dtype).replace('torch.', '')}, got {str(out.dtype).replace('torch.', '')}")
    if out.device != device:
        raise ValueError(f"{name}: expected device {device}, got {out.device}")


def check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
