"""Metadata contracts of packbits / segment_packbits."""
import torch

from .._checks import check_choice, check_dtype, check_ndim, check_same_device

BITORDERS = ("big", "little")
INDEX_TYPES = (torch.int32, torch.int64)


def check_packbits(out: torch.Tensor, x: torch.Tensor, bitorder: str) -> None:
    check_choice("bitorder", bitorder, BITORDERS)
    check_ndim("x", x, (1,))
    check_dtype("out", out, (torch.uint8,))
    want = ((x.shape[0] + 7) // 8,)
    if tuple(out.shape) != want:
        raise ValueError(f"out: expected shape {want}, got {tuple(out.shape)}")
    if out.dim() and out.shape[0] > 1 and out.stride(0) != 1:
        raise ValueError("out: expected a contiguous tensor")
    if x.dim() and x.shape[0] > 1 and x.stride(0) != 1:
        raise ValueError("x: expected a contiguous tensor")
    check_same_device([("x", x), ("out", out)])


def check_segment_packbits(out, x, input_indptr, output_indptr, bitorder) -> None:
    check_choice("bitorder", bitorder, BITORDERS)
    check_ndim("x", x, (1,))
    check_ndim("input_indptr", input_indptr, (1,))
    check_dtype("input_indptr", input_indptr, INDEX_TYPES)
    check_dtype("output_indptr", output_indptr, INDEX_TYPES)
    if tuple(output_indptr.shape) != tuple(input_indptr.shape):
        raise ValueError(
            f"output_indptr: expected shape {tuple(input_indptr.shape)} (as input_indptr), got {tuple(output_indptr.shape)}"
        )
    check_ndim("out", out, (1,))
    check_dtype("out", out, (torch.uint8,))
    if x.dim() and x.shape[0] > 1 and x.stride(0) != 1:
        raise ValueError("x: expected a contiguous tensor")
    check_same_device([("x", x), ("out", out), ("input_indptr", input_indptr), ("output_indptr", output_indptr)])


packbits_fake = check_packbits
segment_packbits_fake = check_segment_packbits
