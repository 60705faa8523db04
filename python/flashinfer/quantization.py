"""Bit packing (used for attention custom masks)."""
from typing import Tuple

import torch

import flashinfer_ops  # noqa: F401
from flashinfer_ops._checks import check_choice, check_dtype, check_ndim

_ops = torch.ops.flashinfer


def packbits(x: torch.Tensor, bitorder: str = "big") -> torch.Tensor:
    r"""Pack a binary-valued tensor into bytes, like ``numpy.packbits``.

    Args:
        x: ``[n]`` tensor of any dtype (nonzero counts as 1; other shapes are flattened).
        bitorder: ``"big"`` (element ``8i`` is the most significant bit of byte ``i``) or
            ``"little"`` (least significant; what attention masks use).

    Returns:
        ``uint8 [ceil(n / 8)]``.
    """
    check_choice("bitorder", bitorder, ("big", "little"))
    flat = x.reshape(-1)
    out = torch.empty((flat.shape[0] + 7) // 8, dtype=torch.uint8, device=x.device)
    _ops.packbits.default(out, flat, bitorder)
    return out


def segment_packbits(x: torch.Tensor, indptr: torch.Tensor, bitorder: str = "big") -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Pack each segment ``x[indptr[i]:indptr[i+1]]`` on its own (each padded to whole bytes).

    Args:
        x: ``[indptr[-1]]`` binary-valued tensor.
        indptr: ``[B + 1]`` int32/int64 segment offsets.
        bitorder: ``"big"`` or ``"little"``.

    Returns:
        ``(y, new_indptr)``: ``y`` uint8 ``[sum ceil(len_i / 8)]`` and ``new_indptr`` int32
        ``[B + 1]`` offsets of each segment's bytes. Reads the segment sizes on the host (a device
        sync), as FlashInfer does.
    """
    check_choice("bitorder", bitorder, ("big", "little"))
    check_ndim("indptr", indptr, (1,))
    check_dtype("indptr", indptr, (torch.int32, torch.int64))
    seglen = indptr[1:] - indptr[:-1]
    packed_len = (seglen + 7) // 8
    new_indptr = torch.zeros(indptr.shape[0], dtype=torch.int32, device=indptr.device)
    new_indptr[1:] = torch.cumsum(packed_len, 0)
    total = int(new_indptr[-1].item()) if indptr.shape[0] > 1 else 0
    y = torch.empty(total, dtype=torch.uint8, device=x.device)
    _ops.segment_packbits.default(y, x.reshape(-1), indptr, new_indptr, bitorder)
    return y, new_indptr
