"""append_paged_kv_cache.aiter: FlashInfer's paged append through
`aiter.ops.cache.reshape_and_cache_flash` (AITER spec §1.5), and the backend rule (spec §16.2)."""
import sys
from typing import Dict

import torch

from .._library import register_op
from ..fake import page as contract

APPEND_BACKENDS = ("auto", "native", "aiter")
AITER_ARCHS = ("gfx942", "gfx950")
_SCALES: Dict[str, torch.Tensor] = {}


def select_append_backend(backend: str, arch: str, kv_layout: str, cache_dtype: torch.dtype,
                          aiter_available: bool) -> str:
    """Pure routing rule for append_paged_kv_cache's `backend=` (spec §16.2).

    "auto" -> "aiter" iff the device is gfx942/gfx950, the layout is NHD, the cache is fp16/bf16
    and AITER's overload is available; otherwise "native" (silently, as FlashInfer+ROCm does).
    "aiter" is validated (FlashInfer+ROCm does not, spec §17 row 14): ImportError without AITER,
    ValueError for HND or a non-fp16/bf16 cache. Returns "native" or "aiter".
    """
    if backend not in APPEND_BACKENDS:
        raise ValueError(f"Unknown backend {backend!r} for append_paged_kv_cache: expected one of "
                         f"{list(APPEND_BACKENDS)}")
    supported = kv_layout == "NHD" and cache_dtype in (torch.float16, torch.bfloat16)
    if backend == "aiter":
        if not aiter_available:
            raise ImportError("append_paged_kv_cache: backend='aiter' needs AMD's AITER package (`import aiter` "
                              "failed); use backend='auto'")
        if kv_layout != "NHD":
            raise ValueError(f"kv_layout: backend='aiter' (reshape_and_cache_flash) takes 'NHD' caches, got "
                             f"{kv_layout!r}; use backend='auto'")
        if not supported:
            raise ValueError(f"paged_kv_cache: backend='aiter' takes float16/bfloat16 caches, got {cache_dtype}")
        return "aiter"
    if backend == "auto" and supported and arch in AITER_ARCHS and aiter_available:
        return "aiter"
    return "native"


def check_append_aiter(k_cache, v_cache, append_key, append_value, batch_indices, positions, kv_indices, kv_indptr,
                       kv_last_page_len, kv_layout):
    contract.check_append_paged_kv_cache(k_cache, v_cache, append_key, append_value, batch_indices, positions,
                                         kv_indices, kv_indptr, kv_last_page_len, kv_layout)
    if kv_layout != 0:
        raise ValueError("kv_layout: backend='aiter' (reshape_and_cache_flash) takes NHD caches [pages, P, H, D], "
                         "got HND")
    if k_cache.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"paged_kv_cache: backend='aiter' takes float16/bfloat16 caches, got {k_cache.dtype}")


def slot_mapping(batch_indices, positions, kv_indices, kv_indptr, page_size: int, num_pages: int) -> torch.Tensor:
    """int64 [nnz]: page_id * page_size + pos % page_size, or -1 (AITER skips it) for a token whose
    batch, position or page is out of range — never a slot outside the ones the indices name."""
    b = batch_indices.long()
    p = positions.long()
    indptr = kv_indptr.long()
    batch = indptr.shape[0] - 1
    ok = (b >= 0) & (b < batch) & (p >= 0)
    bc = b.clamp(0, max(batch - 1, 0))
    idx = indptr.index_select(0, bc) + p.clamp(min=0) // page_size
    ok &= idx < indptr.index_select(0, bc + 1)
    n_idx = kv_indices.shape[0]
    if n_idx == 0:
        return torch.full_like(b, -1)
    page = kv_indices.long().index_select(0, idx.clamp(0, n_idx - 1))
    ok &= (page >= 0) & (page < num_pages)
    return torch.where(ok, page * page_size + p.clamp(min=0) % page_size, torch.full_like(b, -1))


def _unit_scale(device: torch.device) -> torch.Tensor:
    key = str(device)
    if key not in _SCALES:
        _SCALES[key] = torch.ones(1, dtype=torch.float32, device=device)
    return _SCALES[key]


def append_paged_kv_cache_aiter(k_cache, v_cache, append_key, append_value, batch_indices, positions, kv_indices,
                                kv_indptr, kv_last_page_len, kv_layout) -> None:
    """Adapter: FlashInfer's (batch_indices, positions, kv_indptr, kv_indices) -> AITER's int64
    slot_mapping; kv_last_page_len is not needed. Scales are 1 (no conversion: kv_cache_dtype "auto")."""
    check_append_aiter(k_cache, v_cache, append_key, append_value, batch_indices, positions, kv_indices, kv_indptr,
                       kv_last_page_len, kv_layout)
    page_size, num_pages = k_cache.shape[1], k_cache.shape[0]
    if contract.contents_checkable(batch_indices, positions, kv_indices, kv_indptr):
        contract.check_append_indices(batch_indices, positions, kv_indices, kv_indptr, num_pages, page_size)
    slots = slot_mapping(batch_indices, positions, kv_indices, kv_indptr, page_size, num_pages)
    one = _unit_scale(k_cache.device)
    sys.modules["aiter"].ops.cache.reshape_and_cache_flash(
        key=append_key, value=append_value, key_cache=k_cache, value_cache=v_cache, slot_mapping=slots,
        kv_cache_dtype="auto", k_scale=one, v_scale=one,
    )


def register() -> None:
    register_op("append_paged_kv_cache.aiter", cuda=append_paged_kv_cache_aiter, cpu=append_paged_kv_cache_aiter,
                fake=check_append_aiter)
