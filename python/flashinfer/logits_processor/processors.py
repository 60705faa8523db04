"""High-level processors: what a user lists in a LogitsPipe. Each one legalises to low-level ops
according to the type of the value flowing into it."""
from __future__ import annotations

import abc
from typing import Any, List, Tuple

from . import op as ops
from .legalization import LegalizationError
from .types import TensorType


class LogitsProcessor(abc.ABC):
    """Base class. Constructor keywords become the ops' default parameters (a runtime keyword of
    the same name overrides them)."""

    ACCEPTS: Tuple[TensorType, ...] = ()

    def __init__(self, **params: Any):
        self.params = dict(params)

    @abc.abstractmethod
    def legalize(self, input_type: TensorType) -> List[ops.Op]:
        ...

    def _reject(self, input_type: TensorType):
        names = ", ".join(t.name for t in self.ACCEPTS)
        raise LegalizationError(f"{type(self).__name__} accepts {names}, got {input_type.name}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class Temperature(LogitsProcessor):
    """logits / temperature (a positive float or a [batch] tensor)."""

    ACCEPTS = (TensorType.LOGITS,)

    def legalize(self, input_type):
        if input_type != TensorType.LOGITS:
            self._reject(input_type)
        return [ops.TemperatureOp(**self.params)]


class Softmax(LogitsProcessor):
    """logits -> probabilities."""

    ACCEPTS = (TensorType.LOGITS,)

    def __init__(self, enable_pdl=None, **params: Any):
        super().__init__(enable_pdl=enable_pdl, **params)

    def legalize(self, input_type):
        if input_type != TensorType.LOGITS:
            self._reject(input_type)
        return [ops.SoftmaxOp(**self.params)]


class TopK(LogitsProcessor):
    """Keep the top-k: masks logits to -inf, or renormalises probabilities. ``joint_topk_topp``
    lets a following TopP + Sample fuse into the joint top-k/top-p sampler."""

    ACCEPTS = (TensorType.LOGITS, TensorType.PROBS)

    def __init__(self, joint_topk_topp: bool = False, **params: Any):
        super().__init__(**params)
        self.joint_topk_topp = joint_topk_topp

    def legalize(self, input_type):
        if input_type == TensorType.LOGITS:
            return [ops.LogitsTopKOp(**self.params)]
        if input_type == TensorType.PROBS:
            op = ops.ProbsTopKOp(**self.params)
            op.joint_topk_topp = self.joint_topk_topp
            return [op]
        self._reject(input_type)


class TopP(LogitsProcessor):
    """Nucleus filter on probabilities (renormalised)."""

    ACCEPTS = (TensorType.PROBS,)

    def legalize(self, input_type):
        if input_type != TensorType.PROBS:
            self._reject(input_type)
        return [ops.TopPOp(**self.params)]


class MinP(LogitsProcessor):
    """Keep p >= min_p * max(p), renormalised."""

    ACCEPTS = (TensorType.PROBS,)

    def legalize(self, input_type):
        if input_type != TensorType.PROBS:
            self._reject(input_type)
        return [ops.MinPOp(**self.params)]


class Sample(LogitsProcessor):
    """Draw one token id per row (from logits or probabilities)."""

    ACCEPTS = (TensorType.LOGITS, TensorType.PROBS)

    def __init__(self, deterministic: bool = True, **params: Any):
        super().__init__(deterministic=deterministic, **params)

    def legalize(self, input_type):
        if input_type == TensorType.LOGITS:
            return [ops.LogitsSampleOp(**self.params)]
        if input_type == TensorType.PROBS:
            return [ops.ProbsSampleOp(**self.params)]
        self._reject(input_type)
