"""Metadata contracts of the prefill ops (the checks every implementation runs first) and fakes.

Only metadata is read (shapes, dtypes, devices, strides), so the same checks run on real, fake and
meta tensors. Schedule and page-table *contents* are validated by the wrappers' plan() on the host.
"""
from typing import Optional

import torch

from ..._checks import (
    FLOAT16_TYPES,
    FP8_TYPES,
    check_choice,
    check_dtype,
    check_last_dim_contiguous,
    check_ndim,
    check_out,
    check_same_device,
)
from ...configs.attention.prefill import HEAD_DIMS

WORK_WORDS = 8


def check_kv_dtype(name: str, kv: torch.Tensor, q: torch.Tensor) -> None:
    """K/V are the dtype of q (fp16/bf16) or one of the four fp8 formats."""
    check_dtype(name, kv, (q.dtype,) + FP8_TYPES)


def check_common(out, lse, q, k, v, k_name, v_name, heads_k, heads_v, dqk_k, dvo_v, mask, mask_mode, kv_layout,
                 pos_encoding_mode, rows):
    check_ndim("q", q, (3,))
    check_dtype("q", q, FLOAT16_TYPES)
    check_last_dim_contiguous("q", q)
    check_kv_dtype(k_name, k, q)
    if v.dtype != k.dtype:
        raise ValueError(f"{v_name}: expected dtype {k.dtype} (same as {k_name}), got {v.dtype}")
    check_last_dim_contiguous(k_name, k)
    check_last_dim_contiguous(v_name, v)
    check_choice("mask_mode", mask_mode, (0, 1, 2))
    check_choice("kv_layout", kv_layout, (0, 1))
    check_choice("pos_encoding_mode", pos_encoding_mode, (0, 1, 2))
    h_qo, d_qk = q.shape[1], q.shape[2]
    if heads_k != heads_v:
        raise ValueError(f"{v_name}: expected {heads_k} kv heads (as {k_name}), got {heads_v}")
    if heads_k <= 0 or h_qo % heads_k != 0:
        raise ValueError(f"num_qo_heads ({h_qo}) must be a positive multiple of num_kv_heads ({heads_k})")
    if dqk_k != d_qk:
        raise ValueError(f"{k_name}: expected head_dim {d_qk} (as q), got {dqk_k}")
    if (d_qk, dvo_v) not in HEAD_DIMS:
        raise ValueError(f"(head_dim_qk, head_dim_vo): expected one of {list(HEAD_DIMS)}, got {(d_qk, dvo_v)}")
    check_out("out", out, (rows, h_qo, dvo_v), q.dtype, q.device)
    check_last_dim_contiguous("out", out)
    if lse is not None:
        check_out("lse", lse, (rows, h_qo), torch.float32, q.device)
    if mask_mode == 2:
        if mask is None:
            raise ValueError("packed_custom_mask: required when mask_mode is 2 (custom)")
    if mask is not None:
        check_ndim("packed_custom_mask", mask, (1,))
        check_dtype("packed_custom_mask", mask, (torch.uint8,))
    check_same_device([("q", q), (k_name, k), (v_name, v), ("out", out), ("lse", lse), ("packed_custom_mask", mask)])


def check_work(work: torch.Tensor, q: torch.Tensor, block_m: int, grouped: bool = False) -> None:
    """work: int32 [n, WORK_WORDS]; with grouped (a staged paged prefill) also [groups, n,
    WORK_WORDS], the request groups the op copies and attends one after another."""
    check_ndim("work", work, (2, 3) if grouped else (2,))
    check_dtype("work", work, (torch.int32,))
    if work.shape[-1] != WORK_WORDS or not work.is_contiguous() or (work.dim() == 3 and work.shape[0] == 0):
        want = f"[n, {WORK_WORDS}] or [groups, n, {WORK_WORDS}]" if grouped else f"[n, {WORK_WORDS}]"
        raise ValueError(f"work: expected a contiguous {want} schedule, got shape {tuple(work.shape)}")
    if block_m not in (16, 32, 64, 128, 256):
        raise ValueError(f"block_m: expected a power of two in 16..256, got {block_m}")
    check_same_device([("q", q), ("work", work)])


def check_deal(deal, work: torch.Tensor) -> None:
    """deal (optional): int32 [>= P + 2 + pairs listed], a persistent schedule plan() built
    (deal_pairs) of the (work row, kv head) pairs over the device's P persistent programs: P + 1
    offsets, the pair numbers (kv head * work rows + row), a spare entry. One request group only
    (a 2-D work, or [1, n, WORK_WORDS])."""
    if deal is None:
        return
    check_ndim("deal", deal, (1,))
    check_dtype("deal", deal, (torch.int32,))
    if not deal.is_contiguous() or deal.shape[0] < 3:
        raise ValueError(f"deal: expected a contiguous schedule of >= 3 entries, got shape {tuple(deal.shape)}")
    if work.dim() == 3 and work.shape[0] != 1:
        raise ValueError(f"deal: a persistent schedule needs one request group, got {work.shape[0]}")
    check_same_device([("work", work), ("deal", deal)])


def _seq_heads_dim(t: torch.Tensor, kv_layout: int):
    """(seq, heads, dim) of a 3-D K/V tensor in layout kv_layout."""
    return (t.shape[0], t.shape[1], t.shape[2]) if kv_layout == 0 else (t.shape[1], t.shape[0], t.shape[2])


def _dense_kv(k, v, kv_layout):
    """(kv_len, H_k, D_k, H_v, D_v) of 3-D K/V tensors in layout kv_layout."""
    check_ndim("k", k, (3,))
    check_ndim("v", v, (3,))
    check_choice("kv_layout", kv_layout, (0, 1))
    kv_len, h_k, d_k = _seq_heads_dim(k, kv_layout)
    kv_len_v, h_v, d_v = _seq_heads_dim(v, kv_layout)
    if kv_len_v != kv_len:
        raise ValueError(f"v: expected kv_len {kv_len} (as k), got {kv_len_v}")
    return kv_len, h_k, d_k, h_v, d_v


def check_single_prefill(out, lse, q, k, v, packed_custom_mask, mask_mode, kv_layout, pos_encoding_mode, sm_scale,
                         window_left, logits_soft_cap, rope_scale, rope_theta, v_scale):
    kv_len, h_k, d_k, h_v, d_v = _dense_kv(k, v, kv_layout)
    check_common(out, lse, q, k, v, "k", "v", h_k, h_v, d_k, d_v, packed_custom_mask, mask_mode, kv_layout,
                 pos_encoding_mode, q.shape[0])
    if mask_mode == 1 and q.shape[0] > kv_len:
        raise ValueError(f"causal: qo_len ({q.shape[0]}) > kv_len ({kv_len}) is not supported")


def check_batch_prefill_ragged(out, lse, q, k, v, work, packed_custom_mask, block_m, mask_mode, kv_layout,
                               pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta,
                               v_scale, deal=None):
    _, h_k, d_k, h_v, d_v = _dense_kv(k, v, kv_layout)
    check_common(out, lse, q, k, v, "k", "v", h_k, h_v, d_k, d_v, packed_custom_mask, mask_mode, kv_layout,
                 pos_encoding_mode, q.shape[0])
    check_work(work, q, block_m)
    check_deal(deal, work)


def staging_bytes(kv_slots: int, page_size: int, num_kv_heads: int, head_dim_qk: int, head_dim_vo: int,
                  kv_dtype: torch.dtype) -> int:
    """Bytes of the staging buffer batch_prefill_paged needs to run on staged K / V: every slot of
    kv_indices (kv_slots entries) as page_size rows of K and V."""
    return kv_slots * page_size * num_kv_heads * (head_dim_qk + head_dim_vo) * kv_dtype.itemsize


def check_batch_prefill_paged(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, block_m,
                              mask_mode, kv_layout, pos_encoding_mode, sm_scale, window_left, logits_soft_cap,
                              rope_scale, rope_theta, v_scale, kv_staging=None, deal=None):
    check_ndim("k_cache", k_cache, (4,))
    check_ndim("v_cache", v_cache, (4,))
    check_choice("kv_layout", kv_layout, (0, 1))
    hk, hv = (2, 2) if kv_layout == 0 else (1, 1)
    pk, pv = (1, 1) if kv_layout == 0 else (2, 2)
    if k_cache.shape[0] != v_cache.shape[0] or k_cache.shape[pk] != v_cache.shape[pv]:
        raise ValueError(f"v_cache: expected {k_cache.shape[0]} pages of {k_cache.shape[pk]} slots (as k_cache), "
                         f"got shape {tuple(v_cache.shape)}")
    check_common(out, lse, q, k_cache, v_cache, "k_cache", "v_cache", k_cache.shape[hk], v_cache.shape[hv],
                 k_cache.shape[3], v_cache.shape[3], packed_custom_mask, mask_mode, kv_layout, pos_encoding_mode,
                 q.shape[0])
    check_work(work, q, block_m, grouped=kv_staging is not None)
    check_deal(deal, work)
    check_ndim("kv_indices", kv_indices, (1,))
    check_dtype("kv_indices", kv_indices, (torch.int32,))
    check_same_device([("q", q), ("kv_indices", kv_indices)])
    if kv_staging is not None:
        check_ndim("kv_staging", kv_staging, (1,))
        check_dtype("kv_staging", kv_staging, (torch.uint8,))
        if not kv_staging.is_contiguous():
            raise ValueError("kv_staging: expected a contiguous buffer")
        page = k_cache.shape[1] if kv_layout == 0 else k_cache.shape[2]
        need = staging_bytes(kv_indices.shape[0], page, k_cache.shape[hk], k_cache.shape[3], v_cache.shape[3],
                             k_cache.dtype)
        if kv_staging.shape[0] < need:
            raise ValueError(f"kv_staging: needs {need} bytes (every kv_indices slot as page_size rows of K and V), "
                             f"got {kv_staging.shape[0]}")
        check_same_device([("q", q), ("kv_staging", kv_staging)])


# The ops write into caller-provided tensors and return (): a fake is the check alone.
single_prefill_fake = check_single_prefill
batch_prefill_ragged_fake = check_batch_prefill_ragged
batch_prefill_paged_fake = check_batch_prefill_paged
