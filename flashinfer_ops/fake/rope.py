"""Metadata contracts of the RoPE ops: the checks every implementation runs first, and the fakes."""
import torch

from .._checks import (
    FLOAT16_TYPES,
    FP8_TYPES,
    check_dtype,
    check_last_dim_contiguous,
    check_ndim,
    check_out,
    check_same_device,
    check_same_dtype,
)
from ..configs.rope import HALF_BUCKETS

INDEX_TYPES = (torch.int32, torch.int64)


def check_qk(q: torch.Tensor, k: torch.Tensor, q_name: str = "q", k_name: str = "k") -> None:
    check_ndim(q_name, q, (3,))
    check_ndim(k_name, k, (3,))
    check_dtype(q_name, q, FLOAT16_TYPES)
    check_same_dtype(k_name, k, q_name, q)
    check_last_dim_contiguous(q_name, q)
    check_last_dim_contiguous(k_name, k)
    if k.shape[0] != q.shape[0]:
        raise ValueError(f"{k_name}: expected {q.shape[0]} tokens (as {q_name}), got shape {tuple(k.shape)}")
    if k.shape[2] != q.shape[2]:
        raise ValueError(f"{k_name}: expected head dim {q.shape[2]} (as {q_name}), got shape {tuple(k.shape)}")
    check_same_device([(q_name, q), (k_name, k)])


def check_positions(name: str, pos: torch.Tensor, nnz: int, like: torch.Tensor, dtypes=INDEX_TYPES) -> None:
    check_ndim(name, pos, (1,))
    check_dtype(name, pos, dtypes)
    if pos.shape[0] != nnz:
        raise ValueError(f"{name}: expected {nnz} entries (one per token), got shape {tuple(pos.shape)}")
    if pos.shape[0] > 1 and pos.stride(0) != 1:
        raise ValueError(f"{name}: expected a contiguous tensor, got stride {pos.stride(0)}")
    check_same_device([("q", like), (name, pos)])


def check_rotary_dim(rotary_dim: int, head_dim: int) -> None:
    if rotary_dim <= 0 or rotary_dim % 2 or rotary_dim > head_dim or rotary_dim > 2 * HALF_BUCKETS[-1]:
        raise ValueError(
            f"rotary_dim: expected an even value in [2, min(head_dim={head_dim}, {2 * HALF_BUCKETS[-1]})], "
            f"got {rotary_dim}")


def check_apply_rope_pos_ids(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31,
                             low_freq_factor, high_freq_factor, old_context_len) -> None:
    check_qk(q, k)
    check_rotary_dim(rotary_dim, q.shape[2])
    check_positions("pos_ids", pos_ids, q.shape[0], q)
    if llama31 and high_freq_factor == low_freq_factor:
        raise ValueError(f"high_freq_factor: must differ from low_freq_factor, both are {low_freq_factor}")
    check_out("q_out", q_out, q.shape, q.dtype, q.device)
    check_out("k_out", k_out, k.shape, k.dtype, k.device)
    check_last_dim_contiguous("q_out", q_out)
    check_last_dim_contiguous("k_out", k_out)


def check_apply_rope_pos_ids_inplace(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31,
                                     low_freq_factor, high_freq_factor, old_context_len) -> None:
    check_apply_rope_pos_ids(q, k, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31,
                             low_freq_factor, high_freq_factor, old_context_len)


def check_cos_sin_cache(cos_sin_cache: torch.Tensor, rotary_limit: int, like: torch.Tensor) -> None:
    check_ndim("cos_sin_cache", cos_sin_cache, (2,))
    if cos_sin_cache.dtype != torch.float32:
        raise ValueError(f"cos_sin_cache should be float32, got {str(cos_sin_cache.dtype).replace('torch.', '')}")
    check_last_dim_contiguous("cos_sin_cache", cos_sin_cache)
    check_rotary_dim(cos_sin_cache.shape[1], rotary_limit)
    check_same_device([("q", like), ("cos_sin_cache", cos_sin_cache)])


def check_apply_rope_with_cos_sin_cache(q_out, k_out, q, k, cos_sin_cache, positions, is_neox) -> None:
    check_qk(q, k, "query", "key")
    check_cos_sin_cache(cos_sin_cache, q.shape[2], q)
    check_positions("positions", positions, q.shape[0], q)
    check_out("query_out", q_out, q.shape, q.dtype, q.device)
    check_out("key_out", k_out, k.shape, k.dtype, k.device)
    check_last_dim_contiguous("query_out", q_out)
    check_last_dim_contiguous("key_out", k_out)


def check_apply_rope_with_cos_sin_cache_inplace(q, k, cos_sin_cache, positions, is_neox) -> None:
    check_apply_rope_with_cos_sin_cache(q, k, q, k, cos_sin_cache, positions, is_neox)


def check_quantize_dtype(quantize_dtype) -> None:
    if quantize_dtype not in FP8_TYPES:
        raise ValueError(f"quantize_dtype: expected one of ({', '.join(str(d) for d in FP8_TYPES)}), got {quantize_dtype}")


def _check_fp8_out(name: str, out: torch.Tensor, shape, like: torch.Tensor) -> None:
    """fp8 destinations reach the op as uint8 views of their bytes."""
    check_out(name, out, shape, torch.uint8, like.device)
    check_last_dim_contiguous(name, out)


def check_rope_quantize_inputs(q_rope, k_rope, q_nope, k_nope, cos_sin_cache, pos_ids) -> None:
    check_ndim("q_rope", q_rope, (3,))
    check_ndim("k_rope", k_rope, (2, 3))
    check_dtype("q_rope", q_rope, FLOAT16_TYPES)
    nnz = q_rope.shape[0]
    for name, t in (("k_rope", k_rope), ("q_nope", q_nope), ("k_nope", k_nope)):
        check_same_dtype(name, t, "q_rope", q_rope)
        check_last_dim_contiguous(name, t)
        if t.shape[0] != nnz:
            raise ValueError(f"{name}: expected {nnz} tokens (as q_rope), got shape {tuple(t.shape)}")
    check_last_dim_contiguous("q_rope", q_rope)
    rd = q_rope.shape[-1]
    if k_rope.shape[-1] != rd:
        raise ValueError(f"k_rope: expected rope dim {rd} (as q_rope), got shape {tuple(k_rope.shape)}")
    if tuple(q_nope.shape[:2]) != tuple(q_rope.shape[:2]) or q_nope.dim() != 3:
        raise ValueError(f"q_nope: expected shape ({nnz}, {q_rope.shape[1]}, no_rope_dim), got {tuple(q_nope.shape)}")
    if k_nope.dim() != k_rope.dim() or tuple(k_nope.shape[:-1]) != tuple(k_rope.shape[:-1]):
        raise ValueError(f"k_nope: expected shape {tuple(k_rope.shape[:-1])} + (no_rope_dim,), got {tuple(k_nope.shape)}")
    if k_nope.shape[-1] != q_nope.shape[-1]:
        raise ValueError(f"k_nope: expected no_rope_dim {q_nope.shape[-1]} (as q_nope), got {k_nope.shape[-1]}")
    if cos_sin_cache.dim() == 2 and cos_sin_cache.shape[1] != rd:
        raise ValueError(f"cos_sin_cache: expected width {rd} (the rope dim), got shape {tuple(cos_sin_cache.shape)}")
    check_cos_sin_cache(cos_sin_cache, rd, q_rope)
    check_positions("pos_ids", pos_ids, nnz, q_rope, (torch.int32,))
    check_same_device([("q_rope", q_rope), ("k_rope", k_rope), ("q_nope", q_nope), ("k_nope", k_nope)])


def check_rope_quantize_fp8(q_rope_out, k_rope_out, q_nope_out, k_nope_out, q_rope, k_rope, q_nope, k_nope,
                            cos_sin_cache, pos_ids, is_neox, quant_scale_q, quant_scale_kv, quantize_dtype) -> None:
    check_rope_quantize_inputs(q_rope, k_rope, q_nope, k_nope, cos_sin_cache, pos_ids)
    check_quantize_dtype(quantize_dtype)
    for name, out, like in (("q_rope_out", q_rope_out, q_rope), ("k_rope_out", k_rope_out, k_rope),
                            ("q_nope_out", q_nope_out, q_nope), ("k_nope_out", k_nope_out, k_nope)):
        _check_fp8_out(name, out, like.shape, q_rope)


def check_rope_quantize_fp8_append_paged_kv_cache(
        q_rope_out, q_nope_out, k_cache, v_cache, q_rope, k_rope, q_nope, k_nope, v, cos_sin_cache, pos_ids,
        kv_indices, kv_indptr, batch_indices, positions, is_neox, quant_scale_q, quant_scale_kv, kv_layout,
        quantize_dtype) -> None:
    from .page import check_index_tensors

    check_rope_quantize_inputs(q_rope, k_rope, q_nope, k_nope, cos_sin_cache, pos_ids)
    check_quantize_dtype(quantize_dtype)
    _check_fp8_out("q_rope_out", q_rope_out, q_rope.shape, q_rope)
    _check_fp8_out("q_nope_out", q_nope_out, q_nope.shape, q_rope)
    for name, c in (("k_cache", k_cache), ("v_cache", v_cache)):
        check_dtype(name, c, (torch.uint8,))
        check_last_dim_contiguous(name, c)
        check_same_device([("q_rope", q_rope), (name, c)])
    nnz, rd, nd = q_rope.shape[0], q_rope.shape[-1], q_nope.shape[-1]
    if k_rope.dim() == 2:  # MLA: k_cache = ckv [pages, P, nope], v_cache = kpe [pages, P, rope]
        if v is not None:
            raise ValueError("v: must be None for MLA (2-D k_rope); the cache holds ckv and kpe only")
        check_ndim("ckv_cache", k_cache, (3,))
        check_ndim("kpe_cache", v_cache, (3,))
        if k_cache.shape[2] != nd or v_cache.shape[2] != rd or tuple(k_cache.shape[:2]) != tuple(v_cache.shape[:2]):
            raise ValueError(f"ckv_cache/kpe_cache: expected [pages, P, {nd}] and [pages, P, {rd}], got "
                             f"{tuple(k_cache.shape)} and {tuple(v_cache.shape)}")
    else:
        if v is None:
            raise ValueError("v: required for GQA/MHA (3-D k_rope)")
        check_ndim("v", v, (3,))
        check_same_dtype("v", v, "q_rope", q_rope)
        check_last_dim_contiguous("v", v)
        hk = k_rope.shape[1]
        if v.shape[0] != nnz or v.shape[1] != hk:
            raise ValueError(f"v: expected shape ({nnz}, {hk}, D), got {tuple(v.shape)}")
        check_ndim("k_cache", k_cache, (4,))
        check_ndim("v_cache", v_cache, (4,))
        if kv_layout not in (0, 1):
            raise ValueError(f"kv_layout: expected 0 (NHD) or 1 (HND), got {kv_layout}")
        h_dim = 2 if kv_layout == 0 else 1
        if k_cache.shape[h_dim] != hk or k_cache.shape[3] != rd + nd:
            raise ValueError(f"k_cache: expected {hk} heads and head dim {rd + nd}, got shape {tuple(k_cache.shape)}")
        if v_cache.shape[h_dim] != hk or v_cache.shape[3] != v.shape[2] or v_cache.shape[0] != k_cache.shape[0]:
            raise ValueError(f"v_cache: expected {hk} heads and head dim {v.shape[2]}, got shape {tuple(v_cache.shape)}")
    check_index_tensors(batch_indices, positions, kv_indices, kv_indptr, None, nnz, q_rope)


apply_rope_pos_ids_fake = check_apply_rope_pos_ids
apply_rope_pos_ids_inplace_fake = check_apply_rope_pos_ids_inplace
apply_rope_with_cos_sin_cache_fake = check_apply_rope_with_cos_sin_cache
apply_rope_with_cos_sin_cache_inplace_fake = check_apply_rope_with_cos_sin_cache_inplace
rope_quantize_fp8_fake = check_rope_quantize_fp8
rope_quantize_fp8_append_paged_kv_cache_fake = check_rope_quantize_fp8_append_paged_kv_cache
