"""Legalisation: processors -> low-level ops, following the running tensor type."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence

from .types import TensorType

if TYPE_CHECKING:
    from .op import Op
    from .processors import LogitsProcessor


class LegalizationError(Exception):
    """A processor cannot take the type of the value flowing into it."""


def infer_input_type(processors: Sequence["LogitsProcessor"]) -> TensorType:
    first = processors[0]
    accepts = [t for t in first.ACCEPTS if t in (TensorType.LOGITS, TensorType.PROBS)]
    if len(accepts) != 1:
        raise LegalizationError(
            f"Cannot infer input type: {type(first).__name__} accepts "
            f"{' and '.join(t.name for t in accepts)}; pass input_type=TensorType.LOGITS or TensorType.PROBS"
        )
    return accepts[0]


def legalize_processors(processors: Sequence["LogitsProcessor"], input_type: TensorType) -> List["Op"]:
    """The op list for `processors` applied to a value of `input_type`."""
    if not processors:
        raise LegalizationError("the processor list is empty")
    ops: List["Op"] = []
    current = input_type
    for i, proc in enumerate(processors):
        if current == TensorType.INDICES:
            raise LegalizationError(f"processor {i} ({type(proc).__name__}) follows a sampling step that produced INDICES")
        try:
            new_ops = proc.legalize(current)
        except LegalizationError as e:
            raise LegalizationError(f"processor {i}: {e}") from e
        ops.extend(new_ops)
        current = new_ops[-1].OUT
    return ops
