"""Tensor tags of the logits-processing pipeline."""
from __future__ import annotations

import dataclasses
import enum
from typing import Optional

import torch


class TensorType(enum.Enum):
    """What a pipeline value holds: raw logits, a probability distribution, or sampled token ids
    (terminal: nothing runs after INDICES)."""

    LOGITS = enum.auto()
    PROBS = enum.auto()
    INDICES = enum.auto()


def _unwrap(x):
    if isinstance(x, TaggedTensor):
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


@dataclasses.dataclass(frozen=True)
class TaggedTensor:
    """A tensor and its TensorType. Torch functions applied to it see the plain tensor."""

    data: torch.Tensor
    type: TensorType

    @staticmethod
    def logits(t: torch.Tensor) -> "TaggedTensor":
        return TaggedTensor(t, TensorType.LOGITS)

    @staticmethod
    def probs(t: torch.Tensor) -> "TaggedTensor":
        return TaggedTensor(t, TensorType.PROBS)

    @staticmethod
    def indices(t: torch.Tensor) -> "TaggedTensor":
        return TaggedTensor(t, TensorType.INDICES)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return func(*_unwrap(args), **_unwrap(kwargs or {}))

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    def size(self, dim: Optional[int] = None):
        return self.data.size() if dim is None else self.data.size(dim)

    def __repr__(self) -> str:
        return f"TaggedTensor(type={self.type.name}, shape={tuple(self.data.shape)}, dtype={self.data.dtype})"
