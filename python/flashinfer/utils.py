"""Small helpers FlashInfer exports."""
import torch


def next_positive_power_of_2(x: int) -> int:
    """Smallest power of two >= max(x, 1)."""
    return 1 if x < 1 else 1 << (int(x) - 1).bit_length()


def use_torch_custom_ops_enabled() -> bool:
    """Always True here: every kernel is a torch.ops.flashinfer operator with a fake, so
    torch.compile traces through without FLASHINFER_USE_TORCH_CUSTOM_OPS."""
    return True


def device_support_pdl(device: torch.device) -> bool:
    """Programmatic dependent launch is an NVIDIA feature; never used here."""
    return False


# ---- attention conventions shared by decode / prefill / page (spec §0.3) -----------------------
import enum
import math
from typing import Optional, Tuple, Union


class TensorLayout(enum.Enum):
    NHD = 0
    HND = 1


class PosEncodingMode(enum.Enum):
    NONE = 0
    ROPE_LLAMA = 1
    ALIBI = 2


def check_kv_layout(kv_layout: str) -> str:
    if kv_layout not in ("NHD", "HND"):
        # FlashInfer raises KeyError for an unknown layout string; engines may catch it, so we match.
        raise KeyError(f"Invalid kv_layout {kv_layout!r}: expected 'NHD' or 'HND'")
    return kv_layout


def check_graph_buffers(device: torch.device, buffers) -> int:
    """Validate the user buffers a wrapper keeps across plans in CUDA-graph mode and return the
    fixed batch size.

    buffers: ``(name, tensor, extra)`` triples; each tensor must be a 1-D int32 tensor on
    ``device``; ``extra`` is its length minus the batch size (1 for an indptr ``[B + 1]``, 0 for a
    per-request buffer ``[B]``, None for any length). The first triple's length fixes B.
    """
    batch = None
    for name, buf, extra in buffers:
        if not isinstance(buf, torch.Tensor):
            raise ValueError(f"{name}: required (a tensor) when use_cuda_graph=True")
        if buf.dtype != torch.int32 or buf.dim() != 1 or buf.device != device:
            raise ValueError(f"{name}: expected a 1-D int32 tensor on {device}, got {buf.dtype} "
                             f"{tuple(buf.shape)} on {buf.device}")
        if extra is None:
            continue
        if batch is None:
            batch = buf.shape[0] - extra
        elif buf.shape[0] != batch + extra:
            raise ValueError(f"{name}: expected length {batch + extra} (batch size {batch}"
                             f"{' + 1' if extra else ''}), got {buf.shape[0]}")
    return batch


def check_pos_encoding_mode(mode: str) -> str:
    if mode not in PosEncodingMode.__members__:
        raise KeyError(f"Invalid pos_encoding_mode {mode!r}: expected one of {list(PosEncodingMode.__members__)}")
    return mode


def canonicalize_torch_dtype(dtype: Union[str, torch.dtype, None], default: Optional[torch.dtype] = None) -> torch.dtype:
    """'float16' / 'bfloat16' / torch dtypes -> torch dtype (FlashInfer accepts both)."""
    if dtype is None:
        return default
    if isinstance(dtype, str):
        if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
            raise ValueError(f"unknown data type {dtype!r}")
        return getattr(torch, dtype)
    if isinstance(dtype, torch.dtype):
        return dtype
    raise TypeError(f"expected a torch.dtype or its name, got {type(dtype).__name__}")


def unpack_paged_kv_cache(
    paged_kv_cache: Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]], kv_layout: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(k_cache, v_cache), each 4-D ([pages, P, H, D] NHD / [pages, H, P, D] HND), from a 5-D
    [pages, 2, ...] tensor (split with unbind: strided views, no copy) or a (k, v) tuple. A 4-D
    single tensor / 3-D tuple members mean page size 1 (a unit page dim is inserted)."""
    check_kv_layout(kv_layout)
    if isinstance(paged_kv_cache, tuple):
        if len(paged_kv_cache) != 2:
            raise ValueError(f"paged_kv_cache: a tuple must be (k_cache, v_cache), got {len(paged_kv_cache)} items")
        k, v = paged_kv_cache
        if k.dim() == 3:
            k, v = (k.unsqueeze(1), v.unsqueeze(1)) if kv_layout == "NHD" else (k.unsqueeze(2), v.unsqueeze(2))
    elif isinstance(paged_kv_cache, torch.Tensor):
        t = paged_kv_cache
        if t.dim() == 4:
            t = t.unsqueeze(2) if kv_layout == "NHD" else t.unsqueeze(3)
        if t.dim() != 5 or t.shape[1] != 2:
            raise ValueError(
                f"paged_kv_cache: expected [pages, 2, P, H, D] (NHD) or [pages, 2, H, P, D] (HND), got shape {tuple(t.shape)}"
            )
        k, v = t.unbind(1)
    else:
        raise TypeError(f"paged_kv_cache: expected a tensor or a (k, v) tuple, got {type(paged_kv_cache).__name__}")
    if k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"paged_kv_cache: expected 4-D k/v caches, got {tuple(k.shape)} and {tuple(v.shape)}")
    return k, v


def get_alibi_slopes(num_heads: int) -> torch.Tensor:
    from flashinfer_ops.reference.attention import alibi_slopes

    return alibi_slopes(num_heads)


def default_sm_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)
