"""Metadata contracts of the decode ops (the checks every implementation runs first) and fakes."""
from typing import Optional

import torch

from ..._checks import (
    FLOAT16_TYPES,
    FP8_TYPES,
    _names,
    check_choice,
    check_dtype,
    check_last_dim_contiguous,
    check_ndim,
    check_out,
    check_same_device,
)

HEAD_DIMS = (64, 128, 256)


def check_kv_dtype(name: str, kv_dtype: torch.dtype, q_dtype: torch.dtype) -> None:
    """KV is either q's dtype or one of the four fp8 formats (scaled by k_scale / v_scale)."""
    allowed = (q_dtype,) + FP8_TYPES
    if kv_dtype not in allowed:
        raise ValueError(f"{name}: expected dtype in ({_names(allowed)}), got {str(kv_dtype).replace('torch.', '')}")


def _check_common(q, k, v, num_kv_heads, head_dim, pos_encoding_mode, window_left):
    check_dtype("q", q, FLOAT16_TYPES)
    check_last_dim_contiguous("q", q)
    check_choice("head_dim", head_dim, HEAD_DIMS)
    if q.shape[-1] != head_dim:
        raise ValueError(f"q: expected head_dim {head_dim} (as k), got {q.shape[-1]}")
    if k.shape != v.shape:
        raise ValueError(f"v: expected shape {tuple(k.shape)} (same as k), got {tuple(v.shape)}")
    if k.dtype != v.dtype:
        raise ValueError(f"v: expected dtype {k.dtype} (same as k), got {v.dtype}")
    check_kv_dtype("k", k.dtype, q.dtype)
    check_last_dim_contiguous("k", k)
    check_last_dim_contiguous("v", v)
    h_qo = q.shape[-2]
    if num_kv_heads == 0 or h_qo % num_kv_heads != 0:
        raise ValueError(f"num_qo_heads ({h_qo}) must be a multiple of num_kv_heads ({num_kv_heads})")
    check_choice("pos_encoding_mode", pos_encoding_mode, (0, 1, 2))
    if window_left < -1:
        raise ValueError(f"window_left: expected -1 (off) or >= 0, got {window_left}")


def check_single_decode(out, lse, q, k, v, sm_scale, logits_soft_cap, window_left, pos_encoding_mode,
                        rope_scale, rope_theta, k_scale, v_scale) -> None:
    check_ndim("q", q, (2,))
    check_ndim("k", k, (3,))
    check_ndim("v", v, (3,))
    _check_common(q, k, v, k.shape[1], k.shape[2], pos_encoding_mode, window_left)
    check_out("out", out, q.shape, q.dtype, q.device)
    check_last_dim_contiguous("out", out)
    if lse is not None:
        check_out("lse", lse, q.shape[:1], torch.float32, q.device)
    check_same_device([("q", q), ("k", k), ("v", v)])


def check_batch_decode(out, lse, q, k_cache, v_cache, kv_indices, work_info, request_info, tmp_o, tmp_lse,
                       sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta,
                       k_scale, v_scale, merge_counters=None) -> None:
    check_ndim("q", q, (3,))
    check_ndim("k_cache", k_cache, (4,))
    check_ndim("v_cache", v_cache, (4,))
    _check_common(q, k_cache, v_cache, k_cache.shape[2], k_cache.shape[3], pos_encoding_mode, window_left)
    if k_cache.shape[1] < 1:
        raise ValueError(f"k_cache: page size must be >= 1, got {k_cache.shape[1]}")
    check_out("out", out, q.shape, q.dtype, q.device)
    check_last_dim_contiguous("out", out)
    if lse is not None:
        check_out("lse", lse, q.shape[:2], torch.float32, q.device)
    check_ndim("kv_indices", kv_indices, (1,))
    check_dtype("kv_indices", kv_indices, (torch.int32,))
    check_ndim("work_info", work_info, (2,))
    check_dtype("work_info", work_info, (torch.int32,))
    if work_info.shape[1] != 8 or not work_info.is_contiguous():
        raise ValueError(f"work_info: expected a contiguous [W, 8] table, got shape {tuple(work_info.shape)}")
    check_ndim("request_info", request_info, (2,))
    check_dtype("request_info", request_info, (torch.int32,))
    if request_info.shape[1] != 2 or request_info.shape[0] < q.shape[0] or not request_info.is_contiguous():
        raise ValueError(f"request_info: expected a contiguous [>= {q.shape[0]}, 2] table, got shape "
                         f"{tuple(request_info.shape)}")
    check_dtype("tmp_o", tmp_o, (torch.float32,))
    check_dtype("tmp_lse", tmp_lse, (torch.float32,))
    h_qo, d = q.shape[1], q.shape[2]
    if tmp_o.dim() != 3 or tuple(tmp_o.shape[1:]) != (h_qo, d) or not tmp_o.is_contiguous():
        raise ValueError(f"tmp_o: expected a contiguous [S, {h_qo}, {d}] tensor, got shape {tuple(tmp_o.shape)}")
    if tuple(tmp_lse.shape) != (tmp_o.shape[0], h_qo) or not tmp_lse.is_contiguous():
        raise ValueError(f"tmp_lse: expected a contiguous [{tmp_o.shape[0]}, {h_qo}] tensor, got shape "
                         f"{tuple(tmp_lse.shape)}")
    if merge_counters is not None:
        check_ndim("merge_counters", merge_counters, (1,))
        check_dtype("merge_counters", merge_counters, (torch.int32,))
        if merge_counters.shape[0] < q.shape[0] * h_qo or not merge_counters.is_contiguous():
            raise ValueError(f"merge_counters: expected a contiguous [>= {q.shape[0] * h_qo}] tensor (batch x "
                             f"num_qo_heads), got shape {tuple(merge_counters.shape)}")
    check_same_device([("q", q), ("k_cache", k_cache), ("v_cache", v_cache), ("kv_indices", kv_indices),
                       ("work_info", work_info), ("request_info", request_info), ("tmp_o", tmp_o),
                       ("tmp_lse", tmp_lse), ("merge_counters", merge_counters)])


single_decode_with_kv_cache_fake = check_single_decode
batch_decode_with_paged_kv_cache_fake = check_batch_decode
