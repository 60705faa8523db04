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


def reshape_and_cache_flash(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale):
    """AITER (cache_kernels.cu): key/value [T, H, D]; caches NHD [blocks, block_size, H, D] with
    equal block strides; slot_mapping int64 [T], slot < 0 skipped; stores key / k_scale and
    value / v_scale in the cache dtype (kv_cache_dtype "auto": no fp8 conversion)."""
    CALLS.append(("reshape_and_cache_flash", dict(shape=tuple(key.shape), slot_mapping=slot_mapping.tolist(),
                                                   kv_cache_dtype=kv_cache_dtype)))
    assert slot_mapping.dtype == torch.int64, "slot_mapping must be int64"
    assert key.dim() == 3 and value.dim() == 3 and key_cache.dim() == 4
    assert key_cache.stride(0) == value_cache.stride(0), "block strides of key_cache and value_cache differ"
    block_size = key_cache.shape[1]
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    blocks, offs = slots // block_size, slots % block_size
    key_cache[blocks, offs] = (key[keep].float() / k_scale.float()).to(key_cache.dtype)
    value_cache[blocks, offs] = (value[keep].float() / v_scale.float()).to(value_cache.dtype)


def install():
    """Put this module into sys.modules as `aiter` (and `aiter.ops`, `aiter.ops.cache`) and
    return it; tests may add more attributes for other adapters."""
    mod = types.ModuleType("aiter")
    mod.rms_norm = rms_norm
    mod.CALLS = CALLS
    ops = types.ModuleType("aiter.ops")
    cache = types.ModuleType("aiter.ops.cache")
    cache.reshape_and_cache_flash = reshape_and_cache_flash
    ops.cache = cache
    mod.ops = ops
    mod.__path__ = []
    sys.modules["aiter"] = mod
    sys.modules["aiter.ops"] = ops
    sys.modules["aiter.ops.cache"] = cache
    return mod
