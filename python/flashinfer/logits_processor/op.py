"""Low-level ops of the pipeline: each maps one TensorType to another and calls flashinfer.sampling."""
from __future__ import annotations

import abc
from typing import Any, Dict, Optional

import torch

from .. import sampling
from .types import TaggedTensor, TensorType

_MISSING = object()


class Op(abc.ABC):
    """One step: consumes a TaggedTensor of type IN, produces one of type OUT."""

    IN: TensorType
    OUT: TensorType

    @abc.abstractmethod
    def __call__(self, tensor: TaggedTensor, **kwargs: Any) -> TaggedTensor:
        ...

    def _check_input(self, tensor: TaggedTensor) -> None:
        if tensor.type != self.IN:
            raise ValueError(f"{type(self).__name__} expects {self.IN.name} input, got {tensor.type.name}")

    def __repr__(self) -> str:
        return type(self).__name__


class ParameterizedOp(Op):
    """An op with parameters: a runtime keyword (popped, so only the first op that needs it
    consumes it) wins over the value given to the processor's constructor."""

    def __init__(self, **default_params: Any):
        self.default_params: Dict[str, Any] = dict(default_params)
        self._consumed: Optional[list] = None  # set by LogitsPipe: runtime keywords this call read

    def _get_param(self, name: str, kwargs: Dict[str, Any], required: bool = True, default: Any = None) -> Any:
        if name in kwargs:
            if self._consumed is not None:
                self._consumed.append(name)
            return kwargs.pop(name)
        if name in self.default_params:
            return self.default_params[name]
        if required:
            raise ValueError(f"Missing required parameter: {name}")
        return default

    def __repr__(self) -> str:
        if not self.default_params:
            return type(self).__name__
        args = ", ".join(f"{k}={v!r}" for k, v in self.default_params.items())
        return f"{type(self).__name__}({args})"


# ---- parameter validation --------------------------------------------------------------------

def _temperature(value) -> Any:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, float):
        raise ValueError(f"temperature must be a positive float or a tensor, got {value!r}")
    if value <= 0:
        raise ValueError(f"temperature must be positive, got {value}")
    return value


def _top_k(value) -> Any:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"top_k must be a positive integer or a tensor, got {value!r}")
    return value


def _unit_interval(name: str, value, allow_zero: bool) -> Any:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a float in {'[0, 1]' if allow_zero else '(0, 1]'} or a tensor, got {value!r}")
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (lo_ok and value <= 1):
        raise ValueError(f"{name} must be in {'[0, 1]' if allow_zero else '(0, 1]'}, got {value}")
    return float(value)


def _per_row(value, like: torch.Tensor):
    """A [B] tensor becomes [B, 1] so it scales rows, not columns."""
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return value.to(like.device).reshape(-1, 1)
    return value


# ---- ops -------------------------------------------------------------------------------------

class TemperatureOp(ParameterizedOp):
    IN = TensorType.LOGITS
    OUT = TensorType.LOGITS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        t = _temperature(self._get_param("temperature", kwargs))
        return TaggedTensor.logits(tensor.data / _per_row(t, tensor.data))


class SoftmaxOp(ParameterizedOp):
    IN = TensorType.LOGITS
    OUT = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        pdl = self._get_param("enable_pdl", kwargs, required=False)
        return TaggedTensor.probs(sampling.softmax(tensor.data, None, enable_pdl=pdl))


class ProbsTopKOp(ParameterizedOp):
    IN = TensorType.PROBS
    OUT = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        k = _top_k(self._get_param("top_k", kwargs))
        return TaggedTensor.probs(sampling.top_k_renorm_probs(tensor.data, k))


class LogitsTopKOp(ParameterizedOp):
    IN = TensorType.LOGITS
    OUT = TensorType.LOGITS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        k = _top_k(self._get_param("top_k", kwargs))
        return TaggedTensor.logits(sampling.top_k_mask_logits(tensor.data, k))


class TopPOp(ParameterizedOp):
    IN = TensorType.PROBS
    OUT = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        p = _unit_interval("top_p", self._get_param("top_p", kwargs), allow_zero=False)
        return TaggedTensor.probs(sampling.top_p_renorm_probs(tensor.data, p))


class MinPOp(ParameterizedOp):
    IN = TensorType.PROBS
    OUT = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        mp = _unit_interval("min_p", self._get_param("min_p", kwargs), allow_zero=True)
        p = tensor.data.float()
        keep = p >= _per_row(mp, p) * p.max(dim=-1, keepdim=True).values
        kept = torch.where(keep, p, torch.zeros_like(p))
        return TaggedTensor.probs(kept / kept.sum(dim=-1, keepdim=True))


class _SampleBase(ParameterizedOp):
    OUT = TensorType.INDICES

    def _sample_args(self, kwargs):
        return dict(
            indices=self._get_param("indices", kwargs, required=False),
            deterministic=self._get_param("deterministic", kwargs, required=False, default=True),
            generator=self._get_param("generator", kwargs, required=False),
        )


class LogitsSampleOp(_SampleBase):
    IN = TensorType.LOGITS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        return TaggedTensor.indices(sampling.sampling_from_logits(tensor.data, **self._sample_args(kwargs)))


class ProbsSampleOp(_SampleBase):
    IN = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        return TaggedTensor.indices(sampling.sampling_from_probs(tensor.data, **self._sample_args(kwargs)))


# ---- fused ops (built by the default fusion rules) ----------------------------------------------

class FusedTemperatureSoftmaxOp(ParameterizedOp):
    IN = TensorType.LOGITS
    OUT = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        t = _temperature(self._get_param("temperature", kwargs))
        pdl = self._get_param("enable_pdl", kwargs, required=False)
        return TaggedTensor.probs(sampling.softmax(tensor.data, t, enable_pdl=pdl))


class FusedProbsTopKSampleOp(_SampleBase):
    IN = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        k = _top_k(self._get_param("top_k", kwargs))
        return TaggedTensor.indices(sampling.top_k_sampling_from_probs(tensor.data, k, **self._sample_args(kwargs)))


class FusedProbsTopPSampleOp(_SampleBase):
    IN = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        p = _unit_interval("top_p", self._get_param("top_p", kwargs), allow_zero=False)
        return TaggedTensor.indices(sampling.top_p_sampling_from_probs(tensor.data, p, **self._sample_args(kwargs)))


class FusedProbsMinPSampleOp(_SampleBase):
    IN = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        mp = _unit_interval("min_p", self._get_param("min_p", kwargs), allow_zero=True)
        return TaggedTensor.indices(sampling.min_p_sampling_from_probs(tensor.data, mp, **self._sample_args(kwargs)))


class FusedProbsTopKTopPSampleOp(_SampleBase):
    IN = TensorType.PROBS

    def __call__(self, tensor, **kwargs):
        self._check_input(tensor)
        k = _top_k(self._get_param("top_k", kwargs))
        p = _unit_interval("top_p", self._get_param("top_p", kwargs), allow_zero=False)
        return TaggedTensor.indices(sampling.top_k_top_p_sampling_from_probs(
            tensor.data, k, p, filter_apply_order="joint", **self._sample_args(kwargs)))
