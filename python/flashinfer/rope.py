"""Rotary positional embeddings (RoPE), plain and Llama-3.1-scaled, with the vLLM/SGLang cos/sin
cache form and the fused RoPE + fp8 quantisation (+ paged append) entry points.

Math (spec §8.1): frequencies over the first ``rotary_dim`` dims (the rest pass through),
``f_i = rope_theta^(-2i/rotary_dim)``; plain RoPE uses ``f_i / rope_scale``, Llama-3.1 blends
``f_i`` and ``f_i / rope_scale`` by wavelength. ``interleave=False`` rotates dim ``j`` with
``j + rotary_dim/2`` (NeoX, rotate-half), ``interleave=True`` dims ``(2j, 2j+1)`` (GPT-J). fp32
math, results in the input dtype. Every function is one torch.ops.flashinfer call (plus, for the
indptr/offsets forms, a few device ops that turn them into positions — no host sync).
"""
from typing import Optional, Tuple, Union

import torch

import flashinfer_ops  # noqa: F401  (registers torch.ops.flashinfer)
from flashinfer_ops.aiter import amd_arch
from flashinfer_ops.fake import page as _contract

from .utils import TensorLayout, check_kv_layout, unpack_paged_kv_cache

_ops = torch.ops.flashinfer


def _pos_ids_from_indptr(indptr: torch.Tensor, offsets: torch.Tensor, nnz: int) -> torch.Tensor:
    """Position of token t of segment i (indptr[i] <= t < indptr[i+1]) = offsets[i] + t - indptr[i]."""
    if indptr.dtype != offsets.dtype:
        raise ValueError(f"offsets: expected dtype {indptr.dtype} (same as indptr), got {offsets.dtype}")
    t = torch.arange(nnz, device=indptr.device, dtype=indptr.dtype)
    seg = torch.searchsorted(indptr[1:].contiguous(), t, right=True).clamp_(max=max(indptr.shape[0] - 2, 0))
    return offsets.index_select(0, seg) + t - indptr.index_select(0, seg)


def _rd(q: torch.Tensor, rotary_dim: Optional[int]) -> int:
    return q.shape[-1] if rotary_dim is None else int(rotary_dim)


def _pos_op(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff, ocl, inplace):
    args = (pos_ids, _rd(q, rotary_dim), bool(interleave), float(rope_scale), float(rope_theta), llama31, float(lff),
            float(hff), float(ocl))
    if inplace:
        _ops.apply_rope_pos_ids_inplace.default(q, k, *args)
        return None
    q_rope, k_rope = torch.empty_like(q), torch.empty_like(k)
    _ops.apply_rope_pos_ids.default(q_rope, k_rope, q, k, *args)
    return q_rope, k_rope


def apply_rope(q: torch.Tensor, k: torch.Tensor, indptr: torch.Tensor, offsets: torch.Tensor,
               rotary_dim: Optional[int] = None, interleave: bool = False, rope_scale: float = 1,
               rope_theta: float = 1e4) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""RoPE on a ragged batch; returns new tensors.

    Args:
        q: ``[nnz, num_q_heads, head_dim]`` fp16/bf16 (only the last dim contiguous).
        k: ``[nnz, num_k_heads, head_dim]``.
        indptr: ``[batch_size + 1]``; segment ``i`` is rows ``indptr[i]:indptr[i+1]``.
        offsets: ``[batch_size]`` position of each segment's first row (same dtype as indptr).
        rotary_dim: dims rotated (default ``head_dim``); the rest are copied.
        interleave: GPT-J pairing ``(2j, 2j+1)`` instead of rotate-half.
        rope_scale: linear position interpolation factor.
        rope_theta: base.

    Returns:
        ``(q_rope, k_rope)`` with the shapes of ``q`` and ``k``.
    """
    pos = _pos_ids_from_indptr(indptr, offsets, q.shape[0])
    return _pos_op(q, k, pos, rotary_dim, interleave, rope_scale, rope_theta, False, 1.0, 4.0, 8192.0, False)


def apply_rope_inplace(q: torch.Tensor, k: torch.Tensor, indptr: torch.Tensor, offsets: torch.Tensor,
                       rotary_dim: Optional[int] = None, interleave: bool = False, rope_scale: float = 1,
                       rope_theta: float = 1e4) -> None:
    r"""In-place :func:`apply_rope` (writes ``q`` and ``k``)."""
    pos = _pos_ids_from_indptr(indptr, offsets, q.shape[0])
    _pos_op(q, k, pos, rotary_dim, interleave, rope_scale, rope_theta, False, 1.0, 4.0, 8192.0, True)


def apply_rope_pos_ids(q: torch.Tensor, k: torch.Tensor, pos_ids: torch.Tensor, rotary_dim: Optional[int] = None,
                       interleave: bool = False, rope_scale: float = 1,
                       rope_theta: float = 1e4) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""RoPE with explicit positions ``pos_ids [nnz]`` (int32 or int64); returns new tensors.
    Other arguments as :func:`apply_rope`."""
    return _pos_op(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, False, 1.0, 4.0, 8192.0, False)


def apply_rope_pos_ids_inplace(q: torch.Tensor, k: torch.Tensor, pos_ids: torch.Tensor,
                               rotary_dim: Optional[int] = None, interleave: bool = False, rope_scale: float = 1,
                               rope_theta: float = 1e4) -> None:
    r"""In-place :func:`apply_rope_pos_ids`."""
    _pos_op(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, False, 1.0, 4.0, 8192.0, True)


def apply_llama31_rope(q: torch.Tensor, k: torch.Tensor, indptr: torch.Tensor, offsets: torch.Tensor,
                       rotary_dim: Optional[int] = None, interleave: bool = False, rope_scale: float = 8,
                       rope_theta: float = 5e5, low_freq_factor: float = 1, high_freq_factor: float = 4,
                       old_context_len: int = 8192) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Llama-3.1 RoPE on a ragged batch; returns new tensors.

    With wavelength ``w = 2*pi/f``: ``f`` is kept when ``w < old_context_len/high_freq_factor``,
    divided by ``rope_scale`` when ``w > old_context_len/low_freq_factor``, and blended in between
    with ``smooth = (old_context_len/w - low_freq_factor)/(high_freq_factor - low_freq_factor)``.
    Other arguments as :func:`apply_rope`.
    """
    pos = _pos_ids_from_indptr(indptr, offsets, q.shape[0])
    return _pos_op(q, k, pos, rotary_dim, interleave, rope_scale, rope_theta, True, low_freq_factor,
                   high_freq_factor, old_context_len, False)


def apply_llama31_rope_inplace(q: torch.Tensor, k: torch.Tensor, indptr: torch.Tensor, offsets: torch.Tensor,
                               rotary_dim: Optional[int] = None, interleave: bool = False, rope_scale: float = 8,
                               rope_theta: float = 5e5, low_freq_factor: float = 1, high_freq_factor: float = 4,
                               old_context_len: int = 8192) -> None:
    r"""In-place :func:`apply_llama31_rope`."""
    pos = _pos_ids_from_indptr(indptr, offsets, q.shape[0])
    _pos_op(q, k, pos, rotary_dim, interleave, rope_scale, rope_theta, True, low_freq_factor, high_freq_factor,
            old_context_len, True)


def apply_llama31_rope_pos_ids(q: torch.Tensor, k: torch.Tensor, pos_ids: torch.Tensor,
                               rotary_dim: Optional[int] = None, interleave: bool = False, rope_scale: float = 8,
                               rope_theta: float = 5e5, low_freq_factor: float = 1, high_freq_factor: float = 4,
                               old_context_len: int = 8192) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Llama-3.1 RoPE with explicit positions; returns new tensors."""
    return _pos_op(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, True, low_freq_factor,
                   high_freq_factor, old_context_len, False)


def apply_llama31_rope_pos_ids_inplace(q: torch.Tensor, k: torch.Tensor, pos_ids: torch.Tensor,
                                       rotary_dim: Optional[int] = None, interleave: bool = False,
                                       rope_scale: float = 8, rope_theta: float = 5e5, low_freq_factor: float = 1,
                                       high_freq_factor: float = 4, old_context_len: int = 8192) -> None:
    r"""In-place :func:`apply_llama31_rope_pos_ids`."""
    _pos_op(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, True, low_freq_factor, high_freq_factor,
            old_context_len, True)


def _check_cache_rows(positions: torch.Tensor, cos_sin_cache: torch.Tensor) -> None:
    """Positions index rows of the cache; the kernel does not bound-check its reads, so check them
    where that costs no device sync (CPU positions) or when FLASHINFER_CHECK_INPUTS=1."""
    if torch.compiler.is_compiling() or positions.numel() == 0:
        return
    if positions.device.type == "cpu" or _contract.check_inputs_enabled():
        lo, hi = int(positions.min()), int(positions.max())
        if lo < 0 or hi >= cos_sin_cache.shape[0]:
            raise ValueError(f"positions: expected values in [0, {cos_sin_cache.shape[0]}) (rows of cos_sin_cache), "
                             f"got [{lo}, {hi}]")


def _heads_view(name: str, x: torch.Tensor, head_size: int) -> torch.Tensor:
    if x.dim() == 3:
        return x
    if x.dim() != 2 or x.shape[-1] % head_size:
        raise ValueError(f"{name}: expected [nnz, num_heads * {head_size}], got shape {tuple(x.shape)}")
    return x.view(x.shape[0], -1, head_size)


def apply_rope_with_cos_sin_cache(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, head_size: int,
                                  cos_sin_cache: torch.Tensor, is_neox: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""RoPE from a precomputed cos/sin cache (vLLM / SGLang semantics); returns new tensors.

    Args:
        positions: ``[nnz]`` int32/int64 row of ``cos_sin_cache`` for each token.
        query: ``[nnz, num_q_heads * head_size]`` (or ``[nnz, num_q_heads, head_size]``).
        key: ``[nnz, num_k_heads * head_size]``.
        head_size: per-head width.
        cos_sin_cache: ``[max_position, rotary_dim]`` float32: cos in the first half, sin in the
            second; ``rotary_dim <= head_size`` (the remaining dims are copied).
        is_neox: rotate-half pairing (True) or interleaved pairs (False).

    Returns:
        ``(query_out, key_out)`` with the input shapes.
    """
    q, k = _heads_view("query", query, head_size), _heads_view("key", key, head_size)
    _check_cache_rows(positions, cos_sin_cache)
    q_out, k_out = torch.empty_like(q), torch.empty_like(k)
    _ops.apply_rope_with_cos_sin_cache.default(q_out, k_out, q, k, cos_sin_cache, positions, bool(is_neox))
    return q_out.view(query.shape), k_out.view(key.shape)


def apply_rope_with_cos_sin_cache_inplace(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                                          head_size: int, cos_sin_cache: torch.Tensor, is_neox: bool = True) -> None:
    r"""In-place :func:`apply_rope_with_cos_sin_cache` (writes ``query`` and ``key``)."""
    q, k = _heads_view("query", query, head_size), _heads_view("key", key, head_size)
    _check_cache_rows(positions, cos_sin_cache)
    _ops.apply_rope_with_cos_sin_cache_inplace.default(q, k, cos_sin_cache, positions, bool(is_neox))


# ---- fused RoPE + fp8 --------------------------------------------------------------------------

def default_fp8_dtype(device: torch.device) -> torch.dtype:
    """The fp8 format native to `device`: FNUZ e4m3 on gfx942, OCP e4m3fn elsewhere (gfx950, H100)."""
    return torch.float8_e4m3fnuz if amd_arch(device) == "gfx942" else torch.float8_e4m3fn


def _fp8_dtype(quantize_dtype, out, device):
    if quantize_dtype is not None:
        return quantize_dtype
    return out.dtype if out is not None else default_fp8_dtype(device)


def _nope(x: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return x if x is not None else like.new_empty(*like.shape[:-1], 0)


def _out(out: Optional[torch.Tensor], like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return out if out is not None else torch.empty(like.shape, dtype=dtype, device=like.device)


def rope_quantize_fp8(q_rope: torch.Tensor, k_rope: torch.Tensor, q_nope: Optional[torch.Tensor],
                      k_nope: Optional[torch.Tensor], cos_sin_cache: torch.Tensor, pos_ids: torch.Tensor,
                      is_neox: bool = True, quantize_dtype: Optional[torch.dtype] = None,
                      quant_scale_q: float = 1.0, quant_scale_kv: float = 1.0,
                      q_rope_out: Optional[torch.Tensor] = None, k_rope_out: Optional[torch.Tensor] = None,
                      q_nope_out: Optional[torch.Tensor] = None, k_nope_out: Optional[torch.Tensor] = None,
                      enable_pdl: bool = False):
    r"""RoPE (cos/sin cache) on the rotary parts and fp8 quantisation of everything.

    ``out = fp8(rotate(x_rope) * scale)`` and ``fp8(x_nope * scale)``; q uses ``quant_scale_q``,
    k ``quant_scale_kv``. All four fp8 formats are supported (e4m3fn, e5m2, e4m3fnuz, e5m2fnuz).

    Args:
        q_rope: ``[nnz, H_q, rope_dim]``; k_rope: ``[nnz, H_k, rope_dim]`` or ``[nnz, rope_dim]`` (MLA).
        q_nope, k_nope: the pass-through parts ``[..., no_rope_dim]`` or None.
        cos_sin_cache: ``[max_pos, rope_dim]`` float32; pos_ids: ``[nnz]`` (converted to int32).
        quantize_dtype: output fp8 dtype; default: the outputs' dtype if given, else the device's
            native e4m3 (``float8_e4m3fnuz`` on gfx942, ``float8_e4m3fn`` elsewhere).

    Returns:
        ``(q_rope_out, k_rope_out, q_nope_out, k_nope_out)``.
    """
    dt = _fp8_dtype(quantize_dtype, q_rope_out, q_rope.device)
    _check_cache_rows(pos_ids, cos_sin_cache)
    q_nope, k_nope = _nope(q_nope, q_rope), _nope(k_nope, k_rope)
    q_rope_out, k_rope_out = _out(q_rope_out, q_rope, dt), _out(k_rope_out, k_rope, dt)
    q_nope_out, k_nope_out = _out(q_nope_out, q_nope, dt), _out(k_nope_out, k_nope, dt)
    for name, t in (("q_rope_out", q_rope_out), ("k_rope_out", k_rope_out), ("q_nope_out", q_nope_out),
                    ("k_nope_out", k_nope_out)):
        if t.dtype != dt:
            raise ValueError(f"{name}: expected dtype {dt} (quantize_dtype), got {t.dtype}")
    _ops.rope_quantize_fp8.default(q_rope_out.view(torch.uint8), k_rope_out.view(torch.uint8),
                                   q_nope_out.view(torch.uint8), k_nope_out.view(torch.uint8), q_rope, k_rope, q_nope,
                                   k_nope, cos_sin_cache, pos_ids.to(torch.int32), bool(is_neox), float(quant_scale_q),
                                   float(quant_scale_kv), dt)
    return q_rope_out, k_rope_out, q_nope_out, k_nope_out


mla_rope_quantize_fp8 = rope_quantize_fp8


def rope_quantize_fp8_append_paged_kv_cache(
    q_rope: torch.Tensor, k_rope: torch.Tensor, q_nope: Optional[torch.Tensor], k_nope: Optional[torch.Tensor],
    v: Optional[torch.Tensor], cos_sin_cache: torch.Tensor, pos_ids: torch.Tensor,
    paged_kv_cache: Union[Tuple[torch.Tensor, torch.Tensor], torch.Tensor], kv_indices: torch.Tensor,
    kv_indptr: torch.Tensor, batch_indices: torch.Tensor, positions: torch.Tensor, is_neox: bool = True,
    quantize_dtype: Optional[torch.dtype] = None, quant_scale_q: float = 1.0, quant_scale_kv: float = 1.0,
    page_size: int = 16, kv_layout: str = "NHD", q_rope_out: Optional[torch.Tensor] = None,
    q_nope_out: Optional[torch.Tensor] = None, enable_pdl: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Fused RoPE + fp8 quantisation of q (returned) and of K / V written straight into a paged
    fp8 cache at ``(batch_indices[t], positions[t])`` (addressing as ``append_paged_kv_cache``).

    GQA/MHA (3-D ``k_rope``): ``paged_kv_cache = (k_cache, v_cache)`` 4-D in ``kv_layout`` with
    head dim ``rope_dim + no_rope_dim`` for K (rope part first), ``v [nnz, H_k, D_v]`` required.
    MLA (2-D ``k_rope``): ``paged_kv_cache = (ckv_cache [pages, P, no_rope_dim], kpe_cache
    [pages, P, rope_dim])``, ``v`` must be None, ``kv_layout`` ignored. Caches have the fp8 dtype.

    Returns:
        ``(q_rope_out, q_nope_out)``.
    """
    check_kv_layout(kv_layout)
    mla = k_rope.dim() == 2
    if isinstance(paged_kv_cache, tuple):
        if len(paged_kv_cache) != 2:
            raise ValueError(f"paged_kv_cache: expected a (k, v) or (ckv, kpe) tuple, got {len(paged_kv_cache)} items")
        k_cache, v_cache = paged_kv_cache
    elif mla:
        raise ValueError("paged_kv_cache: MLA takes a (ckv_cache, kpe_cache) tuple")
    else:
        k_cache, v_cache = unpack_paged_kv_cache(paged_kv_cache, kv_layout)
    layout = 0 if mla else TensorLayout[kv_layout].value
    cache_ps = k_cache.shape[1] if (mla or layout == 0) else k_cache.shape[2]
    if k_cache.dim() >= 3 and cache_ps != page_size:
        raise ValueError(f"page_size: expected {cache_ps} (the cache's page size), got {page_size}")
    dt = _fp8_dtype(quantize_dtype, q_rope_out, q_rope.device)
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache), ("q_rope_out", q_rope_out), ("q_nope_out", q_nope_out)):
        if t is not None and t.dtype != dt:
            raise ValueError(f"{name}: expected dtype {dt} (quantize_dtype), got {t.dtype}")
    _check_cache_rows(pos_ids, cos_sin_cache)
    q_nope = _nope(q_nope, q_rope)
    k_nope = _nope(k_nope, k_rope)
    q_rope_out, q_nope_out = _out(q_rope_out, q_rope, dt), _out(q_nope_out, q_nope, dt)
    from .page import _prepare_indices

    idx = _prepare_indices(k_cache.device, page_size, k_cache.shape[0], batch_indices, positions, kv_indices,
                           kv_indptr)
    b, p, ind, indptr = idx
    _ops.rope_quantize_fp8_append_paged_kv_cache.default(
        q_rope_out.view(torch.uint8), q_nope_out.view(torch.uint8), k_cache.view(torch.uint8),
        v_cache.view(torch.uint8), q_rope, k_rope, q_nope, k_nope, v, cos_sin_cache, pos_ids.to(torch.int32), ind,
        indptr, b, p, bool(is_neox), float(quant_scale_q), float(quant_scale_kv), layout, dt)
    return q_rope_out, q_nope_out
