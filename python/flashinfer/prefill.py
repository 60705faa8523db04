"""Prefill attention: single request, and batches over a paged or a ragged KV cache.

FlashInfer's API (spec §3, §4) on one Triton kernel (torch.ops.flashinfer.single_prefill,
batch_prefill_paged, batch_prefill_ragged). Wrappers keep plan()/run(): plan() reads the index
arrays on the host, validates them and writes the per-program schedule into persistent device
buffers; run() is one operator call with no host synchronisation, so it can be captured in a CUDA
graph and traced by torch.compile(fullgraph=True) without recompiling per plan.

backend: "auto", "fa2", "triton" and "native" all run the Triton kernel. "aiter" raises: there is
no AITER prefill adapter yet.
"""
import functools
import logging
import math
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch

import flashinfer_ops  # noqa: F401
from flashinfer_ops.configs import arch_family, has_tensor_copy_engine, sm_count
from flashinfer_ops.configs.attention.prefill import (HEAD_DIMS, deal_grid, inplace_setting, paged_inplace, prefill_config,
                                                      stage_enabled, stage_groups, stage_min_reuse, use_deal)
from flashinfer_ops._checks import FP8_TYPES
from flashinfer_ops.fake.attention.prefill import WORK_WORDS, staging_bytes
from flashinfer_ops.launch.attention.prefill import (block_m_for, build_work, deal_pairs, group_staged_work,
                                                      short_pairs, tile_kv_reads)

from .quantization import packbits, segment_packbits
from .utils import (
    PosEncodingMode,
    TensorLayout,
    canonicalize_torch_dtype,
    check_graph_buffers,
    check_kv_layout,
    check_pos_encoding_mode,
    unpack_paged_kv_cache,
)

_ops = torch.ops.flashinfer
logger = logging.getLogger("flashinfer")

_OUR_BACKENDS = ("auto", "fa2", "triton", "native")
_AITER_MSG = ("backend='aiter': there is no AITER prefill adapter in this library yet; use backend='auto' "
              "(or 'fa2'/'triton'), which runs the Triton prefill kernel")


def _resolve_backend(backend: str, unknown: str = "error") -> str:
    """The pure routing rule: our Triton kernel for auto/fa2/triton/native; "aiter" is an error;
    anything else is an error (unknown="error") or falls back with a warning (unknown="warn",
    FlashInfer's paged wrapper)."""
    if backend in _OUR_BACKENDS:
        return "triton"
    if backend == "aiter":
        raise ValueError(_AITER_MSG)
    if unknown == "warn":
        logger.warning("%s backend not supported here. Selecting the Triton (fa2-equivalent) backend.", backend)
        return "triton"
    raise ValueError(f"backend: expected one of {list(_OUR_BACKENDS) + ['aiter']}, got {backend!r}")


def _check_head_dims(head_dim_qk: int, head_dim_vo: int) -> None:
    if (head_dim_qk, head_dim_vo) not in HEAD_DIMS:
        raise ValueError(f"(head_dim_qk, head_dim_vo): expected one of {list(HEAD_DIMS)}, got {(head_dim_qk, head_dim_vo)}")


def _check_heads(num_qo_heads: int, num_kv_heads: int) -> None:
    if num_kv_heads <= 0 or num_qo_heads <= 0 or num_qo_heads % num_kv_heads != 0:
        raise ValueError(f"num_qo_heads ({num_qo_heads}) must be a positive multiple of num_kv_heads ({num_kv_heads})")


def _check_kv_dtype(kv_dtype: torch.dtype, q_dtype: torch.dtype) -> None:
    if q_dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"q_data_type: expected float16 or bfloat16, got {q_dtype}")
    if kv_dtype != q_dtype and kv_dtype not in FP8_TYPES:
        raise ValueError(f"kv_data_type: expected {q_dtype} (as q) or an fp8 type, got {kv_dtype}")


def _alloc_out(q, rows, h_qo, d_vo, out, lse, return_lse):
    if out is None:
        out = torch.empty(rows, h_qo, d_vo, dtype=q.dtype, device=q.device)
    if return_lse and lse is None:
        lse = torch.empty(rows, h_qo, dtype=torch.float32, device=q.device)
    return out, (lse if return_lse else None)


def single_prefill_with_kv_cache(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale_q: Optional[torch.Tensor] = None,
    scale_k: Optional[torch.Tensor] = None,
    scale_v: Optional[torch.Tensor] = None,
    o_dtype: Optional[torch.dtype] = None,
    custom_mask: Optional[torch.Tensor] = None,
    packed_custom_mask: Optional[torch.Tensor] = None,
    causal: bool = False,
    kv_layout: str = "NHD",
    pos_encoding_mode: str = "NONE",
    use_fp16_qk_reduction: bool = False,
    sm_scale: Optional[float] = None,
    window_left: int = -1,
    logits_soft_cap: Optional[float] = None,
    rope_scale: Optional[float] = None,
    rope_theta: Optional[float] = None,
    backend: str = "auto",
    return_lse: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Prefill attention of one request.

    Args:
        q: ``[qo_len, num_qo_heads, head_dim_qk]`` fp16/bf16 (last dim contiguous).
        k: ``[kv_len, num_kv_heads, head_dim_qk]`` (NHD) or ``[num_kv_heads, kv_len, head_dim_qk]``
            (HND); dtype of q or fp8 (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz).
        v: ``[kv_len, num_kv_heads, head_dim_vo]`` (NHD) or heads first (HND), dtype of k.
        scale_q, scale_k, scale_v: per-head fp8 scales; not supported (must be None).
        o_dtype: output dtype; only q's dtype (the default) is supported.
        custom_mask: bool ``[qo_len, kv_len]``, True = keep; packed internally (little-endian).
        packed_custom_mask: uint8 ``[ceil(qo_len * kv_len / 8)]``; takes precedence over custom_mask.
            A mask replaces the causal mask.
        causal: bottom-right aligned causal mask (row i sees keys ``j <= i + kv_len - qo_len``);
            ``qo_len > kv_len`` with causal raises ValueError.
        kv_layout: ``"NHD"`` or ``"HND"``.
        pos_encoding_mode: ``"NONE"``, ``"ROPE_LLAMA"`` (in-kernel rotate-half RoPE, query position
            ``kv_len - qo_len + i``, key position ``j``) or ``"ALIBI"``.
        use_fp16_qk_reduction: accepted; scores are always accumulated in fp32.
        sm_scale: default ``1 / sqrt(head_dim_qk)``.
        window_left: sliding window (keys ``j >= i + kv_len - qo_len - window_left``); -1 disables.
        logits_soft_cap: ``cap * tanh(s / cap)`` after sm_scale when > 0.
        rope_scale, rope_theta: RoPE parameters (defaults 1.0, 1e4).
        backend: "auto" / "fa2" / "triton" / "native" (the Triton kernel); "aiter" raises ValueError.
        return_lse: also return the base-2 log-sum-exp.

    Returns:
        ``out [qo_len, num_qo_heads, head_dim_vo]`` (dtype of q), and with return_lse also
        ``lse [qo_len, num_qo_heads]`` float32 (base 2).
    """
    _resolve_backend(backend)
    check_kv_layout(kv_layout)
    check_pos_encoding_mode(pos_encoding_mode)
    if scale_q is not None or scale_k is not None or scale_v is not None:
        raise ValueError("scale_q/scale_k/scale_v: per-head fp8 scales are not supported (pass None)")
    if o_dtype is not None and o_dtype != q.dtype:
        raise ValueError(f"o_dtype: only the dtype of q ({q.dtype}) is supported, got {o_dtype}")
    if q.dim() != 3 or v.dim() != 3:
        raise ValueError(f"q, v: expected 3-D tensors, got shapes {tuple(q.shape)} and {tuple(v.shape)}")
    mask_mode = 1 if causal else 0
    mask = None
    if packed_custom_mask is not None:
        mask, mask_mode = packed_custom_mask, 2
    elif custom_mask is not None:
        mask, mask_mode = packbits(custom_mask.reshape(-1), "little"), 2
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(q.shape[-1])
    rows, h_qo, d_vo = q.shape[0], q.shape[1], v.shape[-1]
    out, lse = _alloc_out(q, rows, h_qo, d_vo, None, None, return_lse)
    _ops.single_prefill.default(
        out, lse, q, k, v, mask, mask_mode, TensorLayout[kv_layout].value, PosEncodingMode[pos_encoding_mode].value,
        float(sm_scale), int(window_left), float(logits_soft_cap or 0.0),
        float(rope_scale if rope_scale is not None else 1.0), float(rope_theta if rope_theta is not None else 1e4), 1.0)
    return (out, lse) if return_lse else out


single_prefill_with_kv_cache_return_lse = functools.partial(single_prefill_with_kv_cache, return_lse=True)


def _host_i64(name: str, t, length: Optional[int] = None) -> np.ndarray:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
    if t.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D tensor, got shape {tuple(t.shape)}")
    if t.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}: expected dtype int32 or int64, got {t.dtype}")
    a = t.detach().to("cpu", torch.int64).numpy()
    if length is not None and a.shape[0] != length:
        raise ValueError(f"{name}: expected length {length}, got {a.shape[0]}")
    return a


def _check_indptr(name: str, a: np.ndarray) -> None:
    if a.shape[0] < 1 or a[0] != 0:
        raise ValueError(f"{name}: must start with 0, got {a[:1].tolist()}")
    if (np.diff(a) < 0).any():
        raise ValueError(f"{name}: must be non-decreasing")


class _PrefillPlanner:
    """Shared plan machinery: schedule building and the persistent device buffers run() reads."""

    _paged = False

    def __init__(self, float_workspace_buffer: torch.Tensor, kv_layout: str, use_cuda_graph: bool, backend: str,
                 jit_args, jit_kwargs, custom_mask_buf, mask_indptr_buf):
        check_kv_layout(kv_layout)
        if jit_args is not None or jit_kwargs is not None:
            raise ValueError("jit_args/jit_kwargs: custom JIT attention variants are not supported")
        self._float_workspace_buffer = float_workspace_buffer
        self.device = float_workspace_buffer.device
        self._kv_layout = kv_layout
        self._use_cuda_graph = bool(use_cuda_graph)
        self._custom_mask_buf = custom_mask_buf
        self._mask_indptr_buf = mask_indptr_buf
        self._work = None  # int32 [capacity, WORK_WORDS], or [groups, capacity, WORK_WORDS] (staged groups)
        self._deal = None  # int32 persistent schedule of the work pairs (deal_pairs), or None: the 2-D grid
        self._deal_store = None
        self._mask = None
        self._mask_store = None
        self._indices = None
        self._planned = False
        self._fixed_total_rows = None

    @property
    def is_cuda_graph_enabled(self) -> bool:
        return self._use_cuda_graph

    def reset_workspace_buffer(self, float_workspace_buffer: torch.Tensor, int_workspace_buffer=None) -> None:
        self._float_workspace_buffer = float_workspace_buffer

    def end_forward(self) -> None:
        """No-op (deprecated FlashInfer API)."""

    # ---- schedule ---------------------------------------------------------------------------
    def _persist(self, attr: str, src: torch.Tensor, fixed: bool) -> torch.Tensor:
        """Copy src into a persistent device buffer (same object across plans; grows by powers of
        two unless fixed, i.e. graph mode) and return the buffer."""
        buf = getattr(self, attr)
        n = src.shape[0]
        if buf is None or buf.shape[0] < n:
            if buf is not None and fixed:
                raise ValueError(f"{attr.strip('_')}: needs {n} entries, more than the {buf.shape[0]} fixed "
                                 "at the first plan in CUDA-graph mode")
            cap = max(64, 1 << max(0, int(n - 1).bit_length()))
            buf = torch.zeros((cap,) + tuple(src.shape[1:]), dtype=src.dtype, device=self.device)
            setattr(self, attr, buf)
        buf[:n].copy_(src, non_blocking=True)
        return buf

    def _persist_groups(self, grouped: np.ndarray) -> None:
        """Copy a grouped staged schedule (int32 [G, rows, WORK_WORDS], group_staged_work) into the
        work buffer, kept while G holds and its rows a group suffice (they grow by powers of two);
        rows past a group's items stay zero (dead items)."""
        g, rows = grouped.shape[:2]
        buf = self._work
        if buf is None or buf.dim() != 3 or buf.shape[0] != g or buf.shape[1] < rows:
            cap = max(64, 1 << max(0, rows - 1).bit_length())
            buf = self._work = torch.zeros((g, cap, WORK_WORDS), dtype=torch.int32, device=self.device)
        full = np.zeros(tuple(buf.shape), np.int32)
        full[:, :rows] = grouped
        buf.copy_(torch.from_numpy(full), non_blocking=True)

    def _plan_common(self, qo: np.ndarray, kv_lens: np.ndarray, kv_starts: np.ndarray, num_qo_heads, num_kv_heads,
                     head_dim_qk, head_dim_vo, custom_mask, packed_custom_mask, causal, pos_encoding_mode, sm_scale,
                     window_left, logits_soft_cap, rope_scale, rope_theta, q_data_type, kv_data_type,
                     prefix_len_ptr, token_pos_in_items_ptr, max_item_len_ptr, paged_kernel=None,
                     deal_always=False):
        """paged_kernel: the schedule is for the paged kernel (default: the wrapper is paged);
        False when a paged wrapper runs the dense kernel's tile (staged K / V, or the pages read
        in place). deal_always: deal the pairs to the persistent grid whatever use_deal says (the
        in-place paged kernel has no 2-D grid form)."""
        check_pos_encoding_mode(pos_encoding_mode)
        if prefix_len_ptr is not None or token_pos_in_items_ptr is not None or max_item_len_ptr is not None:
            raise ValueError("prefix_len_ptr/token_pos_in_items_ptr/max_item_len_ptr: multi-item scoring is not "
                             "supported")
        head_dim_vo = head_dim_qk if head_dim_vo is None else head_dim_vo
        _check_heads(num_qo_heads, num_kv_heads)
        _check_head_dims(head_dim_qk, head_dim_vo)
        q_dt = canonicalize_torch_dtype(q_data_type)
        kv_dt = canonicalize_torch_dtype(kv_data_type, q_dt)
        _check_kv_dtype(kv_dt, q_dt)
        b = kv_lens.shape[0]
        qo_lens = np.diff(qo)
        if causal and custom_mask is None and packed_custom_mask is None:
            bad = np.nonzero((qo_lens > kv_lens) & (qo_lens > 0))[0]
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"causal: request {i} has qo_len {int(qo_lens[i])} > kv_len {int(kv_lens[i])}, "
                                 "which is not supported")
        # custom mask -> packed little-endian bits, one byte-aligned segment per request
        elems = qo_lens * kv_lens
        byte_len = (elems + 7) // 8
        byte_off = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(byte_len, out=byte_off[1:])
        mask = None
        if packed_custom_mask is not None:
            mask = packed_custom_mask.to(self.device)
            if mask.dim() != 1 or mask.dtype != torch.uint8 or mask.shape[0] < int(byte_off[-1]):
                raise ValueError(f"packed_custom_mask: expected uint8 [>= {int(byte_off[-1])}] (one byte-aligned "
                                 f"segment per request), got {mask.dtype} {tuple(mask.shape)}")
        elif custom_mask is not None:
            if custom_mask.numel() != int(elems.sum()):
                raise ValueError(f"custom_mask: expected {int(elems.sum())} elements (sum of qo_len * kv_len), "
                                 f"got {custom_mask.numel()}")
            ind = torch.from_numpy(np.concatenate([[0], np.cumsum(elems)])).to(self.device)
            mask, _ = segment_packbits(custom_mask.reshape(-1).to(self.device), ind, "little")
        mask_mode = 2 if (mask is not None or self._custom_mask_buf is not None) else (1 if causal else 0)
        if self._custom_mask_buf is not None:
            if mask is not None:
                if mask.shape[0] > self._custom_mask_buf.shape[0]:
                    raise ValueError(f"custom_mask_buf: holds {self._custom_mask_buf.shape[0]} bytes, the mask "
                                     f"needs {mask.shape[0]}")
                self._custom_mask_buf[:mask.shape[0]].copy_(mask)
            if self._mask_indptr_buf is not None:
                n = min(self._mask_indptr_buf.shape[0], b + 1)
                self._mask_indptr_buf[:n].copy_(torch.from_numpy(byte_off[:n]))
            self._mask = self._custom_mask_buf
        elif mask is not None:
            self._mask = self._persist("_mask_store", mask, False)
        else:
            self._mask = None

        group = num_qo_heads // num_kv_heads
        paged_kernel = self._paged if paged_kernel is None else paged_kernel
        bm = block_m_for(self.device, head_dim_qk, head_dim_vo, paged=paged_kernel)
        w, cost = build_work(qo, kv_lens, kv_starts, byte_off, group, bm, mask_mode == 1, window_left, with_cost=True)
        total = w.shape[0]
        if self._paged and not paged_kernel and not deal_always and not self._use_cuda_graph and stage_groups() > 1:
            grouped = group_staged_work(w, cost, stage_groups())
            if grouped.shape[0] > 1:
                self._persist_groups(grouped)
                w = None
        if self._use_cuda_graph and self._work is None:
            # fixed capacity for every later plan: the first plan's rows, plus one partial tile per request
            rows = int(qo[-1])
            self._fixed_total_rows = rows
            cap = max(1, -(-rows * group // bm) + b)
            self._work = torch.zeros(cap, WORK_WORDS, dtype=torch.int32, device=self.device)
        if self._use_cuda_graph and int(qo[-1]) > self._fixed_total_rows:
            raise ValueError(f"qo_indptr: {int(qo[-1])} query rows, more than the {self._fixed_total_rows} of the "
                             "first plan in CUDA-graph mode")
        if w is not None:
            if self._work is not None and self._work.dim() != 2:
                self._work = None  # the previous plan's was grouped
            full = np.zeros((max(total, self._work.shape[0] if self._work is not None else 0), WORK_WORDS), np.int32)
            full[:total] = w
            self._persist("_work", torch.from_numpy(full), self._use_cuda_graph)
        self._deal = self._plan_deal(w, cost, num_kv_heads, head_dim_qk, head_dim_vo, not paged_kernel, deal_always)

        self._block_m = bm
        self._mask_mode = mask_mode
        self._causal = bool(causal)
        self._num_qo_heads, self._num_kv_heads = num_qo_heads, num_kv_heads
        self._head_dim_qk, self._head_dim_vo = head_dim_qk, head_dim_vo
        self._pos_encoding_mode = pos_encoding_mode
        self._sm_scale = sm_scale
        self._window_left = int(window_left)
        self._logits_soft_cap = float(logits_soft_cap or 0.0)
        self._rope_scale = rope_scale
        self._rope_theta = rope_theta
        self._cached_q_data_type, self._cached_kv_data_type = q_dt, kv_dt
        self._nnz_qo = int(qo[-1])
        self._planned = True

    def _plan_deal(self, w, cost, num_kv_heads, head_dim_qk, head_dim_vo, dense, always=False):
        """The persistent schedule run() passes the op (deal_pairs over the work buffer's rows), or
        None for the 2-D grid (use_deal decides; never with request groups, nor on the CPU, whose
        reference path has no use for one)."""
        if w is None or self.device.type != "cuda":
            return None
        rows = self._work.shape[0]
        live = np.zeros(rows, bool)
        live[:w.shape[0]] = w[:, 2] > 0
        reads = np.zeros(rows, np.int64)
        reads[:w.shape[0]] = cost
        family = arch_family(self.device)
        bn = prefill_config(family, head_dim_qk, head_dim_vo).block_n
        n_prog = deal_grid(sm_count(self.device))
        n_live = int(live.sum())
        mean_tiles = float((-(-reads[live] // bn)).mean()) if n_live else 0.0
        if not always and not use_deal(family, n_prog, n_live * num_kv_heads, mean_tiles, self._use_cuda_graph,
                                       dense, (head_dim_qk, head_dim_vo)):
            return None
        deal = deal_pairs(reads, live, num_kv_heads, n_prog, bn)
        buf = self._deal_store
        if buf is None or buf.shape[0] < deal.shape[0]:
            buf = self._deal_store = torch.zeros(max(64, 1 << (deal.shape[0] - 1).bit_length()), dtype=torch.int32,
                                                 device=self.device)
        buf[:deal.shape[0]].copy_(torch.from_numpy(deal.copy()), non_blocking=True)
        return buf

    def _run_checks(self, q: torch.Tensor, kv: torch.Tensor, window_left) -> None:
        if not self._planned:
            raise RuntimeError("run() before plan()")
        if q.dtype != self._cached_q_data_type:
            raise ValueError(f"q: expected dtype {self._cached_q_data_type} (as planned), got {q.dtype}")
        if kv.dtype != self._cached_kv_data_type:
            raise ValueError(f"kv: expected dtype {self._cached_kv_data_type} (as planned), got {kv.dtype}")
        if q.dim() != 3 or q.shape[0] != self._nnz_qo or q.shape[1] != self._num_qo_heads \
                or q.shape[2] != self._head_dim_qk:
            raise ValueError(f"q: expected shape ({self._nnz_qo}, {self._num_qo_heads}, {self._head_dim_qk}) "
                             f"(as planned), got {tuple(q.shape)}")
        if window_left is not None and window_left != self._window_left:
            raise ValueError(f"window_left: expected {self._window_left} (as planned), got {window_left}")

    def _scalars(self, q_scale=None, k_scale=None):
        sm = self._sm_scale if self._sm_scale is not None else 1.0 / math.sqrt(self._head_dim_qk)
        sm = float(sm) * (q_scale if q_scale is not None else 1.0) * (k_scale if k_scale is not None else 1.0)
        return (self._block_m, self._mask_mode, TensorLayout[self._kv_layout].value,
                PosEncodingMode[self._pos_encoding_mode].value, sm, self._window_left, self._logits_soft_cap,
                float(self._rope_scale if self._rope_scale is not None else 1.0),
                float(self._rope_theta if self._rope_theta is not None else 1e4))

    def _forward_overrides(self, causal, pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale,
                           rope_theta):
        """FlashInfer's deprecated forward(): overwrite the stored runtime scalars, then run()."""
        check_pos_encoding_mode(pos_encoding_mode)
        self._causal = bool(causal)
        if self._mask_mode != 2:
            self._mask_mode = 1 if causal else 0
        self._pos_encoding_mode = pos_encoding_mode
        self._window_left = int(window_left)
        self._logits_soft_cap = float(logits_soft_cap or 0.0)
        self._sm_scale, self._rope_scale, self._rope_theta = sm_scale, rope_scale, rope_theta


class BatchPrefillWithPagedKVCacheWrapper(_PrefillPlanner):
    r"""Batch prefill over a paged KV cache.

    The cache is a 5-D tensor ``[max_pages, 2, page_size, num_kv_heads, head_dim]`` (NHD) /
    ``[max_pages, 2, num_kv_heads, page_size, head_dim]`` (HND), or a ``(k_cache, v_cache)`` tuple of
    4-D ``[max_pages, page_size, num_kv_heads, head_dim]`` / ``[max_pages, num_kv_heads, page_size,
    head_dim]`` tensors (only the last dim must be contiguous). The page table is CSR:
    ``paged_kv_indptr [B + 1]``, ``paged_kv_indices [paged_kv_indptr[-1]]``,
    ``paged_kv_last_page_len [B]``.

    Example::

        wrapper = BatchPrefillWithPagedKVCacheWrapper(torch.empty(128 << 20, dtype=torch.uint8, device="cuda"))
        wrapper.plan(qo_indptr, kv_indptr, kv_indices, last_page_len, 32, 8, 128, 16, causal=True,
                     q_data_type=torch.bfloat16)
        out = wrapper.run(q, kv_cache)   # q [qo_indptr[-1], 32, 128] -> out [qo_indptr[-1], 32, 128]
    """

    _paged = True

    def __init__(
        self,
        float_workspace_buffer: torch.Tensor,
        kv_layout: str = "NHD",
        use_cuda_graph: bool = False,
        qo_indptr_buf: Optional[torch.Tensor] = None,
        paged_kv_indptr_buf: Optional[torch.Tensor] = None,
        paged_kv_indices_buf: Optional[torch.Tensor] = None,
        paged_kv_last_page_len_buf: Optional[torch.Tensor] = None,
        custom_mask_buf: Optional[torch.Tensor] = None,
        mask_indptr_buf: Optional[torch.Tensor] = None,
        backend: str = "auto",
        jit_args: Optional[Any] = None,
        jit_kwargs: Optional[Any] = None,
    ) -> None:
        r"""Args:
            float_workspace_buffer: user workspace (any dtype, contiguous; FlashInfer's 128 MiB is
                typical); fixes the device. Where staging applies (by default sm90 with 16-bit K / V
                and no mask / RoPE / ALiBi / soft cap; FLASHINFER_PREFILL_STAGE=0 / 1 forces it off /
                on) and the batch's prompts are long enough, run() copies the batch's K / V rows into it
                (``len(paged_kv_indices) * page_size * num_kv_heads * (head_dim_qk + head_dim_vo) *
                kv element size`` bytes, when that fits) and reads them as a dense cache; otherwise
                it is not used. Share it only with
                work on the same stream.
            kv_layout: ``"NHD"`` or ``"HND"``.
            use_cuda_graph: fixed batch size and persistent buffers, so a run() captured in a CUDA
                graph replays correctly after a later plan() (which must not exceed the first plan's
                total query rows). The first plan's choice to stage K / V (above) holds for later ones.
            qo_indptr_buf: int32 ``[B + 1]`` (graph mode, required).
            paged_kv_indptr_buf: int32 ``[B + 1]`` (graph mode, required).
            paged_kv_indices_buf: int32 ``[max_num_pages]`` (graph mode, required; the kernel reads it).
            paged_kv_last_page_len_buf: int32 ``[B]`` (graph mode, required).
            custom_mask_buf: uint8 packed-mask buffer; when given the wrapper always runs in custom-mask
                mode (FlashInfer's behaviour, relied on by SGLang).
            mask_indptr_buf: int32 ``[B + 1]`` receiving the byte offsets of each request's mask segment.
            backend: "auto"/"fa2"/"triton"/"native"; "aiter" raises ValueError; others warn and use Triton.
            jit_args, jit_kwargs: custom JIT variants; not supported (must be None).
        """
        super().__init__(float_workspace_buffer, kv_layout, use_cuda_graph, backend, jit_args, jit_kwargs,
                         custom_mask_buf, mask_indptr_buf)
        self._backend = _resolve_backend(backend, unknown="warn")
        if use_cuda_graph:
            self._fixed_batch_size = check_graph_buffers(self.device, (
                ("qo_indptr_buf", qo_indptr_buf, 1), ("paged_kv_indptr_buf", paged_kv_indptr_buf, 1),
                ("paged_kv_last_page_len_buf", paged_kv_last_page_len_buf, 0),
                ("paged_kv_indices_buf", paged_kv_indices_buf, None)))
        self._qo_indptr_buf = qo_indptr_buf
        self._paged_kv_indptr_buf = paged_kv_indptr_buf
        self._paged_kv_indices_buf = paged_kv_indices_buf
        self._paged_kv_last_page_len_buf = paged_kv_last_page_len_buf
        self._indices = paged_kv_indices_buf if use_cuda_graph else None
        self._op_indices = self._indices  # what run() passes: exactly this plan's entries (non-graph)
        self._staging_bytes = 0
        self._inplace = False  # run() reads the pages in place (_choose_inplace)
        self._staging_buf = None  # uint8 view of the workspace lent to the op, or None

    def plan(
        self,
        qo_indptr: torch.Tensor,
        paged_kv_indptr: torch.Tensor,
        paged_kv_indices: torch.Tensor,
        paged_kv_last_page_len: torch.Tensor,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim_qk: int,
        page_size: int,
        head_dim_vo: Optional[int] = None,
        custom_mask: Optional[torch.Tensor] = None,
        packed_custom_mask: Optional[torch.Tensor] = None,
        causal: bool = False,
        pos_encoding_mode: str = "NONE",
        use_fp16_qk_reduction: bool = False,
        sm_scale: Optional[float] = None,
        window_left: int = -1,
        logits_soft_cap: Optional[float] = None,
        rope_scale: Optional[float] = None,
        rope_theta: Optional[float] = None,
        q_data_type: Union[str, torch.dtype] = "float16",
        kv_data_type: Optional[Union[str, torch.dtype]] = None,
        non_blocking: bool = True,
        prefix_len_ptr: Optional[torch.Tensor] = None,
        token_pos_in_items_ptr: Optional[torch.Tensor] = None,
        token_pos_in_items_len: int = 0,
        max_item_len_ptr: Optional[torch.Tensor] = None,
        seq_lens: Optional[torch.Tensor] = None,
        seq_lens_q: Optional[torch.Tensor] = None,
        block_tables: Optional[torch.Tensor] = None,
        max_token_per_sequence: Optional[int] = None,
        max_sequence_kv: Optional[int] = None,
        fixed_split_size: Optional[int] = None,
        disable_split_kv: bool = False,
    ) -> None:
        r"""Schedule a batch (host side; reads the index arrays, may synchronise).

        Args:
            qo_indptr: ``[B + 1]`` query row offsets.
            paged_kv_indptr: ``[B + 1]`` page-count offsets into paged_kv_indices.
            paged_kv_indices: ``[paged_kv_indptr[-1]]`` page ids (>= 0; checked against the cache at run).
            paged_kv_last_page_len: ``[B]``, ``1 <= last <= page_size`` for requests with pages.
            num_qo_heads, num_kv_heads: ``num_qo_heads % num_kv_heads == 0``.
            head_dim_qk, head_dim_vo: (64, 64), (128, 128), (256, 256) or (192, 128); vo defaults to qk.
            page_size: page size P >= 1 (must match the cache at run).
            custom_mask: flat bool mask of ``sum(qo_len_i * kv_len_i)`` elements (row-major per request).
            packed_custom_mask: uint8, each request's bits packed little-endian into its own
                byte-aligned segment (what ``segment_packbits(mask, indptr, "little")`` returns).
            causal, pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta:
                see single_prefill_with_kv_cache. Causal with qo_len > kv_len raises ValueError.
            use_fp16_qk_reduction, non_blocking, seq_lens_q, block_tables, max_token_per_sequence,
                max_sequence_kv, fixed_split_size, disable_split_kv: accepted, not needed (no split-KV).
            q_data_type: fp16/bf16; kv_data_type: q's dtype or an fp8 type (default q's).
            prefix_len_ptr, token_pos_in_items_ptr, max_item_len_ptr: multi-item scoring; must be None.
            seq_lens: ``[B]`` KV lengths overriding those derived from the page table.
        """
        qo = _host_i64("qo_indptr", qo_indptr)
        b = qo.shape[0] - 1
        if self._use_cuda_graph and b != self._fixed_batch_size:
            raise ValueError(f"qo_indptr: batch size {b} differs from the fixed {self._fixed_batch_size} (CUDA-graph mode)")
        kv_ip = _host_i64("paged_kv_indptr", paged_kv_indptr, b + 1)
        last = _host_i64("paged_kv_last_page_len", paged_kv_last_page_len, b)
        _check_indptr("qo_indptr", qo)
        _check_indptr("paged_kv_indptr", kv_ip)
        if page_size < 1:
            raise ValueError(f"page_size: expected >= 1, got {page_size}")
        if paged_kv_indices.dim() != 1 or paged_kv_indices.shape[0] < kv_ip[-1]:
            raise ValueError(f"paged_kv_indices: expected a 1-D tensor of >= {int(kv_ip[-1])} entries, "
                             f"got shape {tuple(paged_kv_indices.shape)}")
        idx_host = _host_i64("paged_kv_indices", paged_kv_indices)[: int(kv_ip[-1])]
        if idx_host.size and idx_host.min() < 0:
            raise ValueError(f"paged_kv_indices: page ids must be >= 0, got {int(idx_host.min())}")
        pages = np.diff(kv_ip)
        has = pages > 0
        if ((last < 1) | (last > page_size))[has].any():
            i = int(np.nonzero(((last < 1) | (last > page_size)) & has)[0][0])
            raise ValueError(f"paged_kv_last_page_len: expected 1 <= last <= page_size ({page_size}), "
                             f"got {int(last[i])} for request {i}")
        kv_lens = np.where(has, (pages - 1) * page_size + last, 0)
        if seq_lens is not None:
            sl = _host_i64("seq_lens", seq_lens, b)
            if (sl < 0).any() or (sl > pages * page_size).any():
                raise ValueError("seq_lens: each must be in [0, pages * page_size] of its request")
            kv_lens = sl
        self._max_page_id = int(idx_host.max()) if idx_host.size else -1
        self._page_size = int(page_size)
        if self._use_cuda_graph:
            if idx_host.shape[0] > self._paged_kv_indices_buf.shape[0]:
                raise ValueError(f"paged_kv_indices: {idx_host.shape[0]} entries exceed paged_kv_indices_buf "
                                 f"({self._paged_kv_indices_buf.shape[0]})")
            self._qo_indptr_buf.copy_(torch.from_numpy(qo).to(self._qo_indptr_buf.dtype))
            self._paged_kv_indptr_buf.copy_(torch.from_numpy(kv_ip).to(self._paged_kv_indptr_buf.dtype))
            self._paged_kv_last_page_len_buf.copy_(torch.from_numpy(last).to(self._paged_kv_last_page_len_buf.dtype))
        n_slots = self._paged_kv_indices_buf.shape[0] if self._use_cuda_graph else int(kv_ip[-1])
        if not (self._use_cuda_graph and self._planned):  # graph mode: the first plan's choice holds
            extra = (pos_encoding_mode != "NONE" or (logits_soft_cap or 0.0) > 0 or custom_mask is not None
                     or packed_custom_mask is not None or self._custom_mask_buf is not None)

            @functools.lru_cache(maxsize=None)
            def dense_reads():
                """K / V rows each tile of the dense kernel's height reads (both choices below
                weigh them; computed at most once)."""
                bm = block_m_for(self.device, head_dim_qk, head_dim_vo or head_dim_qk)
                return tile_kv_reads(np.diff(qo), kv_lens, num_qo_heads // num_kv_heads, bm, causal, window_left)[2]

            self._inplace = self._choose_inplace(num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo, page_size,
                                                 q_data_type, kv_data_type, extra, window_left, dense_reads)
            self._staging_bytes = 0 if self._inplace else self._choose_staging(
                qo, kv_lens, num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo, page_size, q_data_type,
                kv_data_type, n_slots, dense_reads, extra)
        self._plan_common(qo, kv_lens, kv_ip[:-1], num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo, custom_mask,
                          packed_custom_mask, causal, pos_encoding_mode, sm_scale, window_left, logits_soft_cap,
                          rope_scale, rope_theta, q_data_type, kv_data_type, prefix_len_ptr, token_pos_in_items_ptr,
                          max_item_len_ptr, paged_kernel=not (self._staging_bytes or self._inplace),
                          deal_always=self._inplace)
        idx_dev = torch.from_numpy(idx_host.astype(np.int32))
        if self._use_cuda_graph:
            self._paged_kv_indices_buf[: idx_dev.shape[0]].copy_(idx_dev)
        else:
            # the op sizes the staging buffer by len(kv_indices): pass exactly this plan's entries
            self._op_indices = self._persist("_indices", idx_dev, False)[:n_slots]
        self._staging_buf = self._staging_view()

    def _choose_inplace(self, num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo, page_size, q_data_type,
                        kv_data_type, extra, window_left, dense_reads) -> bool:
        """run() reads the pages in place (paged_inplace: sm90 Gluon kernel over a deal, no copy of
        K / V) instead of staging them or running the paged kernel: where paged_inplace allows it,
        if FLASHINFER_PREFILL_INPLACE names a form, else where plan() would deal the dense kernel
        (use_deal: the (tile, kv head) pairs are short, so the staging copy is a large share)."""
        head_dim_vo = head_dim_qk if head_dim_vo is None else head_dim_vo
        kv_dt = canonicalize_torch_dtype(kv_data_type, canonicalize_torch_dtype(q_data_type))
        if not (self.device.type == "cuda" and num_kv_heads > 0 and num_qo_heads % num_kv_heads == 0
                and has_tensor_copy_engine(self.device)
                and paged_inplace(arch_family(self.device), kv_dt in FP8_TYPES, extra, window_left, head_dim_qk,
                                  head_dim_vo, page_size, self._use_cuda_graph)):
            return False
        if inplace_setting()[1]:
            return True
        return short_pairs(arch_family(self.device), deal_grid(sm_count(self.device)), dense_reads(), num_kv_heads,
                           (head_dim_qk, head_dim_vo), self._use_cuda_graph)

    def _choose_staging(self, qo, kv_lens, num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo, page_size,
                        q_data_type, kv_data_type, n_slots, dense_reads, extra=False) -> int:
        """Bytes of the float workspace run() lends the op as K / V staging, or 0 for the paged
        kernel. Staging copies every K / V row of the batch once (into the workspace, as
        contiguous rows) and lets the dense kernel read them (whole-tile descriptor copies on sm90,
        no page-table arithmetic); it pays when the schedule reads each row >= stage_min_reuse()
        times (long prompts: each query tile reads the K / V rows up to its causal diagonal) and
        the workspace holds the copy."""
        head_dim_vo = head_dim_qk if head_dim_vo is None else head_dim_vo
        kv_dt = canonicalize_torch_dtype(kv_data_type, canonicalize_torch_dtype(q_data_type))
        if (head_dim_qk, head_dim_vo) not in HEAD_DIMS or not stage_enabled(
                arch_family(self.device), kv_dt in FP8_TYPES, extra, head_dim_qk, head_dim_vo,
                has_tensor_copy_engine(self.device)):
            return 0
        buf = self._float_workspace_buffer
        if not buf.is_contiguous():
            return 0
        need = staging_bytes(n_slots, page_size, num_kv_heads, head_dim_qk, head_dim_vo, kv_dt)
        if need == 0 or need > buf.numel() * buf.element_size():
            return 0
        qo_lens = np.diff(qo)
        live = qo_lens > 0
        staged_rows = int(kv_lens[live].sum())
        if num_kv_heads <= 0 or num_qo_heads % num_kv_heads or staged_rows == 0:
            return 0
        return need if int(dense_reads().sum()) >= stage_min_reuse() * staged_rows else 0

    def _staging_view(self) -> Optional[torch.Tensor]:
        """The planned staging bytes of the workspace (built at plan(), not per run()); a workspace
        swapped for a smaller one gives a short view, which the op refuses with a clear error."""
        if not self._staging_bytes:
            return None
        return self._float_workspace_buffer.view(-1).view(torch.uint8)[: self._staging_bytes]

    def reset_workspace_buffer(self, float_workspace_buffer: torch.Tensor, int_workspace_buffer=None) -> None:
        super().reset_workspace_buffer(float_workspace_buffer, int_workspace_buffer)
        self._staging_buf = self._staging_view()

    begin_forward = plan

    def run(
        self,
        q: torch.Tensor,
        paged_kv_cache: Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]],
        *args,
        q_scale: Optional[float] = None,
        k_scale: Optional[float] = None,
        v_scale: Optional[float] = None,
        out: Optional[torch.Tensor] = None,
        lse: Optional[torch.Tensor] = None,
        return_lse: bool = False,
        enable_pdl: Optional[bool] = None,
        window_left: Optional[int] = None,
        sinks: Optional[torch.Tensor] = None,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        r"""Attention of the planned batch: one operator call, no host synchronisation.

        Args:
            q: ``[qo_indptr[-1], num_qo_heads, head_dim_qk]`` in the planned q dtype.
            paged_kv_cache: 5-D tensor or (k_cache, v_cache) tuple (see the class doc), planned kv dtype.
            q_scale, k_scale: floats folded into sm_scale; v_scale: float multiplying the output.
            out: optional ``[qo_indptr[-1], num_qo_heads, head_dim_vo]`` destination (q dtype).
            lse: optional ``[qo_indptr[-1], num_qo_heads]`` float32 destination (base 2).
            return_lse: also return lse.
            enable_pdl: accepted, ignored. window_left: must equal the planned value if given.
            sinks: attention sinks; not supported (must be None).

        Returns:
            ``out``, or ``(out, lse)`` with return_lse.
        """
        if sinks is not None:
            raise ValueError("sinks: attention sinks are not supported")
        k_cache, v_cache = unpack_paged_kv_cache(paged_kv_cache, self._kv_layout)
        self._run_checks(q, k_cache, window_left)
        p = k_cache.shape[1] if self._kv_layout == "NHD" else k_cache.shape[2]
        if p != self._page_size:
            raise ValueError(f"paged_kv_cache: expected page size {self._page_size} (as planned), got {p}")
        if self._max_page_id >= k_cache.shape[0]:
            raise ValueError(f"paged_kv_indices: page id {self._max_page_id} out of range for a cache of "
                             f"{k_cache.shape[0]} pages")
        return_lse = return_lse or lse is not None
        out, lse = _alloc_out(q, q.shape[0], self._num_qo_heads, self._head_dim_vo, out, lse, return_lse)
        bm, mm, lay, pos, sm, wl, cap, rs, rt = self._scalars(q_scale, k_scale)
        _ops.batch_prefill_paged.default(out, lse, q, k_cache, v_cache, self._work, self._op_indices, self._mask,
                                         bm, mm, lay, pos, sm, wl, cap, rs, rt,
                                         float(v_scale if v_scale is not None else 1.0), self._staging_buf,
                                         self._deal)
        return (out, lse) if return_lse else out

    def run_return_lse(self, q, paged_kv_cache, *args, **kwargs):
        """run(..., return_lse=True)."""
        return self.run(q, paged_kv_cache, *args, return_lse=True, **kwargs)

    def forward(self, q, paged_kv_cache, causal=False, pos_encoding_mode="NONE", use_fp16_qk_reduction=False,
                k_scale=None, v_scale=None, window_left=-1, logits_soft_cap=None, sm_scale=None, rope_scale=None,
                rope_theta=None):
        """Deprecated: overwrites the planned runtime scalars with these arguments, then run()."""
        self._forward_overrides(causal, pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale,
                                rope_theta)
        return self.run(q, paged_kv_cache, k_scale=k_scale, v_scale=v_scale)

    def forward_return_lse(self, q, paged_kv_cache, causal=False, pos_encoding_mode="NONE",
                           use_fp16_qk_reduction=False, k_scale=None, v_scale=None, window_left=-1,
                           logits_soft_cap=None, sm_scale=None, rope_scale=None, rope_theta=None):
        """Deprecated: as forward(), returning (out, lse)."""
        self._forward_overrides(causal, pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale,
                                rope_theta)
        return self.run(q, paged_kv_cache, k_scale=k_scale, v_scale=v_scale, return_lse=True)


class BatchPrefillWithRaggedKVCacheWrapper(_PrefillPlanner):
    r"""Batch prefill over ragged (concatenated) K/V: request i owns query rows
    ``qo_indptr[i]:qo_indptr[i+1]`` and key/value rows ``kv_indptr[i]:kv_indptr[i+1]``.

    Example::

        wrapper = BatchPrefillWithRaggedKVCacheWrapper(torch.empty(128 << 20, dtype=torch.uint8, device="cuda"))
        wrapper.plan(qo_indptr, kv_indptr, 32, 8, 128, causal=True, q_data_type=torch.bfloat16)
        out = wrapper.run(q, k, v)   # q [nnz_q, 32, 128], k/v [nnz_kv, 8, 128] -> out [nnz_q, 32, 128]
    """

    def __init__(
        self,
        float_workspace_buffer: torch.Tensor,
        kv_layout: str = "NHD",
        use_cuda_graph: bool = False,
        qo_indptr_buf: Optional[torch.Tensor] = None,
        kv_indptr_buf: Optional[torch.Tensor] = None,
        custom_mask_buf: Optional[torch.Tensor] = None,
        mask_indptr_buf: Optional[torch.Tensor] = None,
        backend: str = "auto",
        jit_args: Optional[Any] = None,
        jit_kwargs: Optional[Any] = None,
    ) -> None:
        r"""Args:
            float_workspace_buffer: user workspace; fixes the device. Not used by the kernel.
            kv_layout: ``"NHD"`` or ``"HND"``.
            use_cuda_graph: fixed batch size; qo_indptr_buf and kv_indptr_buf (int32 ``[B + 1]``) required.
            custom_mask_buf, mask_indptr_buf: graph-mode mask buffers (as the paged wrapper).
            backend: "auto"/"fa2"/"triton"/"native"; "aiter" and unknown values raise ValueError.
            jit_args, jit_kwargs: not supported (must be None).
        """
        super().__init__(float_workspace_buffer, kv_layout, use_cuda_graph, backend, jit_args, jit_kwargs,
                         custom_mask_buf, mask_indptr_buf)
        self._backend = _resolve_backend(backend)
        if use_cuda_graph:
            self._fixed_batch_size = check_graph_buffers(self.device, (
                ("qo_indptr_buf", qo_indptr_buf, 1), ("kv_indptr_buf", kv_indptr_buf, 1)))
        self._qo_indptr_buf = qo_indptr_buf
        self._kv_indptr_buf = kv_indptr_buf

    def plan(
        self,
        qo_indptr: torch.Tensor,
        kv_indptr: torch.Tensor,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim_qk: int,
        head_dim_vo: Optional[int] = None,
        custom_mask: Optional[torch.Tensor] = None,
        packed_custom_mask: Optional[torch.Tensor] = None,
        causal: bool = False,
        pos_encoding_mode: str = "NONE",
        use_fp16_qk_reduction: bool = False,
        window_left: int = -1,
        logits_soft_cap: Optional[float] = None,
        sm_scale: Optional[float] = None,
        rope_scale: Optional[float] = None,
        rope_theta: Optional[float] = None,
        q_data_type: Union[str, torch.dtype] = "float16",
        kv_data_type: Optional[Union[str, torch.dtype]] = None,
        non_blocking: bool = True,
        prefix_len_ptr: Optional[torch.Tensor] = None,
        token_pos_in_items_ptr: Optional[torch.Tensor] = None,
        token_pos_in_items_len: int = 0,
        max_item_len_ptr: Optional[torch.Tensor] = None,
        fixed_split_size: Optional[int] = None,
        disable_split_kv: bool = False,
    ) -> None:
        r"""Schedule a batch (host side).

        Args:
            qo_indptr: ``[B + 1]`` query row offsets; kv_indptr: ``[B + 1]`` key/value row offsets.
            num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo: as the paged wrapper; (192, 128) is
                supported (MLA-style prefill).
            custom_mask, packed_custom_mask, causal, pos_encoding_mode, window_left, logits_soft_cap,
                sm_scale, rope_scale, rope_theta, q_data_type, kv_data_type: as the paged wrapper.
            use_fp16_qk_reduction, non_blocking, fixed_split_size, disable_split_kv: accepted, not needed.
            prefix_len_ptr, token_pos_in_items_ptr, max_item_len_ptr: must be None.
        """
        qo = _host_i64("qo_indptr", qo_indptr)
        b = qo.shape[0] - 1
        if self._use_cuda_graph and b != self._fixed_batch_size:
            raise ValueError(f"qo_indptr: batch size {b} differs from the fixed {self._fixed_batch_size} (CUDA-graph mode)")
        kv = _host_i64("kv_indptr", kv_indptr, b + 1)
        _check_indptr("qo_indptr", qo)
        _check_indptr("kv_indptr", kv)
        if self._use_cuda_graph:
            self._qo_indptr_buf.copy_(torch.from_numpy(qo).to(self._qo_indptr_buf.dtype))
            self._kv_indptr_buf.copy_(torch.from_numpy(kv).to(self._kv_indptr_buf.dtype))
        self._nnz_kv = int(kv[-1])
        self._plan_common(qo, np.diff(kv), kv[:-1], num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo, custom_mask,
                          packed_custom_mask, causal, pos_encoding_mode, sm_scale, window_left, logits_soft_cap,
                          rope_scale, rope_theta, q_data_type, kv_data_type, prefix_len_ptr, token_pos_in_items_ptr,
                          max_item_len_ptr)

    begin_forward = plan

    def run(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *args,
        out: Optional[torch.Tensor] = None,
        lse: Optional[torch.Tensor] = None,
        return_lse: bool = False,
        enable_pdl: Optional[bool] = None,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        r"""Attention of the planned batch: one operator call, no host synchronisation.

        Args:
            q: ``[qo_indptr[-1], num_qo_heads, head_dim_qk]``.
            k: ``[kv_indptr[-1], num_kv_heads, head_dim_qk]`` (NHD) or heads first (HND).
            v: ``[kv_indptr[-1], num_kv_heads, head_dim_vo]`` (NHD) or heads first (HND).
            out, lse, return_lse: as the paged wrapper. enable_pdl: accepted, ignored.

        Returns:
            ``out [qo_indptr[-1], num_qo_heads, head_dim_vo]``, or ``(out, lse)``.
        """
        self._run_checks(q, k, None)
        rows = k.shape[0] if self._kv_layout == "NHD" else (k.shape[1] if k.dim() == 3 else -1)
        if k.dim() != 3 or rows < self._nnz_kv:
            raise ValueError(f"k: expected a 3-D tensor with >= {self._nnz_kv} rows (kv_indptr[-1]), "
                             f"got shape {tuple(k.shape)}")
        return_lse = return_lse or lse is not None
        out, lse = _alloc_out(q, q.shape[0], self._num_qo_heads, self._head_dim_vo, out, lse, return_lse)
        bm, mm, lay, pos, sm, wl, cap, rs, rt = self._scalars()
        _ops.batch_prefill_ragged.default(out, lse, q, k, v, self._work, self._mask, bm, mm, lay, pos, sm, wl, cap,
                                          rs, rt, 1.0, self._deal)
        return (out, lse) if return_lse else out

    def run_return_lse(self, q, k, v, *args, **kwargs):
        """run(..., return_lse=True)."""
        return self.run(q, k, v, *args, return_lse=True, **kwargs)

    def forward(self, q, k, v, causal=False, pos_encoding_mode="NONE", use_fp16_qk_reduction=False, window_left=-1,
                logits_soft_cap=None, sm_scale=None, rope_scale=None, rope_theta=None):
        """Deprecated: overwrites the planned runtime scalars with these arguments, then run()."""
        self._forward_overrides(causal, pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale,
                                rope_theta)
        return self.run(q, k, v)

    def forward_return_lse(self, q, k, v, causal=False, pos_encoding_mode="NONE", use_fp16_qk_reduction=False,
                           window_left=-1, logits_soft_cap=None, sm_scale=None, rope_scale=None, rope_theta=None):
        """Deprecated: as forward(), returning (out, lse)."""
        self._forward_overrides(causal, pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale,
                                rope_theta)
        return self.run(q, k, v, return_lse=True)
