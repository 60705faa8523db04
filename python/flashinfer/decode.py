"""Decode attention: one query token per request against a dense or paged KV cache.

``single_decode_with_kv_cache`` and ``BatchDecodeWithPagedKVCacheWrapper`` keep FlashInfer's
signatures. Underneath, one Triton split-KV decode kernel (+ a merge of the partial states) serves
every variant, as the operators ``torch.ops.flashinfer.single_decode_with_kv_cache`` and
``torch.ops.flashinfer.batch_decode_with_paged_kv_cache``. ``plan()`` runs on the host: it validates
the page table, decides how to split long KV ranges so small batches still fill the GPU, and
writes the work table into persistent device buffers; ``run()`` is one operator call (no host sync,
no allocation besides the outputs), capturable in a CUDA graph and traceable by torch.compile.
"""
import math
from typing import Any, Optional, Tuple, Union

import torch

import flashinfer_ops  # noqa: F401  (registers torch.ops.flashinfer)
from flashinfer_ops.fake.attention.decode import HEAD_DIMS, check_kv_dtype
from flashinfer_ops.kernels.attention.decode import WORK_COLS
from flashinfer_ops.configs import arch_family
from flashinfer_ops.configs.attention.decode import FUSED_MERGE_MAX_CHUNKS, fused_merge
from flashinfer_ops.launch.attention.decode import build_schedule, chunk_tokens, programs_per_sm, sm_count, target_items

from .utils import (
    PosEncodingMode,
    canonicalize_torch_dtype,
    check_graph_buffers,
    check_kv_layout,
    check_pos_encoding_mode,
    unpack_paged_kv_cache,
)

_ops = torch.ops.flashinfer
_BACKENDS = ("auto", "fa2", "triton", "native")
_INT_WORKSPACE_BYTES = 8 << 20


def _pos_code(mode: str) -> int:
    return PosEncodingMode[check_pos_encoding_mode(mode)].value


def _scale_value(name: str, x) -> float:
    if x is None:
        return 1.0
    if isinstance(x, torch.Tensor):  # a device scalar costs a sync here; engines pass floats
        if x.numel() != 1:
            raise ValueError(f"{name}: expected a float or a one-element tensor, got shape {tuple(x.shape)}")
        return float(x.item())
    return float(x)


def single_decode_with_kv_cache(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_layout: str = "NHD",
    pos_encoding_mode: str = "NONE",
    use_tensor_cores: bool = False,
    q_scale: Optional[float] = None,
    k_scale: Optional[float] = None,
    v_scale: Optional[float] = None,
    window_left: int = -1,
    logits_soft_cap: Optional[float] = None,
    sm_scale: Optional[float] = None,
    rope_scale: Optional[float] = None,
    rope_theta: Optional[float] = None,
    return_lse: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Decode attention of one query token against one request's KV.

    Args:
        q: ``[num_qo_heads, head_dim]``, fp16/bf16.
        k: ``[kv_len, num_kv_heads, head_dim]`` (NHD) or ``[num_kv_heads, kv_len, head_dim]`` (HND);
            fp16/bf16 (same as ``q``) or fp8 (e4m3fn, e5m2, e4m3fnuz, e5m2fnuz). Only the last
            dimension must be contiguous.
        v: same shape and dtype as ``k``.
        kv_layout: ``"NHD"`` or ``"HND"``.
        pos_encoding_mode: ``"NONE"``, ``"ROPE_LLAMA"`` (RoPE applied in the kernel; the query sits
            at position ``kv_len - 1``) or ``"ALIBI"``.
        use_tensor_cores: accepted; the same kernel runs (it uses matrix instructions anyway).
        q_scale, k_scale: floats multiplied into ``sm_scale``. v_scale: float multiplying the output.
        window_left: left sliding window (the query sees the last ``window_left + 1`` keys); -1 = off.
        logits_soft_cap: ``cap * tanh(s / cap)`` applied after ``sm_scale``; None/0 = off.
        sm_scale: default ``1 / sqrt(head_dim)``.
        rope_scale, rope_theta: RoPE parameters (defaults 1 and 1e4).
        return_lse: also return the base-2 log-sum-exp of the logits.

    Returns:
        ``out [num_qo_heads, head_dim]`` (dtype of ``q``), and with ``return_lse`` also
        ``lse [num_qo_heads]`` float32.
    """
    check_kv_layout(kv_layout)
    mode = _pos_code(pos_encoding_mode)
    if kv_layout == "HND":
        k, v = k.transpose(0, 1), v.transpose(0, 1)
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(q.shape[-1])
    sm_scale = float(sm_scale) * _scale_value("q_scale", q_scale)
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:1], dtype=torch.float32, device=q.device) if return_lse else None
    _ops.single_decode_with_kv_cache.default(
        out, lse, q, k, v, sm_scale, float(logits_soft_cap or 0.0), int(window_left), mode,
        float(rope_scale if rope_scale is not None else 1.0), float(rope_theta if rope_theta is not None else 1e4),
        _scale_value("k_scale", k_scale), _scale_value("v_scale", v_scale),
    )
    return (out, lse) if return_lse else out


def _host_int(name: str, t, length: Optional[int] = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t)
    if t.dim() != 1 or t.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}: expected a 1-D int32 tensor, got shape {tuple(t.shape)} dtype {t.dtype}")
    if length is not None and t.numel() != length:
        raise ValueError(f"{name}: expected {length} elements, got {t.numel()}")
    return t.detach().to("cpu", torch.int64)


class BatchDecodeWithPagedKVCacheWrapper:
    r"""Batch decode (one query token per request) against a paged KV cache.

    The cache is a 5-D tensor ``[max_pages, 2, page_size, num_kv_heads, head_dim]`` (NHD) /
    ``[max_pages, 2, num_kv_heads, page_size, head_dim]`` (HND), or a tuple ``(k_cache, v_cache)``
    of 4-D ``[max_pages, page_size, num_kv_heads, head_dim]`` / ``[max_pages, num_kv_heads,
    page_size, head_dim]`` (a 4-D tensor / 3-D tuple members mean page size 1). The page table is
    CSR: ``indptr [B+1]``, ``indices [indptr[-1]]``, ``last_page_len [B]``.

    Example::

        ws = torch.zeros(128 << 20, dtype=torch.uint8, device="cuda")
        wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, "NHD")
        wrapper.plan(indptr, indices, last_page_len, 32, 8, 128, 16, q_data_type=torch.bfloat16)
        out = wrapper.run(q, kv_cache)          # q [B, 32, 128]
    """

    def __init__(
        self,
        float_workspace_buffer: torch.Tensor,
        kv_layout: str = "NHD",
        use_cuda_graph: bool = False,
        use_tensor_cores: bool = False,
        paged_kv_indptr_buffer: Optional[torch.Tensor] = None,
        paged_kv_indices_buffer: Optional[torch.Tensor] = None,
        paged_kv_last_page_len_buffer: Optional[torch.Tensor] = None,
        backend: str = "auto",
        jit_args: Optional[Any] = None,
    ) -> None:
        r"""
        Args:
            float_workspace_buffer: user workspace (128 MiB recommended, uint8) on the device; holds
                the partial states of split requests.
            kv_layout: ``"NHD"`` or ``"HND"``.
            use_cuda_graph: fixed batch size; ``plan`` writes the page table into the three
                user buffers below, so a captured ``run`` stays valid across re-plans.
            use_tensor_cores: accepted; the same kernel runs.
            paged_kv_indptr_buffer: ``[batch + 1]`` int32 (graph mode).
            paged_kv_indices_buffer: ``[max_num_pages]`` int32 (graph mode).
            paged_kv_last_page_len_buffer: ``[batch]`` int32 (graph mode).
            backend: ``"auto"``, ``"fa2"``, ``"triton"`` or ``"native"`` (all our Triton kernel);
                ``"aiter"`` is refused (no AITER decode adapter exists here).
            jit_args: custom attention variants are not supported (must be None).
        """
        check_kv_layout(kv_layout)
        if backend == "aiter":
            raise ValueError("backend: 'aiter' has no decode adapter in this library; use 'auto' or 'fa2' "
                             "(the Triton decode kernel)")
        if backend not in _BACKENDS:
            raise ValueError(f"backend: expected one of {list(_BACKENDS) + ['aiter']}, got {backend!r}")
        if jit_args is not None:
            raise ValueError("jit_args: custom attention variants (JIT) are not supported; expected None")
        self._kv_layout = kv_layout
        self._backend = "fa2"
        self._use_tensor_cores = bool(use_tensor_cores)
        self._use_cuda_graph = bool(use_cuda_graph)
        self.device = float_workspace_buffer.device
        self._float_workspace_buffer = float_workspace_buffer
        self._int_workspace_buffer = torch.empty(_INT_WORKSPACE_BYTES, dtype=torch.uint8, device=self.device)
        self._pin_memory_int_workspace_buffer = torch.empty(
            _INT_WORKSPACE_BYTES, dtype=torch.uint8, device="cpu", pin_memory=self.device.type == "cuda")
        self._fixed_batch_size = check_graph_buffers(self.device, (
            ("paged_kv_indptr_buffer", paged_kv_indptr_buffer, 1),
            ("paged_kv_last_page_len_buffer", paged_kv_last_page_len_buffer, 0),
            ("paged_kv_indices_buffer", paged_kv_indices_buffer, None))) if use_cuda_graph else 0
        self._paged_kv_indptr_buf = paged_kv_indptr_buffer
        self._paged_kv_indices_buf = paged_kv_indices_buffer
        self._paged_kv_last_page_len_buf = paged_kv_last_page_len_buffer
        self._own_indices_buf: Optional[torch.Tensor] = None
        self._capacity = 0  # work-table rows
        self._batch_capacity = 0  # request-table rows
        self._tmp_slots = 0
        self._merge_counters: Optional[torch.Tensor] = None
        self._copy_done: Optional[torch.cuda.Event] = None
        self._planned = False
        self._plan_info = None
        self._window_left = -1
        self._logits_soft_cap = 0.0
        self._sm_scale = None
        self._rope_scale = None
        self._rope_theta = None
        self._pos_encoding_mode = "NONE"
        self._pos_code = 0
        self._cached_q_data_type = torch.float16
        self._cached_kv_data_type = torch.float16
        self._block_tables = None

    # ---- properties ------------------------------------------------------------------------------
    @property
    def is_cuda_graph_enabled(self) -> bool:
        return self._use_cuda_graph

    @property
    def use_tensor_cores(self) -> bool:
        return self._use_tensor_cores

    def reset_workspace_buffer(self, float_workspace_buffer: torch.Tensor, int_workspace_buffer: torch.Tensor) -> None:
        r"""Replace both workspaces (re-plan afterwards; a captured graph keeps the old ones)."""
        self._float_workspace_buffer = float_workspace_buffer
        self._int_workspace_buffer = int_workspace_buffer
        self._pin_memory_int_workspace_buffer = torch.empty(
            int_workspace_buffer.numel() * int_workspace_buffer.element_size(), dtype=torch.uint8, device="cpu",
            pin_memory=self.device.type == "cuda")
        self._capacity = 0
        self._planned = False

    # ---- plan ------------------------------------------------------------------------------------
    def plan(
        self,
        indptr: torch.Tensor,
        indices: torch.Tensor,
        last_page_len: torch.Tensor,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim: int,
        page_size: int,
        pos_encoding_mode: str = "NONE",
        window_left: int = -1,
        logits_soft_cap: Optional[float] = None,
        q_data_type: Optional[Union[str, torch.dtype]] = "float16",
        kv_data_type: Optional[Union[str, torch.dtype]] = None,
        data_type: Optional[Union[str, torch.dtype]] = None,
        sm_scale: Optional[float] = None,
        rope_scale: Optional[float] = None,
        rope_theta: Optional[float] = None,
        non_blocking: bool = True,
        block_tables: Optional[torch.Tensor] = None,
        seq_lens: Optional[torch.Tensor] = None,
        fixed_split_size: Optional[int] = None,
        disable_split_kv: bool = False,
    ) -> None:
        r"""Plan decode for one batch composition (host side; call before ``run``).

        Args:
            indptr: ``[batch_size + 1]`` int32 page-table prefix sums (host or device).
            indices: ``[indptr[-1]]`` int32 physical page ids.
            last_page_len: ``[batch_size]`` int32, each in ``[1, page_size]`` (any value in
                ``[0, page_size]`` for a request with no pages).
            num_qo_heads, num_kv_heads: ``num_qo_heads % num_kv_heads == 0``.
            head_dim: 64, 128 or 256.
            page_size: tokens per page (>= 1).
            pos_encoding_mode: ``"NONE"``, ``"ROPE_LLAMA"`` or ``"ALIBI"``.
            window_left: left sliding window, -1 = off (``run`` must use the same value).
            logits_soft_cap: None/0 = off.
            q_data_type: query dtype (default ``"float16"``). kv_data_type: KV dtype (default: as
                ``q``); fp8 formats allowed. data_type: deprecated, fills whichever is None.
            sm_scale: default ``1 / sqrt(head_dim)``. rope_scale, rope_theta: RoPE parameters.
            non_blocking: accepted (copies are always asynchronous from pinned memory).
            block_tables: accepted and stored, unused.
            seq_lens: optional ``[batch_size]`` KV lengths overriding those derived from the page
                table (each ``<= pages * page_size``).
            fixed_split_size: if > 0, split every request into chunks of this many pages.
            disable_split_kv: never split a request's KV.

        Raises ``ValueError`` for inconsistent arguments or page-table contents (non-monotone
        ``indptr``, negative page ids, ``last_page_len`` out of range), before writing anything.
        """
        self._plan(indptr, indices, last_page_len, num_qo_heads, num_kv_heads, head_dim, page_size,
                   pos_encoding_mode, window_left, logits_soft_cap, q_data_type, kv_data_type, data_type, sm_scale,
                   rope_scale, rope_theta, seq_lens, fixed_split_size, disable_split_kv, validate=True,
                   indptr_host=None)
        self._block_tables = block_tables

    begin_forward = plan

    def _plan(self, indptr, indices, last_page_len, num_qo_heads, num_kv_heads, head_dim, page_size,
              pos_encoding_mode, window_left, logits_soft_cap, q_data_type, kv_data_type, data_type, sm_scale,
              rope_scale, rope_theta, seq_lens, fixed_split_size, disable_split_kv, validate, indptr_host):
        check_pos_encoding_mode(pos_encoding_mode)
        if q_data_type is None:
            q_data_type = data_type if data_type is not None else torch.float16
        if kv_data_type is None:
            kv_data_type = data_type if data_type is not None else q_data_type
        q_dt = canonicalize_torch_dtype(q_data_type)
        kv_dt = canonicalize_torch_dtype(kv_data_type)
        if q_dt not in (torch.float16, torch.bfloat16):
            raise ValueError(f"q_data_type: expected float16 or bfloat16, got {q_dt}")
        check_kv_dtype("kv_data_type", kv_dt, q_dt)
        num_qo_heads, num_kv_heads, head_dim, page_size = int(num_qo_heads), int(num_kv_heads), int(head_dim), int(page_size)
        if num_kv_heads <= 0 or num_qo_heads % num_kv_heads != 0:
            raise ValueError(f"num_qo_heads ({num_qo_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        if head_dim not in HEAD_DIMS:
            raise ValueError(f"head_dim: expected one of {list(HEAD_DIMS)}, got {head_dim}")
        if page_size < 1:
            raise ValueError(f"page_size: expected >= 1, got {page_size}")
        window_left = int(window_left) if window_left is not None else -1
        if window_left < -1:
            raise ValueError(f"window_left: expected -1 (off) or >= 0, got {window_left}")

        ip = _host_int("indptr", indptr_host if indptr_host is not None else indptr)
        if ip.numel() < 1:
            raise ValueError("indptr: expected at least one element")
        batch = ip.numel() - 1
        if self._use_cuda_graph and batch != self._fixed_batch_size:
            raise ValueError(f"indptr: the CUDA-graph wrapper was built for batch size {self._fixed_batch_size}, "
                             f"got {batch}")
        if int(ip[0]) != 0 or bool((ip[1:] < ip[:-1]).any()):
            raise ValueError(f"indptr: must start at 0 and be non-decreasing, got {ip.tolist()[:16]}")
        nnz = int(ip[-1])
        if indices.dim() != 1 or indices.numel() < nnz:
            raise ValueError(f"indices: expected a 1-D tensor with at least indptr[-1] = {nnz} elements, "
                             f"got shape {tuple(indices.shape)}")
        if indices.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"indices: expected int32, got {indices.dtype}")
        if self._use_cuda_graph and nnz > self._paged_kv_indices_buf.numel():
            raise ValueError(f"indices: {nnz} pages do not fit paged_kv_indices_buffer "
                             f"({self._paged_kv_indices_buf.numel()})")
        if validate and nnz:
            lo_hi = indices[:nnz]
            lo_hi = torch.stack([lo_hi.min(), lo_hi.max()]).tolist()
            if lo_hi[0] < 0 or lo_hi[1] > torch.iinfo(torch.int32).max:
                raise ValueError(f"indices: page ids must be in [0, 2^31), got range {lo_hi}")
        pages = ip[1:] - ip[:-1]
        if page_size == 1 and not validate:
            kv_lens = pages.clone()
        else:
            last = _host_int("last_page_len", last_page_len, batch)
            full = pages > 0
            if bool(((last < 1) | (last > page_size))[full].any()) or bool(((last < 0) | (last > page_size))[~full].any()):
                raise ValueError(f"last_page_len: expected values in [1, page_size={page_size}], got "
                                 f"{last.tolist()[:16]}")
            kv_lens = torch.where(full, (pages - 1) * page_size + last, torch.zeros_like(pages))
        if seq_lens is not None:
            sl = _host_int("seq_lens", seq_lens, batch)
            if bool(((sl < 0) | (sl > pages * page_size)).any()):
                raise ValueError("seq_lens: each length must be in [0, pages * page_size]")
            kv_lens = sl

        # ---- capacities (fixed shapes across plans: no graph invalidation, no recompiles) ----------
        sms = sm_count(self.device)
        per_sm = programs_per_sm(self.device, kv_dt)
        need_cap = batch + target_items(num_kv_heads, sms, per_sm)
        vis = kv_lens.clamp_max(window_left + 1) if window_left >= 0 else kv_lens
        fixed = fixed_split_size * page_size if fixed_split_size is not None and fixed_split_size > 0 else None
        if fixed and not self._use_cuda_graph:  # graph mode keeps its table: chunks grow to fit instead
            need_cap = max(need_cap, int(((vis + fixed - 1) // fixed).clamp_min(1).sum()))
        if not self._use_cuda_graph or self._capacity == 0:
            grow = need_cap > self._capacity or batch > self._batch_capacity
            if grow:
                self._capacity = max(self._capacity, need_cap)
                self._batch_capacity = max(self._batch_capacity, batch, 1)
        elif need_cap > self._capacity:
            raise ValueError(f"num_kv_heads: the captured CUDA-graph plan has room for {self._capacity} work items; "
                             f"re-create the wrapper for a different model shape")
        cap, bcap = self._capacity, self._batch_capacity
        int_bytes = self._int_workspace_buffer.numel() * self._int_workspace_buffer.element_size()
        if (cap * WORK_COLS + bcap * 2) * 4 > int_bytes:
            raise ValueError("int workspace too small for the decode work table")
        per_slot = num_qo_heads * (head_dim + 1) * 4
        fws = self._float_workspace_buffer
        slots = min(cap, (fws.numel() * fws.element_size()) // per_slot)
        chunk = chunk_tokens(vis, num_kv_heads, sms, max_items=min(cap, slots), disable_split=bool(disable_split_kv),
                             fixed_chunk=fixed, per_sm=per_sm)
        work, reqs, _ = build_schedule(kv_lens, ip[:-1], window_left, chunk, cap)
        # Split requests merged inside the decode kernel (no merge launch) when each has few chunks:
        # ticket counters (zeroed here, left zero by the kernel) follow the request table.
        most_chunks = int(reqs[:, 1].max()) if batch else 0
        n_cnt = bcap * num_qo_heads
        fused = (self.device.type == "cuda" and fused_merge(arch_family(self.device))
                 and 1 < most_chunks <= FUSED_MERGE_MAX_CHUNKS
                 and (cap * WORK_COLS + bcap * 2 + n_cnt) * 4 <= int_bytes)

        # ---- device writes (after all checks) ---------------------------------------------------
        if self._copy_done is not None:
            self._copy_done.synchronize()  # the pinned mirror may still feed the previous copy
        n_req = cap * WORK_COLS + bcap * 2
        n_int = n_req + (n_cnt if fused else 0)
        pinned = self._pin_memory_int_workspace_buffer.view(torch.int32)[:n_int]
        pinned[: cap * WORK_COLS].copy_(work.view(-1))
        pinned[cap * WORK_COLS: cap * WORK_COLS + batch * 2].copy_(reqs.view(-1))
        pinned[n_req:].zero_()
        dev = self._int_workspace_buffer.view(torch.int32)
        dev[:n_int].copy_(pinned, non_blocking=True)
        if self.device.type == "cuda":
            self._copy_done = torch.cuda.Event()
            self._copy_done.record()
        self._work_info = dev[: cap * WORK_COLS].view(cap, WORK_COLS)
        self._request_info = dev[cap * WORK_COLS: n_req].view(bcap, 2)
        self._merge_counters = dev[n_req:n_int] if fused else None
        fview = fws.view(torch.uint8)[: max(slots, 1) * per_slot].view(torch.float32)
        self._tmp_o = fview[: max(slots, 1) * num_qo_heads * head_dim].view(max(slots, 1), num_qo_heads, head_dim)
        self._tmp_lse = fview[max(slots, 1) * num_qo_heads * head_dim:].view(max(slots, 1), num_qo_heads)

        idx32 = indices[:nnz].to(torch.int32)
        if self._use_cuda_graph:
            if nnz and self._paged_kv_indices_buf.data_ptr() != indices.data_ptr():
                self._paged_kv_indices_buf[:nnz].copy_(idx32, non_blocking=True)
            if self._paged_kv_indptr_buf.data_ptr() != getattr(indptr, "data_ptr", lambda: -1)():
                self._paged_kv_indptr_buf.copy_(ip.to(torch.int32), non_blocking=True)
            if isinstance(last_page_len, torch.Tensor) and last_page_len.numel() == batch and \
                    self._paged_kv_last_page_len_buf.data_ptr() != last_page_len.data_ptr():
                self._paged_kv_last_page_len_buf.copy_(last_page_len, non_blocking=True)
        else:
            need = max(nnz, 1)
            if self._own_indices_buf is None or self._own_indices_buf.numel() < need:
                size = max(1024, 1 << (need - 1).bit_length())
                self._own_indices_buf = torch.zeros(size, dtype=torch.int32, device=self.device)
            self._own_indices_buf[:nnz].copy_(idx32, non_blocking=True)
            self._paged_kv_indices_buf = self._own_indices_buf
            self._paged_kv_indptr_buf = ip.to(self.device, torch.int32)
            self._paged_kv_last_page_len_buf = (last_page_len.to(self.device, torch.int32)
                                                if isinstance(last_page_len, torch.Tensor) else None)

        self._batch_size = batch
        self._num_qo_heads, self._num_kv_heads, self._head_dim = num_qo_heads, num_kv_heads, head_dim
        self._page_size = page_size
        self._window_left = window_left
        self._logits_soft_cap = float(logits_soft_cap) if logits_soft_cap else 0.0
        self._sm_scale = sm_scale
        self._rope_scale = rope_scale
        self._rope_theta = rope_theta
        self._pos_encoding_mode = pos_encoding_mode
        self._pos_code = _pos_code(pos_encoding_mode)
        self._cached_q_data_type = q_dt
        self._cached_kv_data_type = kv_dt
        self._chunk_tokens = chunk
        self._planned = True

    # ---- run -------------------------------------------------------------------------------------
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
        q_len_per_req: Optional[int] = 1,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        r"""Decode attention for the planned batch.

        Args:
            q: ``[batch_size, num_qo_heads, head_dim]`` (planned dtype; last dim contiguous).
            paged_kv_cache: 5-D tensor or ``(k_cache, v_cache)`` tuple in the wrapper's layout
                (see the class docstring), planned KV dtype.
            q_scale, k_scale: floats multiplied into ``sm_scale``; v_scale: float scaling the output.
            out: optional ``[batch_size, num_qo_heads, head_dim]`` destination (dtype of ``q``).
            lse: optional ``[batch_size, num_qo_heads]`` float32 destination (implies return_lse).
            return_lse: also return the base-2 log-sum-exp.
            enable_pdl: ignored (no PDL on AMD).
            window_left: must equal the planned value when given.
            sinks: not supported (must be None). q_len_per_req: must be 1.

        Returns:
            ``out`` or ``(out, lse)``.
        """
        out, lse, args = self._op_args(q, paged_kv_cache, args, q_scale, k_scale, v_scale, out, lse, return_lse,
                                       window_left, sinks, q_len_per_req)
        _ops.batch_decode_with_paged_kv_cache.default(*args)
        return (out, lse) if lse is not None else out

    def _op_args(self, q, paged_kv_cache, args=(), q_scale=None, k_scale=None, v_scale=None, out=None, lse=None,
                 return_lse=False, window_left=None, sinks=None, q_len_per_req=1):
        """Validate a run() call; (out, lse or None, the operator's argument tuple)."""
        if not self._planned:
            raise RuntimeError("BatchDecodeWithPagedKVCacheWrapper.run() called before plan()")
        if args:
            raise ValueError("run: extra positional arguments are only for JIT attention variants (unsupported)")
        if sinks is not None:
            raise ValueError("sinks: attention sinks are not supported by the decode kernel; expected None")
        if q_len_per_req not in (None, 1):
            raise ValueError(f"q_len_per_req: expected 1, got {q_len_per_req}")
        if window_left is not None and window_left != self._window_left:
            raise ValueError(f"window_left: planned {self._window_left}, got {window_left} at run")
        k_cache, v_cache = unpack_paged_kv_cache(paged_kv_cache, self._kv_layout)
        if self._kv_layout == "HND":
            k_cache, v_cache = k_cache.transpose(1, 2), v_cache.transpose(1, 2)
        if q.dtype != self._cached_q_data_type:
            raise ValueError(f"q: planned dtype {self._cached_q_data_type}, got {q.dtype}")
        if k_cache.dtype != self._cached_kv_data_type:
            raise ValueError(f"paged_kv_cache: planned dtype {self._cached_kv_data_type}, got {k_cache.dtype}")
        expect_q = (self._batch_size, self._num_qo_heads, self._head_dim)
        if tuple(q.shape) != expect_q:
            raise ValueError(f"q: expected shape {expect_q} (as planned), got {tuple(q.shape)}")
        if k_cache.shape[1] != self._page_size or k_cache.shape[2] != self._num_kv_heads or \
                k_cache.shape[3] != self._head_dim:
            raise ValueError(f"paged_kv_cache: expected page_size {self._page_size}, {self._num_kv_heads} kv heads, "
                             f"head_dim {self._head_dim} (as planned), got k_cache {tuple(k_cache.shape)} "
                             f"({self._kv_layout})")
        sm_scale = self._sm_scale if self._sm_scale is not None else 1.0 / math.sqrt(self._head_dim)
        sm_scale = float(sm_scale) * _scale_value("q_scale", q_scale)
        if out is None:
            out = torch.empty_like(q)
        if lse is not None:
            return_lse = True
        elif return_lse:
            lse = torch.empty(q.shape[:2], dtype=torch.float32, device=q.device)
        return out, lse, (
            out, lse, q, k_cache, v_cache, self._paged_kv_indices_buf, self._work_info, self._request_info,
            self._tmp_o, self._tmp_lse, sm_scale, self._logits_soft_cap, self._window_left,
            self._pos_code,
            float(self._rope_scale if self._rope_scale is not None else 1.0),
            float(self._rope_theta if self._rope_theta is not None else 1e4),
            _scale_value("k_scale", k_scale), _scale_value("v_scale", v_scale), self._merge_counters,
        )

    def run_return_lse(self, q: torch.Tensor, paged_kv_cache, *args, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""``run(..., return_lse=True)``: returns ``(out [B, H_qo, D], lse [B, H_qo] float32, base 2)``."""
        kwargs["return_lse"] = True
        return self.run(q, paged_kv_cache, *args, **kwargs)

    def _forward_overrides(self, pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale, rope_theta):
        # The schedule was built for the planned window: a different one cannot be applied here.
        if window_left is not None and window_left != -1 and window_left != self._window_left:
            raise ValueError(f"window_left: planned {self._window_left}, got {window_left} in forward")
        if pos_encoding_mode not in (None, "NONE"):
            self._pos_encoding_mode = check_pos_encoding_mode(pos_encoding_mode)
            self._pos_code = _pos_code(pos_encoding_mode)
        if logits_soft_cap is not None:
            self._logits_soft_cap = float(logits_soft_cap)
        if sm_scale is not None:
            self._sm_scale = sm_scale
        if rope_scale is not None:
            self._rope_scale = rope_scale
        if rope_theta is not None:
            self._rope_theta = rope_theta

    def forward(self, q: torch.Tensor, paged_kv_cache, pos_encoding_mode: str = "NONE", q_scale: Optional[float] = None,
                k_scale: Optional[float] = None, v_scale: Optional[float] = None, window_left: int = -1,
                logits_soft_cap: Optional[float] = None, sm_scale: Optional[float] = None,
                rope_scale: Optional[float] = None, rope_theta: Optional[float] = None) -> torch.Tensor:
        r"""Deprecated: stores the given runtime scalars (non-default values only), then ``run``."""
        self._forward_overrides(pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale, rope_theta)
        return self.run(q, paged_kv_cache, q_scale=q_scale, k_scale=k_scale, v_scale=v_scale)

    def forward_return_lse(self, q: torch.Tensor, paged_kv_cache, pos_encoding_mode: str = "NONE",
                           q_scale: Optional[float] = None, k_scale: Optional[float] = None,
                           v_scale: Optional[float] = None, window_left: int = -1,
                           logits_soft_cap: Optional[float] = None, sm_scale: Optional[float] = None,
                           rope_scale: Optional[float] = None,
                           rope_theta: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""Deprecated: as ``forward`` but returns ``(out, lse)``."""
        self._forward_overrides(pos_encoding_mode, window_left, logits_soft_cap, sm_scale, rope_scale, rope_theta)
        return self.run(q, paged_kv_cache, q_scale=q_scale, k_scale=k_scale, v_scale=v_scale, return_lse=True)

    def end_forward(self) -> None:
        r"""Deprecated no-op."""


class CUDAGraphBatchDecodeWithPagedKVCacheWrapper(BatchDecodeWithPagedKVCacheWrapper):
    r"""``BatchDecodeWithPagedKVCacheWrapper`` with ``use_cuda_graph=True``: the page table lives in
    the user buffers ``indptr_buffer [B+1]``, ``indices_buffer [max_pages]``, ``last_page_len_buffer [B]``."""

    def __init__(self, workspace_buffer: torch.Tensor, indptr_buffer: torch.Tensor, indices_buffer: torch.Tensor,
                 last_page_len_buffer: torch.Tensor, kv_layout: str = "NHD", use_tensor_cores: bool = False) -> None:
        super().__init__(workspace_buffer, kv_layout, use_cuda_graph=True, use_tensor_cores=use_tensor_cores,
                         paged_kv_indptr_buffer=indptr_buffer, paged_kv_indices_buffer=indices_buffer,
                         paged_kv_last_page_len_buffer=last_page_len_buffer)


def fast_decode_plan(
    self: BatchDecodeWithPagedKVCacheWrapper,
    indptr: torch.Tensor,
    indices: torch.Tensor,
    last_page_len: torch.Tensor,
    num_qo_heads: int,
    num_kv_heads: int,
    head_dim: int,
    page_size: int,
    pos_encoding_mode: str = "NONE",
    window_left: int = -1,
    logits_soft_cap: Optional[float] = None,
    q_data_type: Optional[Union[str, torch.dtype]] = "float16",
    kv_data_type: Optional[Union[str, torch.dtype]] = None,
    data_type: Optional[Union[str, torch.dtype]] = None,
    sm_scale: Optional[float] = None,
    rope_scale: Optional[float] = None,
    rope_theta: Optional[float] = None,
    non_blocking: bool = True,
    fixed_split_size: Optional[int] = None,
    disable_split_kv: bool = False,
    global_override_indptr_cpu: Optional[torch.Tensor] = None,
) -> None:
    r"""A cheaper ``plan`` for graph-mode wrappers (as SGLang uses it, e.g.
    ``wrapper.begin_forward = functools.partial(fast_decode_plan, wrapper)``).

    Same arguments as ``BatchDecodeWithPagedKVCacheWrapper.plan``, plus ``global_override_indptr_cpu``
    (a host copy of ``indptr``, which saves the device-to-host read). Skips the page-id range check
    (the only step that reads ``indices``); with ``page_size == 1`` also skips reading
    ``last_page_len``. ``indices`` may be the wrapper's own ``_paged_kv_indices_buf`` (not copied)."""
    self._plan(indptr, indices, last_page_len, num_qo_heads, num_kv_heads, head_dim, page_size, pos_encoding_mode,
               window_left, logits_soft_cap, q_data_type, kv_data_type, data_type, sm_scale, rope_scale, rope_theta,
               None, fixed_split_size, disable_split_kv, validate=False, indptr_host=global_override_indptr_cpu)


__all__ = [
    "single_decode_with_kv_cache",
    "BatchDecodeWithPagedKVCacheWrapper",
    "CUDAGraphBatchDecodeWithPagedKVCacheWrapper",
    "fast_decode_plan",
]
