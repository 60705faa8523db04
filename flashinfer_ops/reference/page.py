"""Plain-PyTorch semantics of the paged KV-cache ops (spec §9): the CPU kernels.

Token t of request b = batch_indices[t] at position p = positions[t] lives in page
kv_indices[kv_indptr[b] + p // P], slot p % P. Callers validate the indices first
(fake/page.check_append_indices); these functions assume they are in range.
"""
from typing import Tuple

import torch


def get_seq_lens(kv_indptr: torch.Tensor, kv_last_page_len: torch.Tensor, page_size: int) -> torch.Tensor:
    """(max(pages - 1, 0)) * page_size + last_page_len per request."""
    return torch.clamp(kv_indptr[1:] - kv_indptr[:-1] - 1, min=0) * page_size + kv_last_page_len


def get_batch_indices_positions(append_indptr: torch.Tensor, seq_lens: torch.Tensor,
                                nnz: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Appended rows occupy the last append_len positions of a sequence of total length seq_lens[b].
    Device ops only (searchsorted), no host sync; int32 outputs on append_indptr's device."""
    t = torch.arange(nnz, device=append_indptr.device, dtype=append_indptr.dtype)
    batch = torch.searchsorted(append_indptr[1:].contiguous(), t, right=True)
    end = append_indptr.index_select(0, batch + 1)
    positions = seq_lens.to(append_indptr.device).index_select(0, batch) - (end - t)
    return batch.to(torch.int32), positions.to(torch.int32)


def page_slots(batch_indices: torch.Tensor, positions: torch.Tensor, kv_indices: torch.Tensor,
               kv_indptr: torch.Tensor, page_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(page id, slot within page) of every appended token, int64."""
    b = batch_indices.long()
    p = positions.long()
    page = kv_indices.long()[kv_indptr.long()[b] + p // page_size]
    return page, p % page_size


def append_paged(cache: torch.Tensor, x: torch.Tensor, page: torch.Tensor, slot: torch.Tensor, layout: int) -> None:
    """cache [pages, P, H, D] (layout 0, NHD) or [pages, H, P, D] (1, HND); x [nnz, H, D] of the
    cache's dtype (fp8 as uint8 bytes: a bit copy)."""
    if layout == 0:
        cache[page, slot] = x
    else:
        cache[page, :, slot] = x
