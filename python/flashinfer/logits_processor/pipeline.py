"""LogitsPipe: a list of processors, legalised to ops and (by default) compiled with fusion."""
from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

import torch

from .compiler import CompileError, FusionRule, ValidityCheck, compile_pipeline
from .legalization import LegalizationError, infer_input_type, legalize_processors
from .op import Op, ParameterizedOp
from .processors import LogitsProcessor
from .types import TaggedTensor, TensorType

logger = logging.getLogger(__name__)


class LogitsPipe:
    """``LogitsPipe([Temperature(), Softmax(), TopP(), Sample()])(logits, temperature=0.7, top_p=0.9)``.

    Args:
        processors: the processors, in order.
        compile: compile (type check, validity checks, fusion) right away.
        input_type: TensorType.LOGITS or PROBS; inferred from the first processor when it accepts
            exactly one of them.
        custom_fusion_rules / custom_validity_checks: added to the defaults.
    """

    def __init__(
        self,
        processors: List[LogitsProcessor],
        compile: bool = True,
        input_type: Optional[TensorType] = None,
        custom_fusion_rules: Optional[Sequence[FusionRule]] = None,
        custom_validity_checks: Optional[Sequence[ValidityCheck]] = None,
    ):
        try:
            if not processors:
                raise LegalizationError("the processor list is empty")
            self._initial_type = input_type if input_type is not None else infer_input_type(processors)
            if self._initial_type not in (TensorType.LOGITS, TensorType.PROBS):
                raise LegalizationError(f"input_type must be LOGITS or PROBS, got {self._initial_type}")
            self._processors = list(processors)
            self._ops = legalize_processors(self._processors, self._initial_type)
            self._compiled_ops: Optional[List[Op]] = None
            if compile:
                self._compiled_ops = compile_pipeline(self._ops, custom_fusion_rules, custom_validity_checks)
        except (LegalizationError, CompileError, ValueError) as e:
            raise ValueError(f"Pipeline creation failed: {e}") from e

    def compile(
        self,
        custom_fusion_rules: Optional[Sequence[FusionRule]] = None,
        custom_validity_checks: Optional[Sequence[ValidityCheck]] = None,
    ) -> None:
        try:
            self._compiled_ops = compile_pipeline(self._ops, custom_fusion_rules, custom_validity_checks)
        except (CompileError, ValueError) as e:
            raise ValueError(f"Compilation failed: {e}") from e

    @property
    def initial_type(self) -> TensorType:
        return self._initial_type

    @property
    def processors(self) -> List[LogitsProcessor]:
        return self._processors

    @property
    def ops(self) -> List[Op]:
        return self._ops

    @property
    def compiled_ops(self) -> Optional[List[Op]]:
        return self._compiled_ops

    def __call__(self, x: Any, **kwargs: Any) -> torch.Tensor:
        value = x if isinstance(x, TaggedTensor) else TaggedTensor(x, self._initial_type)
        if self._compiled_ops is None:
            logger.warning("Pipeline is not compiled, running discrete ops.")
            run = self._ops
        else:
            run = self._compiled_ops
        runtime = dict(kwargs)
        for i, op in enumerate(run):
            consumed: List[str] = []
            if isinstance(op, ParameterizedOp):
                op._consumed = consumed
            try:
                value = op(value, **runtime)
            except Exception as e:
                raise ValueError(f"Error executing operator {i} ({type(op).__name__}): {e}") from e
            finally:
                if isinstance(op, ParameterizedOp):
                    op._consumed = None
            for name in consumed:  # a runtime keyword is consumed by the first op that reads it
                runtime.pop(name, None)
        return value.data

    def __repr__(self) -> str:
        return (f"LogitsPipe(\n  processors={self._processors},\n  ops={self._ops},\n"
                f"  compiled_ops={self._compiled_ops}\n)")
