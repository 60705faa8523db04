"""Contracts of the paged KV-cache ops: metadata checks (every implementation and the fakes) and
the content validation that reads the index tensors (run where it costs no device sync, or always
with FLASHINFER_CHECK_INPUTS=1)."""
import os
from typing import Optional

import torch

from .._checks import check_dtype, check_last_dim_contiguous, check_ndim, check_same_device

INDEX_NAMES = ("batch_indices", "positions", "kv_indices", "kv_indptr", "kv_last_page_len")


def check_index_tensors(batch_indices, positions, kv_indices, kv_indptr, kv_last_page_len: Optional[torch.Tensor],
                        nnz: int, like: torch.Tensor) -> None:
    for name, t in zip(INDEX_NAMES, (batch_indices, positions, kv_indices, kv_indptr, kv_last_page_len)):
        if t is None:
            continue
        check_ndim(name, t, (1,))
        check_dtype(name, t, (torch.int32,))
        if t.shape[0] > 1 and t.stride(0) != 1:
            raise ValueError(f"{name}: expected a contiguous tensor, got stride {t.stride(0)}")
        check_same_device([("the cache", like), (name, t)])
    for name, t in (("batch_indices", batch_indices), ("positions", positions)):
        if t.shape[0] != nnz:
            raise ValueError(f"{name}: expected {nnz} entries (one per appended token), got shape {tuple(t.shape)}")
    if kv_indptr.shape[0] < 1:
        raise ValueError("kv_indptr: expected at least one entry (batch_size + 1), got 0")
    if kv_last_page_len is not None and kv_indptr.shape[0] != kv_last_page_len.shape[0] + 1:
        raise ValueError(f"kv_indptr: expected {kv_last_page_len.shape[0] + 1} entries (len(kv_last_page_len) + 1), "
                         f"got {kv_indptr.shape[0]}")


CACHE_TYPES = (torch.float16, torch.bfloat16, torch.uint8)


def _cache_geometry(name: str, cache: torch.Tensor, layout: int):
    """(pages, page_size, heads, dim) of a 4-D cache."""
    check_ndim(name, cache, (4,))
    check_last_dim_contiguous(name, cache)
    if layout == 0:
        return cache.shape[0], cache.shape[1], cache.shape[2], cache.shape[3]
    return cache.shape[0], cache.shape[2], cache.shape[1], cache.shape[3]


def check_append_paged_kv_cache(k_cache, v_cache, append_key, append_value, batch_indices, positions, kv_indices,
                                kv_indptr, kv_last_page_len, kv_layout) -> None:
    if kv_layout not in (0, 1):
        raise ValueError(f"kv_layout: expected 0 (NHD) or 1 (HND), got {kv_layout}")
    geo = _cache_geometry("k_cache", k_cache, kv_layout)
    if _cache_geometry("v_cache", v_cache, kv_layout) != geo:
        raise ValueError(f"v_cache: expected shape {tuple(k_cache.shape)} (as k_cache), got {tuple(v_cache.shape)}")
    if k_cache.stride() != v_cache.stride():
        raise ValueError(f"paged_kv_cache: K and V caches must have identical strides, got {tuple(k_cache.stride())} "
                         f"and {tuple(v_cache.stride())}")
    check_dtype("k_cache", k_cache, CACHE_TYPES)
    if v_cache.dtype != k_cache.dtype:
        raise ValueError(f"v_cache: expected dtype {k_cache.dtype} (as k_cache), got {v_cache.dtype}")
    _, _, heads, dim = geo
    for name, t in (("append_key", append_key), ("append_value", append_value)):
        check_ndim(name, t, (3,))
        check_last_dim_contiguous(name, t)
        if t.dtype != k_cache.dtype:
            raise ValueError(f"{name}: expected dtype {str(k_cache.dtype).replace('torch.', '')} (the cache's; no "
                             f"conversion is done), got {str(t.dtype).replace('torch.', '')}")
        if tuple(t.shape[1:]) != (heads, dim):
            raise ValueError(f"{name}: expected shape (nnz, {heads}, {dim}), got {tuple(t.shape)}")
        check_same_device([("k_cache", k_cache), (name, t)])
    if append_value.shape[0] != append_key.shape[0]:
        raise ValueError(f"append_value: expected {append_key.shape[0]} rows (as append_key), got {append_value.shape[0]}")
    check_same_device([("k_cache", k_cache), ("v_cache", v_cache)])
    check_index_tensors(batch_indices, positions, kv_indices, kv_indptr, kv_last_page_len, append_key.shape[0], k_cache)


def check_append_paged_mla_kv_cache(ckv_cache, kpe_cache, append_ckv, append_kpe, batch_indices, positions,
                                    kv_indices, kv_indptr, kv_last_page_len) -> None:
    for name, c in (("ckv_cache", ckv_cache), ("kpe_cache", kpe_cache)):
        check_ndim(name, c, (3,))
        check_dtype(name, c, CACHE_TYPES)
        check_last_dim_contiguous(name, c)
    if tuple(kpe_cache.shape[:2]) != tuple(ckv_cache.shape[:2]):
        raise ValueError(f"kpe_cache: expected [pages, P] = {tuple(ckv_cache.shape[:2])} (as ckv_cache), got "
                         f"{tuple(kpe_cache.shape)}")
    for name, t, c in (("append_ckv", append_ckv, ckv_cache), ("append_kpe", append_kpe, kpe_cache)):
        check_ndim(name, t, (2,))
        check_last_dim_contiguous(name, t)
        if t.dtype != c.dtype:
            raise ValueError(f"{name}: expected dtype {c.dtype} (the cache's), got {t.dtype}")
        if t.shape[1] != c.shape[2]:
            raise ValueError(f"{name}: expected width {c.shape[2]} (the cache's), got shape {tuple(t.shape)}")
        check_same_device([("ckv_cache", ckv_cache), (name, t)])
    if append_kpe.shape[0] != append_ckv.shape[0]:
        raise ValueError(f"append_kpe: expected {append_ckv.shape[0]} rows (as append_ckv), got {append_kpe.shape[0]}")
    check_same_device([("ckv_cache", ckv_cache), ("kpe_cache", kpe_cache)])
    check_index_tensors(batch_indices, positions, kv_indices, kv_indptr, kv_last_page_len, append_ckv.shape[0],
                        ckv_cache)


# ---- content validation ------------------------------------------------------------------------

def check_inputs_enabled() -> bool:
    return os.environ.get("FLASHINFER_CHECK_INPUTS", "0") == "1"


def contents_checkable(*tensors: torch.Tensor) -> bool:
    """Validate index contents when it costs no device sync (all on the CPU) or when asked to."""
    return check_inputs_enabled() or all(t.device.type == "cpu" for t in tensors if t is not None)


def check_append_indices(batch_indices: torch.Tensor, positions: torch.Tensor, kv_indices: torch.Tensor,
                         kv_indptr: torch.Tensor, num_pages: int, page_size: int) -> None:
    """Reads the index tensors (on the host) and rejects any append that would leave its request's
    pages: batch index out of range, negative position, position past the request's pages, or a
    page id outside [0, num_pages). Raises ValueError before anything is written."""
    b = batch_indices.detach().to("cpu", torch.int64)
    p = positions.detach().to("cpu", torch.int64)
    indptr = kv_indptr.detach().to("cpu", torch.int64)
    indices = kv_indices.detach().to("cpu", torch.int64)
    batch = indptr.shape[0] - 1
    if batch_indices.shape[0] == 0:
        return
    if bool((indptr[1:] < indptr[:-1]).any()) or int(indptr[0]) < 0 or int(indptr[-1]) > indices.shape[0]:
        raise ValueError(f"kv_indptr: expected a non-decreasing prefix sum from >= 0 to <= len(kv_indices) = "
                         f"{indices.shape[0]}, got {indptr.tolist()[:16]}")
    bad = (b < 0) | (b >= batch)
    if bool(bad.any()):
        t = int(bad.nonzero()[0])
        raise ValueError(f"batch_indices: entry {t} is {int(b[t])}, expected a request index in [0, {batch})")
    bad = p < 0
    if bool(bad.any()):
        t = int(bad.nonzero()[0])
        raise ValueError(f"positions: entry {t} is {int(p[t])}, expected >= 0")
    npages = indptr[b + 1] - indptr[b]
    bad = p // page_size >= npages
    if bool(bad.any()):
        t = int(bad.nonzero()[0])
        raise ValueError(f"positions: token {t} of request {int(b[t])} is at position {int(p[t])}, past the "
                         f"request's {int(npages[t])} pages of {page_size} slots")
    page = indices[indptr[b] + p // page_size]
    bad = (page < 0) | (page >= num_pages)
    if bool(bad.any()):
        t = int(bad.nonzero()[0])
        raise ValueError(f"kv_indices: token {t} maps to page id {int(page[t])}, expected a page in [0, {num_pages})")


append_paged_kv_cache_fake = check_append_paged_kv_cache
append_paged_mla_kv_cache_fake = check_append_paged_mla_kv_cache
