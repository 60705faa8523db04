"""Paged KV-cache helpers: append new K/V rows into a paged cache, and the index helpers.

Page table (spec §0.3): request b owns pages kv_indices[kv_indptr[b]:kv_indptr[b+1]]; token
position p of request b lives in page kv_indices[kv_indptr[b] + p // page_size], slot
p % page_size. The cache is a 5-D tensor [pages, 2, P, H, D] (NHD) / [pages, 2, H, P, D] (HND) or
a (k_cache, v_cache) tuple of 4-D tensors.
"""
from typing import Tuple, Union

import torch

import flashinfer_ops  # noqa: F401  (registers torch.ops.flashinfer)
from flashinfer_ops.aiter import amd_arch, aiter_overloads_loaded, load_aiter_overloads
from flashinfer_ops._checks import FP8_TYPES
from flashinfer_ops.aiter.page import AITER_ARCHS, select_append_backend
from flashinfer_ops.fake import page as _contract
from flashinfer_ops.reference import page as _ref

from .utils import TensorLayout, check_kv_layout, unpack_paged_kv_cache

_ops = torch.ops.flashinfer


def get_seq_lens(kv_indptr: torch.Tensor, kv_last_page_len: torch.Tensor, page_size: int) -> torch.Tensor:
    r"""Sequence length of every request: ``max(pages - 1, 0) * page_size + last_page_len``.

    Args:
        kv_indptr: ``[batch_size + 1]`` page-table indptr.
        kv_last_page_len: ``[batch_size]`` entries in each request's last page.
        page_size: slots per page.

    Returns:
        ``[batch_size]``, same device and dtype as the inputs.
    """
    return _ref.get_seq_lens(kv_indptr, kv_last_page_len, page_size)


def get_batch_indices_positions(append_indptr: torch.Tensor, seq_lens: torch.Tensor,
                                nnz: int) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Request index and position of every appended row.

    Row ``t`` of request ``b`` (``append_indptr[b] <= t < append_indptr[b+1]``) gets
    ``batch_indices[t] = b`` and ``positions[t] = seq_lens[b] - (append_indptr[b+1] - t)``: the
    appended rows are the last ``append_len`` positions of a sequence whose length *after* the
    append is ``seq_lens[b]``. Device ops only (no host sync; graph- and compile-safe).

    Args:
        append_indptr: ``[batch_size + 1]`` int32 prefix sum of appended lengths.
        seq_lens: ``[batch_size]`` total lengths after the append (e.g. :func:`get_seq_lens`).
        nnz: number of appended rows (``append_indptr[-1]``).

    Returns:
        ``(batch_indices, positions)``, each ``[nnz]`` int32 on ``append_indptr``'s device.
    """
    return _ref.get_batch_indices_positions(append_indptr, seq_lens, nnz)


def fp8_bytes(name: str, x: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
    """fp8 rows and caches reach the ops as uint8 views of their bytes (the copy is bitwise; the
    formats must match: rows are never converted or reinterpreted)."""
    if cache.dtype not in FP8_TYPES:
        return x
    if x.dtype != cache.dtype:
        raise ValueError(f"{name}: expected dtype {str(cache.dtype).replace('torch.', '')} (the cache's), got "
                         f"{str(x.dtype).replace('torch.', '')}")
    return x.view(torch.uint8)


def _as_index(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if t.dtype == torch.int32 and t.device == device and t.is_contiguous():
        return t  # the common case, without dispatcher calls (host time matters at decode sizes)
    return t.to(device=device, dtype=torch.int32, non_blocking=True).contiguous()


def _prepare_indices(device, page_size, num_pages, batch_indices, positions, kv_indices, kv_indptr, *rest):
    """Validate the index contents when that costs no device sync (they are on the CPU, or
    FLASHINFER_CHECK_INPUTS=1), then move them to the cache's device as int32."""
    if not torch.compiler.is_compiling() and _contract.contents_checkable(batch_indices, positions, kv_indices,
                                                                           kv_indptr):
        _contract.check_append_indices(batch_indices, positions, kv_indices, kv_indptr, num_pages, page_size)
    return tuple(_as_index(t, device) for t in (batch_indices, positions, kv_indices, kv_indptr) + rest)


def append_paged_kv_cache(
    append_key: torch.Tensor,
    append_value: torch.Tensor,
    batch_indices: torch.Tensor,
    positions: torch.Tensor,
    paged_kv_cache: Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]],
    kv_indices: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_last_page_len: torch.Tensor,
    kv_layout: str = "NHD",
    backend: str = "auto",
) -> None:
    r"""Append K/V rows to a paged KV cache, in place.

    Row ``t`` goes to page ``kv_indices[kv_indptr[batch_indices[t]] + positions[t] // P]``, slot
    ``positions[t] % P``. The pages must already be allocated (the page table includes the new
    rows). Rows whose indices fall outside their request's pages are never written; with index
    tensors on the CPU (or ``FLASHINFER_CHECK_INPUTS=1``) they raise ``ValueError`` before any
    write.

    Args:
        append_key: ``[nnz, num_kv_heads, head_dim]``, same dtype as the cache (fp16, bf16 or fp8);
            only the last dim must be contiguous.
        append_value: same shape as ``append_key``.
        batch_indices: ``[nnz]`` request of each row (see :func:`get_batch_indices_positions`).
        positions: ``[nnz]`` position of each row within its request.
        paged_kv_cache: 5-D ``[pages, 2, P, H, D]`` (NHD) / ``[pages, 2, H, P, D]`` (HND), or a
            ``(k_cache, v_cache)`` tuple of 4-D tensors.
        kv_indices: ``[kv_indptr[-1]]`` page ids.
        kv_indptr: ``[batch_size + 1]``.
        kv_last_page_len: ``[batch_size]``.
        kv_layout: ``"NHD"`` or ``"HND"``.
        backend: ``"auto"`` (AITER's ``reshape_and_cache_flash`` on gfx942/gfx950 for fp16/bf16
            NHD caches when AITER is installed, else our Triton kernel), ``"native"`` (Triton) or
            ``"aiter"``.
    """
    check_kv_layout(kv_layout)
    k_cache, v_cache = unpack_paged_kv_cache(paged_kv_cache, kv_layout)
    device = k_cache.device
    arch = amd_arch(device)
    if backend == "aiter" or (backend == "auto" and arch in AITER_ARCHS):
        load_aiter_overloads()
    chosen = select_append_backend(backend, arch, kv_layout, k_cache.dtype, aiter_overloads_loaded())
    layout = TensorLayout[kv_layout].value
    page_size = k_cache.shape[1] if layout == 0 else k_cache.shape[2]
    idx = _prepare_indices(device, page_size, k_cache.shape[0], batch_indices, positions, kv_indices, kv_indptr,
                           kv_last_page_len)
    op = _ops.append_paged_kv_cache.aiter if chosen == "aiter" else _ops.append_paged_kv_cache.default
    append_key = fp8_bytes("append_key", append_key, k_cache)
    append_value = fp8_bytes("append_value", append_value, k_cache)
    v_cache = fp8_bytes("v_cache", v_cache, k_cache)
    k_cache = fp8_bytes("k_cache", k_cache, k_cache)
    op(k_cache, v_cache, append_key, append_value, *idx, layout)


def append_paged_mla_kv_cache(
    append_ckv: torch.Tensor,
    append_kpe: torch.Tensor,
    batch_indices: torch.Tensor,
    positions: torch.Tensor,
    ckv_cache: torch.Tensor,
    kpe_cache: torch.Tensor,
    kv_indices: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_last_page_len: torch.Tensor,
) -> None:
    r"""Append MLA rows (compressed KV and rotary key part) to paged caches, in place.

    Args:
        append_ckv: ``[nnz, ckv_dim]``; append_kpe: ``[nnz, kpe_dim]`` (same dtype as the caches).
        batch_indices, positions: ``[nnz]`` as in :func:`append_paged_kv_cache`.
        ckv_cache: ``[pages, P, ckv_dim]``; kpe_cache: ``[pages, P, kpe_dim]``.
        kv_indices, kv_indptr, kv_last_page_len: the page table.
    """
    idx = _prepare_indices(ckv_cache.device, ckv_cache.shape[1], ckv_cache.shape[0], batch_indices, positions,
                           kv_indices, kv_indptr, kv_last_page_len)
    append_ckv = fp8_bytes("append_ckv", append_ckv, ckv_cache)
    append_kpe = fp8_bytes("append_kpe", append_kpe, kpe_cache)
    kpe_cache = fp8_bytes("kpe_cache", kpe_cache, ckv_cache)
    ckv_cache = fp8_bytes("ckv_cache", ckv_cache, ckv_cache)
    _ops.append_paged_mla_kv_cache.default(ckv_cache, kpe_cache, append_ckv, append_kpe, *idx)
