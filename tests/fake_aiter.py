"""A recording stand-in for AMD's `aiter` package, for testing the ".aiter" adapters without AMD
hardware. Each entry point follows AITER's conventions (not FlashInfer's), computes its result in
plain PyTorch and records the call. These tests prove the adapters and routing, nothing about
AITER's own numerics.
"""
import sys
import types

import torch

CALLS = []


def rms_norm(input, weight, epsilon, use_model_sensitive_rmsnorm=0):
    """AITER: 2-D input [m, n], weight [n]; returns a new tensor in the input dtype."""
    CALLS.append(("rms_norm", dict(shape=tuple(input.shape), epsilon=epsilon)))
    assert input.dim() == 2, "aiter.rms_norm takes 2-D input"
    x = input.float()
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + epsilon) * weight.float()
    return y.to(input.dtype)


def install():
    """Put this module into sys.modules as `aiter` (and `aiter.ops`, `aiter.ops.cache`) and
    return it; tests may add more attributes for other adapters."""
    mod = types.ModuleType("aiter")
    mod.rms_norm = rms_norm
    mod.CALLS = CALLS
    ops = types.ModuleType("aiter.ops")
    cache = types.ModuleType("aiter.ops.cache")
    ops.cache = cache
    mod.ops = ops
    mod.__path__ = []
    sys.modules["aiter"] = mod
    sys.modules["aiter.ops"] = ops
    sys.modules["aiter.ops.cache"] = cache
    return mod
