"""Compilation of an op list: type check, validity checks, then greedy fusion with prioritised
rules (a rule fires where its pattern of op classes matches and its guard holds)."""
from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Sequence, Tuple, Type

from . import op as ops
from .types import TensorType


class CompileError(Exception):
    """The op list is ill-typed or fails a validity check."""


@dataclasses.dataclass
class FusionRule:
    pattern: Tuple[Type[ops.Op], ...]
    guard: Callable[[List[ops.Op]], bool]
    build: Callable[[List[ops.Op]], ops.Op]
    prio: int = 0


ValidityCheck = Callable[[List[ops.Op]], None]


def _merged_params(window: Sequence[ops.Op]) -> dict:
    params: dict = {}
    for o in window:
        params.update(getattr(o, "default_params", {}))
    return params


def _fuse_into(cls):
    return lambda window: cls(**_merged_params(window))


def _always(window) -> bool:
    return True


def default_fusion_rules() -> List[FusionRule]:
    return [
        FusionRule((ops.TemperatureOp, ops.SoftmaxOp), _always, _fuse_into(ops.FusedTemperatureSoftmaxOp), prio=100),
        FusionRule((ops.ProbsTopKOp, ops.TopPOp, ops.ProbsSampleOp),
                   lambda w: bool(getattr(w[0], "joint_topk_topp", False)),
                   _fuse_into(ops.FusedProbsTopKTopPSampleOp), prio=100),
        FusionRule((ops.ProbsTopKOp, ops.ProbsSampleOp), _always, _fuse_into(ops.FusedProbsTopKSampleOp), prio=10),
        FusionRule((ops.TopPOp, ops.ProbsSampleOp), _always, _fuse_into(ops.FusedProbsTopPSampleOp), prio=10),
        FusionRule((ops.MinPOp, ops.ProbsSampleOp), _always, _fuse_into(ops.FusedProbsMinPSampleOp), prio=10),
    ]


def check_single_softmax(op_list: List[ops.Op]) -> None:
    n = sum(isinstance(o, (ops.SoftmaxOp, ops.FusedTemperatureSoftmaxOp)) for o in op_list)
    if n > 1:
        raise CompileError(f"at most one Softmax is allowed in a pipeline, found {n}")


def check_indices_terminal(op_list: List[ops.Op]) -> None:
    for i, o in enumerate(op_list[:-1]):
        if o.OUT == TensorType.INDICES:
            raise CompileError(f"op {i} ({type(o).__name__}) produces INDICES but is followed by {type(op_list[i + 1]).__name__}")


class Compiler:
    """Holds the fusion rules (highest priority first) and validity checks."""

    def __init__(self):
        self.fusion_rules: List[FusionRule] = []
        self.validity_checks: List[ValidityCheck] = [check_single_softmax, check_indices_terminal]
        for rule in default_fusion_rules():
            self.register_fusion_rule(rule)

    def register_fusion_rule(self, rule: FusionRule) -> None:
        self.fusion_rules.append(rule)
        self.fusion_rules.sort(key=lambda r: -r.prio)  # stable: equal priorities keep their order

    def register_validity_check(self, check: ValidityCheck) -> None:
        self.validity_checks.append(check)

    def _type_check(self, op_list: List[ops.Op]) -> None:
        if not op_list:
            raise CompileError("no ops to compile")
        if op_list[0].IN not in (TensorType.LOGITS, TensorType.PROBS):
            raise CompileError(f"the first op must take LOGITS or PROBS, {type(op_list[0]).__name__} takes {op_list[0].IN.name}")
        for prev, nxt in zip(op_list, op_list[1:]):
            if nxt.IN != prev.OUT:
                raise CompileError(
                    f"type mismatch: {type(prev).__name__} produces {prev.OUT.name} but {type(nxt).__name__} takes {nxt.IN.name}")

    def _fuse(self, op_list: List[ops.Op]) -> List[ops.Op]:
        out: List[ops.Op] = []
        i = 0
        while i < len(op_list):
            for rule in self.fusion_rules:
                n = len(rule.pattern)
                window = op_list[i:i + n]
                if len(window) == n and all(type(o) is cls for o, cls in zip(window, rule.pattern)) and rule.guard(window):
                    out.append(rule.build(window))
                    i += n
                    break
            else:
                out.append(op_list[i])
                i += 1
        return out

    def compile(self, op_list: List[ops.Op]) -> List[ops.Op]:
        op_list = list(op_list)
        self._type_check(op_list)
        for check in self.validity_checks:
            check(op_list)
        return self._fuse(op_list)


def compile_pipeline(
    op_list: List[ops.Op],
    custom_fusion_rules: Optional[Sequence[FusionRule]] = None,
    custom_validity_checks: Optional[Sequence[ValidityCheck]] = None,
) -> List[ops.Op]:
    """Type-check, validate and fuse `op_list` with the default rules plus the custom ones."""
    compiler = Compiler()
    for rule in custom_fusion_rules or ():
        compiler.register_fusion_rule(rule)
    for check in custom_validity_checks or ():
        compiler.register_validity_check(check)
    return compiler.compile(op_list)
