"""Paged prefill for sm90 that reads K / V pages in place (Gluon): no staging copy.

Why Gluon: a Triton `desc.load` returns a tensor of its own, so a 64-token K / V tile built from
four 16-token pages became four [16, D] tensors and four chained MMAs (NOTES.md session 15: the
P.V pieces waited on each other and the paged (16, 1024) prefill ran 537-549 us against 427-437
with the copy). Gluon lets every page's copy land in its rows of one shared-memory tile, so each
tile is one Q.K^T and one P.V, as on dense K / V.

Two kernels (INPLACE_NOTE in configs/attention/prefill.py has the H100 figures):
- paged_prefill_sm90_kernel ("plain"): one warpgroup issues the copies, loads Q and runs the MMAs.
  Correct but slow (584-610 us against ~430 staged at (16, 1024)): Triton's shared-memory barrier
  pass puts a CTA-wide bar.sync before each of a tile's 16 copies (conservative about copies into
  one buffer). Kept as a forced form only (FLASHINFER_PREFILL_INPLACE=1).
- paged_prefill_sm90_ws_kernel ("ws", "ws_overlap"): a copy warp of its own (warp specialization)
  issues each pair's Q copy and every tile's page copies; the warpgroup only waits, multiplies
  and runs the softmax. 399-404 us at (16, 1024), the default where pairs are short.

The kernel runs plan()'s deal (prefill_persistent_kernel's layout: deal_pairs, work rows of
build_work) over a paged cache, one (item, kv head) pair at a time:

    S = Q K^T * sm_scale * log2(e)     Q [BLOCK_M packed (query, head-in-group) rows, D]
    m_j = max(m_{j-1}, rowmax S_j);  P_j = exp2(S_j - m_j);  l_j = l_{j-1} 2^(m_{j-1} - m_j) + rowsum P_j
    O_j = O_{j-1} 2^(m_{j-1} - m_j) + P_j V_j;   out = O / l;   lse = m + log2(l) (base 2)

K / V come through 4-D tensor descriptors over the cache (NHD [pages, PAGE, H_kv, D], HND
[pages, H_kv, PAGE, D]) with box [1, PAGE, 1, 64] / [1, 1, PAGE, 64]: two boxes (D halves) a page,
so the 128-byte swizzle of a 64-element bf16 row matches the [BLOCK_N, 64] tile the MMAs read.
A request's partly filled last page (d empty slots) is read with its slot coordinate shifted to
-d: the copy engine zero-fills rows 0 .. d, so whatever the cache holds past kv_len is never read
(NaN there cannot reach P.V), and the tile's columns are then in "slot order" (token c for c below
the last page, token c - d inside it). A page past the request is read as page `n_pages`: out of
bounds, all zeros.

Pipelines (two programs an SM): STAGES K / V tiles in flight. Plain: each tile's Q.K^T is
issued, waited (which also retires the previous P.V), the tile STAGES - 1 ahead is issued into the
freed slot, then the softmax runs and P.V is issued without a wait; page ids for a tile are loaded
one iteration before its copies. Warp-specialized: the copy warp waits for a stage's `empty`
barrier, issues the tile's copies on its `full` barrier, and runs ahead across pairs; the
warpgroup waits `full`, and arrives on `empty` once the MMAs reading the stage are waited. Q has
its own pair (q_full / q_empty): the next pair's Q is copied as soon as this pair's last Q.K^T is
done.
"""
import inspect

import triton

try:
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_init, warpgroup_mma_wait,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonTensorDescriptor  # noqa: F401 (launcher)
    # the descriptor copy's name: async_copy_global_to_shared up to Triton 3.6, async_load after
    _tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
    # warp_specialize took (default args, default fn, worker args, worker fns, warps, regs) up to
    # Triton 3.5 and a list of (fn, args) pairs from 3.6
    WS_LEGACY_API = triton.language.constexpr(
        "functions_and_args" not in inspect.signature(gl.warp_specialize).parameters)
    HAVE_GLUON = True
except ImportError:  # Triton without Gluon (ROCm builds before 3.5): the Triton paths only
    HAVE_GLUON = False

# D columns a copy box / MMA operand carries: 128 bytes of bf16, the swizzle width
HALF = triton.language.constexpr(64)
BLOCK_M = triton.language.constexpr(64)
BLOCK_N = triton.language.constexpr(64)
STAGES = triton.language.constexpr(3)  # K / V tiles in flight (3 x 32 KB + Q 16 KB: two programs an SM)
# the warp-specialized form: registers of its copy warp (scalars only; at 24, the minimum, and
# 32 it spills under Triton 3.9), and the per-thread cap it is launched with. Warps are allocated
# registers by warpgroup, so 4 + 1 warps count as 8: 8 x 32 x 128 = 32K registers, two programs
# an SM, leaving the attending warpgroup (32K - 4 x 32 x 40) / 128 = 216 a thread.
COPY_WARP_REGS = triton.language.constexpr(40)
ATTEND_WARPS = triton.language.constexpr(4)  # the kernel's num_warps (a constexpr the partition can see)
WS_MAXNREG = 128


if HAVE_GLUON:

    @gluon.jit
    def _page_ids(idx_ptr, page0, first, n_req_pages, n_pages, PIECES: gl.constexpr):
        """Cache page ids of a request's pages first .. first + PIECES (page0: its first entry in
        idx_ptr); a page past the request gives n_pages (read as zeros). Unused ids are 0."""
        p0 = gl.load(idx_ptr + page0 + first, mask=first < n_req_pages, other=n_pages)
        p1 = 0
        p2 = 0
        p3 = 0
        if PIECES > 1:
            p1 = gl.load(idx_ptr + page0 + first + 1, mask=first + 1 < n_req_pages, other=n_pages)
        if PIECES > 2:
            p2 = gl.load(idx_ptr + page0 + first + 2, mask=first + 2 < n_req_pages, other=n_pages)
            p3 = gl.load(idx_ptr + page0 + first + 3, mask=first + 3 < n_req_pages, other=n_pages)
        return p0, p1, p2, p3

    @gluon.jit
    def _copy_page(desc, dst, bar, pid, shift, kvh, col, PAGE: gl.constexpr, HND: gl.constexpr):
        """One [PAGE, 64] box of a page into dst (rows of a [BLOCK_N, 64] tile)."""
        if HND:
            _tma_load(desc, [pid, kvh, shift, col], bar, dst)
        else:
            _tma_load(desc, [pid, shift, kvh, col], bar, dst)

    @gluon.jit
    def _piece(buf, slot, i, PAGE: gl.constexpr):
        """Rows i * PAGE .. (i + 1) * PAGE of stage `slot` of a [STAGES, BLOCK_N, 64] buffer."""
        return buf.index(slot).slice(i * PAGE, PAGE)

    @gluon.jit
    def _issue_tile(k_desc, v_desc, k_lo, k_hi, v_lo, v_hi, bars, slot, kvh, t, p0, p1, p2, p3, n_req_pages, d,
                    PAGE: gl.constexpr, PIECES: gl.constexpr, HND: gl.constexpr):
        """Copies of tile t (pages t * PIECES ..) of K and V into stage `slot`, on bars[slot]."""
        bar = bars.index(slot)
        mbarrier.expect(bar, 4 * BLOCK_N * HALF * 2)
        for i in gl.static_range(PIECES):
            if i == 0:
                pid = p0
            elif i == 1:
                pid = p1
            elif i == 2:
                pid = p2
            else:
                pid = p3
            shift = -d * (t * PIECES + i == n_req_pages - 1).to(gl.int32)
            _copy_page(k_desc, _piece(k_lo, slot, i, PAGE), bar, pid, shift, kvh, 0, PAGE, HND)
            _copy_page(k_desc, _piece(k_hi, slot, i, PAGE), bar, pid, shift, kvh, HALF, PAGE, HND)
            _copy_page(v_desc, _piece(v_lo, slot, i, PAGE), bar, pid, shift, kvh, 0, PAGE, HND)
            _copy_page(v_desc, _piece(v_hi, slot, i, PAGE), bar, pid, shift, kvh, HALF, PAGE, HND)

    @gluon.jit
    def _pair_geometry(work_ptr, slot_word, n_work, group, mask_mode, PAGE: gl.constexpr):
        """What the pair `slot_word` (kv_head * n_work + work row; rows of 8 int32: tile_row0,
        qo_start, qo_len, page0 (the request's first entry in the page table), kv_len, ...) reads,
        in token slots (a partly filled last page is read shifted by d = its empty slots): the
        request's n_req_pages pages, n_t K / V tiles, the slot last0 its last page starts at, and
        mask_from, the first tile that needs a mask. Both partitions of the warp-specialized form
        compute it, so they agree on every pair's tile count."""
        kvh = slot_word // n_work
        wp = work_ptr + (slot_word % n_work) * 8
        row0 = gl.load(wp)
        qo_start = gl.load(wp + 1)
        qo_len = gl.load(wp + 2)
        page0 = gl.load(wp + 3)
        kv_len = gl.load(wp + 4)
        off = kv_len - qo_len
        hi = kv_len
        diag_from = kv_len
        if mask_mode == 1:
            i_max = gl.minimum((row0 + BLOCK_M - 1) // group, qo_len - 1)
            hi = gl.minimum(kv_len, gl.maximum(i_max + off + 1, 0))
            diag_from = (gl.minimum(kv_len, gl.maximum(row0 // group + off + 1, 0)) // BLOCK_N) * BLOCK_N
        n_req_pages = (kv_len + PAGE - 1) // PAGE
        d = n_req_pages * PAGE - kv_len
        last0 = (n_req_pages - 1) * PAGE
        hi_slot = gl.where(hi > last0, hi + d, hi)
        n_t = (hi_slot + BLOCK_N - 1) // BLOCK_N
        mask_from = gl.minimum(diag_from, (kv_len // BLOCK_N) * BLOCK_N)
        mask_from = gl.minimum(mask_from, (last0 // BLOCK_N) * BLOCK_N)
        return kvh, row0, qo_start, qo_len, page0, kv_len, n_req_pages, d, last0, n_t, mask_from

    @gluon.jit
    def _load_q(q_ptr, q_lo, q_hi, row0, qo_start, qo_len, kvh, group, stride_qn, stride_qh,
                num_warps: gl.constexpr):
        """Q's packed rows (row b: query row0 // group + b // group, head kvh * group + b % group) into
        the two [BLOCK_M, 64] halves the MMAs read; rows past qo_len are zeros."""
        ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
        ld_m = gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, ld))
        ld_d = gl.arange(0, HALF, layout=gl.SliceLayout(0, ld))
        qi_ld = (row0 + ld_m) // group
        hq_ld = kvh * group + (row0 + ld_m) % group
        q_rows = (qo_start + qi_ld).to(gl.int64) * stride_qn + hq_ld.to(gl.int64) * stride_qh
        q_ok = gl.expand_dims(qi_ld < qo_len, 1)
        q_ptrs = q_ptr + gl.expand_dims(q_rows, 1) + gl.expand_dims(ld_d, 0)
        q_lo.store(gl.load(q_ptrs, mask=q_ok, other=0.0))
        q_hi.store(gl.load(q_ptrs + HALF, mask=q_ok, other=0.0))
        fence_async_shared()

    @gluon.jit
    def _softmax_tile(s_acc, t, m_i, l_i, row_pos, kv_len, d, last0, mask_from, mask_mode, qk_scale,
                      cols_l: gl.constexpr):
        """Tile t's scores (s_acc = Q K^T, [BLOCK_M, BLOCK_N] in slot order) to P = exp2(S - m_new):
        returns (P, m_new, l_new, alpha = exp2(m_old - m_new)). Slots past the request, the empty
        slots of its last page and (causal) keys after a row's position are masked."""
        s = s_acc * qk_scale
        start_n = t * BLOCK_N
        if start_n >= mask_from:
            c = start_n + gl.arange(0, BLOCK_N, layout=cols_l)
            in_last = c >= last0
            tok = gl.where(in_last, c - d, c)
            ok = (c < kv_len + d) & ((c - last0 >= d) | (c < last0))
            keep = gl.expand_dims(ok, 0) & ((gl.expand_dims(tok, 0) <= gl.expand_dims(row_pos, 1))
                                            | (mask_mode == 0))
            s = gl.where(keep, s, float("-inf"))
        m_new = gl.maximum(m_i, gl.max(s, 1))
        p = gl.exp2(s - gl.expand_dims(m_new, 1))
        alpha = gl.exp2(m_i - m_new)
        l_new = l_i * alpha + gl.sum(p, 1)
        return p, m_new, l_new, alpha

    @gluon.jit
    def _store_out(o_ptr, lse_ptr, acc_lo, acc_hi, m_i, l_i, qi, row0, qo_start, qo_len, kvh, group,
                   stride_on, stride_oh, stride_ln, stride_lh, v_scale, WRITE_LSE: gl.constexpr,
                   rows_l: gl.constexpr, cols_l: gl.constexpr):
        """out = v_scale * O / l (and lse = m + log2 l) for the tile's rows below qo_len; kv_len 0
        (no tile ran, l = 0): zero output and lse -inf, as FlashInfer writes."""
        has_kv = l_i > 0
        inv = gl.where(has_kv, v_scale / l_i, 0.0)
        offs_m = gl.arange(0, BLOCK_M, layout=rows_l)
        hq = kvh * group + (row0 + offs_m) % group
        o_rows = (qo_start + qi).to(gl.int64) * stride_on + hq.to(gl.int64) * stride_oh
        o_ok = gl.expand_dims(qi < qo_len, 1)
        offs_h = gl.arange(0, HALF, layout=cols_l)
        o_ptrs = o_ptr + gl.expand_dims(o_rows, 1) + gl.expand_dims(offs_h, 0)
        gl.store(o_ptrs, (acc_lo * gl.expand_dims(inv, 1)).to(o_ptr.dtype.element_ty), mask=o_ok)
        gl.store(o_ptrs + HALF, (acc_hi * gl.expand_dims(inv, 1)).to(o_ptr.dtype.element_ty), mask=o_ok)
        if WRITE_LSE:
            lse = gl.where(has_kv, m_i + gl.log2(l_i), float("-inf"))
            gl.store(lse_ptr + (qo_start + qi).to(gl.int64) * stride_ln + hq.to(gl.int64) * stride_lh, lse,
                     mask=qi < qo_len)

    @gluon.jit
    def _qk_issue(q_lo, q_hi, k_lo, k_hi, slot, mma: gl.constexpr):
        """S = Q K^T of the tile in stage `slot`, issued (not waited) as two 64-column halves."""
        s_acc = warpgroup_mma(q_lo, k_lo.index(slot).permute((1, 0)),
                              gl.zeros([BLOCK_M, BLOCK_N], gl.float32, layout=mma), use_acc=False, is_async=True)
        return warpgroup_mma(q_hi, k_hi.index(slot).permute((1, 0)), s_acc, is_async=True)

    @gluon.jit
    def _rescale_pack(acc_lo, acc_hi, alpha, p, dt: gl.constexpr, p_op: gl.constexpr):
        """O *= alpha rowwise (both D halves of the running output), and P as P.V's 16-bit A operand."""
        acc_lo = acc_lo * gl.expand_dims(alpha, 1)
        acc_hi = acc_hi * gl.expand_dims(alpha, 1)
        return acc_lo, acc_hi, gl.convert_layout(p.to(dt), p_op)

    @gluon.jit
    def _pv_issue(p16, v_lo, v_hi, slot, acc_lo, acc_hi):
        """O += P V of the tile in stage `slot`, issued (not waited) as two 64-column halves."""
        acc_lo = warpgroup_mma(p16, v_lo.index(slot), acc_lo, is_async=True)
        acc_hi = warpgroup_mma(p16, v_hi.index(slot), acc_hi, is_async=True)
        return acc_lo, acc_hi

    @gluon.jit
    def _alloc_tiles(dt: gl.constexpr):
        """Q halves and the [STAGES, BLOCK_N, 64] K / V halves: a stage's .index() is the tile the
        MMAs read, and a page's copy lands in its PAGE rows of it (_piece)."""
        tile_sl: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
        q_lo = gl.allocate_shared_memory(dt, [BLOCK_M, HALF], tile_sl)
        q_hi = gl.allocate_shared_memory(dt, [BLOCK_M, HALF], tile_sl)
        k_lo = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        k_hi = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        v_lo = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        v_hi = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        return q_lo, q_hi, k_lo, k_hi, v_lo, v_hi

    @gluon.jit
    def paged_prefill_sm90_kernel(
        q_ptr, o_ptr, lse_ptr, work_ptr, deal_ptr, idx_ptr, k_desc, v_desc,
        stride_qn, stride_qh, stride_on, stride_oh, stride_ln, stride_lh,
        n_work, n_pages, group, mask_mode, qk_scale, v_scale,
        PAGE: gl.constexpr, HND: gl.constexpr, WRITE_LSE: gl.constexpr, num_warps: gl.constexpr,
    ):
        """Program p runs the pairs plan() dealt it (deal_ptr: offsets [programs + 1], then slots
        kv_head * n_work + work row; work rows of 8 int32: tile_row0, qo_start, qo_len, page0 (the
        request's first entry in idx_ptr), kv_len, ...). q [nnz, H_qo, 128] and out likewise
        (strides in elements, last dim contiguous); lse [nnz, H_qo] fp32 (base 2) iff WRITE_LSE.
        qk_scale = sm_scale * log2(e); mask_mode 0 (none) or 1 (causal, bottom-right aligned);
        group = H_qo / H_kv; n_pages = the cache's pages (descriptor dim 0)."""
        PIECES: gl.constexpr = BLOCK_N // PAGE
        mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                      instr_shape=[16, HALF, 16])
        p_op: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)
        rows_l: gl.constexpr = gl.SliceLayout(1, mma)
        cols_l: gl.constexpr = gl.SliceLayout(0, mma)
        dt: gl.constexpr = k_desc.dtype

        q_lo, q_hi, k_lo, k_hi, v_lo, v_hi = _alloc_tiles(dt)
        bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for st in gl.static_range(STAGES):
            mbarrier.init(bars.index(st), count=1)

        pid = gl.program_id(0)
        slots = deal_ptr + gl.num_programs(0) + 1
        beg = gl.load(deal_ptr + pid)
        end = gl.load(deal_ptr + pid + 1)
        offs_m = gl.arange(0, BLOCK_M, layout=rows_l)
        done = 0  # tiles consumed by this program so far: stage and barrier phase of the next
        for i in range(beg, end):
            kvh, row0, qo_start, qo_len, page0, kv_len, n_req_pages, d, last0, n_t, mask_from = _pair_geometry(
                work_ptr, gl.load(slots + i), n_work, group, mask_mode, PAGE)
            _load_q(q_ptr, q_lo, q_hi, row0, qo_start, qo_len, kvh, group, stride_qn, stride_qh, num_warps)
            qi = (row0 + offs_m) // group
            row_pos = qi + kv_len - qo_len

            # prologue: tiles 0 .. STAGES - 2; then the ids of tile STAGES - 1
            for t0 in gl.static_range(STAGES - 1):
                if t0 < n_t:
                    a0, a1, a2, a3 = _page_ids(idx_ptr, page0, t0 * PIECES, n_req_pages, n_pages, PIECES)
                    _issue_tile(k_desc, v_desc, k_lo, k_hi, v_lo, v_hi, bars, (done + t0) % STAGES, kvh, t0,
                                a0, a1, a2, a3, n_req_pages, d, PAGE, PIECES, HND)
            n0, n1, n2, n3 = _page_ids(idx_ptr, page0, (STAGES - 1) * PIECES, n_req_pages, n_pages, PIECES)

            m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, layout=rows_l)
            l_i = gl.zeros([BLOCK_M], gl.float32, layout=rows_l)
            # (loop-carried as in-flight MMA results: the last P.V is waited at the next tile's Q.K^T)
            acc_lo = warpgroup_mma_init(gl.zeros([BLOCK_M, HALF], gl.float32, layout=mma))
            acc_hi = warpgroup_mma_init(gl.zeros([BLOCK_M, HALF], gl.float32, layout=mma))
            for t in range(0, n_t):
                slot = (done + t) % STAGES
                mbarrier.wait(bars.index(slot), ((done + t) // STAGES) & 1)
                s_acc = _qk_issue(q_lo, q_hi, k_lo, k_hi, slot, mma)
                # waits for every MMA in flight: this tile's Q.K^T and the previous tile's P.V
                s_acc, acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(s_acc, acc_lo, acc_hi))
                t_next = t + STAGES - 1
                if t_next < n_t:
                    _issue_tile(k_desc, v_desc, k_lo, k_hi, v_lo, v_hi, bars, (done + t_next) % STAGES, kvh,
                                t_next, n0, n1, n2, n3, n_req_pages, d, PAGE, PIECES, HND)
                    n0, n1, n2, n3 = _page_ids(idx_ptr, page0, (t_next + 1) * PIECES, n_req_pages, n_pages,
                                               PIECES)
                p, m_i, l_i, alpha = _softmax_tile(s_acc, t, m_i, l_i, row_pos, kv_len, d, last0, mask_from,
                                                   mask_mode, qk_scale, cols_l)
                acc_lo, acc_hi, p16 = _rescale_pack(acc_lo, acc_hi, alpha, p, dt, p_op)
                acc_lo, acc_hi = _pv_issue(p16, v_lo, v_hi, slot, acc_lo, acc_hi)
            acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(acc_lo, acc_hi))
            done += n_t
            _store_out(o_ptr, lse_ptr, acc_lo, acc_hi, m_i, l_i, qi, row0, qo_start, qo_len, kvh, group,
                       stride_on, stride_oh, stride_ln, stride_lh, v_scale, WRITE_LSE, rows_l, cols_l)
        for st in gl.static_range(STAGES):
            mbarrier.invalidate(bars.index(st))

    # ---- warp-specialized form: one copy warp feeds the attending warpgroup ----------------------

    @gluon.jit
    def _ws_copies(k_desc, v_desc, q_desc, q_lo, q_hi, k_lo, k_hi, v_lo, v_hi, full, empty, q_full,
                   q_empty, work_ptr, deal_ptr, idx_ptr, n_work, n_pages, group, mask_mode, PAGE: gl.constexpr,
                   HND: gl.constexpr, Q_TMA: gl.constexpr):
        """The copy partition (one warp): walks the program's pairs and tiles in the attending
        partition's order, and per tile waits for its stage to be released (empty), then issues
        the tile's page copies on full. Page ids are loaded before the wait, off the copy path.
        Q_TMA: also each pair's Q (q_desc: q as [nnz, H_kv, group, 128], box [BLOCK_M / group, 1,
        group, 64], so a box is the pair's packed rows in order) on q_full, once the previous pair's
        last Q.K^T has released the Q buffer (q_empty)."""
        PIECES: gl.constexpr = BLOCK_N // PAGE
        pid = gl.program_id(0)
        slots = deal_ptr + gl.num_programs(0) + 1
        beg = gl.load(deal_ptr + pid)
        end = gl.load(deal_ptr + pid + 1)
        cnt = 0
        for i in range(beg, end):
            kvh, row0, qo_start, qo_len, page0, kv_len, n_req_pages, d, last0, n_t, mask_from = _pair_geometry(
                work_ptr, gl.load(slots + i), n_work, group, mask_mode, PAGE)
            if Q_TMA:
                mbarrier.wait(q_empty, ((i - beg) & 1) ^ 1)
                mbarrier.expect(q_full, 2 * BLOCK_M * HALF * 2)
                # rows past the request are the next request's queries (finite; never stored)
                # or, past the tensor, zeros
                _tma_load(q_desc, [qo_start + row0 // group, kvh, 0, 0], q_full, q_lo)
                _tma_load(q_desc, [qo_start + row0 // group, kvh, 0, HALF], q_full, q_hi)
            for t in range(0, n_t):
                p0, p1, p2, p3 = _page_ids(idx_ptr, page0, t * PIECES, n_req_pages, n_pages, PIECES)
                slot = cnt % STAGES
                # a fresh barrier counts as having completed phase 1: the first STAGES waits pass
                mbarrier.wait(empty.index(slot), ((cnt // STAGES) & 1) ^ 1)
                _issue_tile(k_desc, v_desc, k_lo, k_hi, v_lo, v_hi, full, slot, kvh, t, p0, p1, p2, p3,
                            n_req_pages, d, PAGE, PIECES, HND)
                cnt += 1

    @gluon.jit
    def _ws_attend(q_ptr, o_ptr, lse_ptr, work_ptr, deal_ptr, q_lo, q_hi, k_lo, k_hi, v_lo, v_hi, full,
                   empty, q_full, q_empty, stride_qn, stride_qh, stride_on, stride_oh, stride_ln, stride_lh, n_work,
                   group, mask_mode, qk_scale, v_scale, PAGE: gl.constexpr, WRITE_LSE: gl.constexpr,
                   OVERLAP: gl.constexpr, Q_TMA: gl.constexpr):
        """The attending partition (the kernel's warpgroup): per pair, Q into shared memory, then per
        tile wait for its copies (full), Q.K^T, softmax, P.V, and release the stage (empty) once
        the MMAs reading it are done. OVERLAP (FA3's intra-warpgroup order): tile t's Q.K^T and
        tile t-1's P.V are in flight together while tile t's softmax runs; otherwise each Q.K^T is
        waited with the previous P.V before the softmax."""
        mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[ATTEND_WARPS, 1],
                                                      instr_shape=[16, HALF, 16])
        p_op: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)
        rows_l: gl.constexpr = gl.SliceLayout(1, mma)
        cols_l: gl.constexpr = gl.SliceLayout(0, mma)
        dt: gl.constexpr = q_lo.dtype
        pid = gl.program_id(0)
        slots = deal_ptr + gl.num_programs(0) + 1
        beg = gl.load(deal_ptr + pid)
        end = gl.load(deal_ptr + pid + 1)
        offs_m = gl.arange(0, BLOCK_M, layout=rows_l)
        cnt = 0  # tiles consumed so far: stage and phase of the next
        for i in range(beg, end):
            kvh, row0, qo_start, qo_len, page0, kv_len, n_req_pages, d, last0, n_t, mask_from = _pair_geometry(
                work_ptr, gl.load(slots + i), n_work, group, mask_mode, PAGE)
            if Q_TMA:
                mbarrier.wait(q_full, (i - beg) & 1)
            else:
                _load_q(q_ptr, q_lo, q_hi, row0, qo_start, qo_len, kvh, group, stride_qn, stride_qh, ATTEND_WARPS)
            qi = (row0 + offs_m) // group
            row_pos = qi + kv_len - qo_len
            m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, layout=rows_l)
            l_i = gl.zeros([BLOCK_M], gl.float32, layout=rows_l)
            if OVERLAP:
                # (loop-carried as tensors: each P.V is waited inside the iteration that issued it)
                acc_lo = gl.zeros([BLOCK_M, HALF], gl.float32, layout=mma)
                acc_hi = gl.zeros([BLOCK_M, HALF], gl.float32, layout=mma)
                if n_t > 0:
                    slot = cnt % STAGES
                    mbarrier.wait(full.index(slot), (cnt // STAGES) & 1)
                    s_acc = warpgroup_mma_wait(0, deps=(_qk_issue(q_lo, q_hi, k_lo, k_hi, slot, mma),))
                    if Q_TMA:
                        mbarrier.arrive(q_empty, count=1, pred=n_t == 1)
                    p, m_i, l_i, alpha = _softmax_tile(s_acc, 0, m_i, l_i, row_pos, kv_len, d, last0, mask_from,
                                                       mask_mode, qk_scale, cols_l)
                    p16 = gl.convert_layout(p.to(dt), p_op)
                    for t in range(1, n_t):
                        prev = (cnt + t - 1) % STAGES
                        slot = (cnt + t) % STAGES
                        mbarrier.wait(full.index(slot), ((cnt + t) // STAGES) & 1)
                        s_acc = _qk_issue(q_lo, q_hi, k_lo, k_hi, slot, mma)
                        acc_lo, acc_hi = _pv_issue(p16, v_lo, v_hi, prev, acc_lo, acc_hi)
                        # groups retire in issue order: this leaves only tile t-1's P.V in flight
                        s_acc = warpgroup_mma_wait(2, deps=(s_acc,))
                        if Q_TMA:
                            mbarrier.arrive(q_empty, count=1, pred=t == n_t - 1)
                        p, m_i, l_i, alpha = _softmax_tile(s_acc, t, m_i, l_i, row_pos, kv_len, d, last0,
                                                           mask_from, mask_mode, qk_scale, cols_l)
                        acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(acc_lo, acc_hi))
                        mbarrier.arrive(empty.index(prev), count=1)
                        acc_lo, acc_hi, p16 = _rescale_pack(acc_lo, acc_hi, alpha, p, dt, p_op)
                    last = (cnt + n_t - 1) % STAGES
                    acc_lo, acc_hi = _pv_issue(p16, v_lo, v_hi, last, acc_lo, acc_hi)
                    acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(acc_lo, acc_hi))
                    mbarrier.arrive(empty.index(last), count=1)
            else:
                acc_lo = warpgroup_mma_init(gl.zeros([BLOCK_M, HALF], gl.float32, layout=mma))
                acc_hi = warpgroup_mma_init(gl.zeros([BLOCK_M, HALF], gl.float32, layout=mma))
                for t in range(0, n_t):
                    slot = (cnt + t) % STAGES
                    mbarrier.wait(full.index(slot), ((cnt + t) // STAGES) & 1)
                    s_acc = _qk_issue(q_lo, q_hi, k_lo, k_hi, slot, mma)
                    # retires this Q.K^T and the previous tile's P.V: its stage is free again
                    s_acc, acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(s_acc, acc_lo, acc_hi))
                    mbarrier.arrive(empty.index((cnt + t + STAGES - 1) % STAGES), count=1, pred=t > 0)
                    if Q_TMA:
                        mbarrier.arrive(q_empty, count=1, pred=t == n_t - 1)
                    p, m_i, l_i, alpha = _softmax_tile(s_acc, t, m_i, l_i, row_pos, kv_len, d, last0, mask_from,
                                                       mask_mode, qk_scale, cols_l)
                    acc_lo, acc_hi, p16 = _rescale_pack(acc_lo, acc_hi, alpha, p, dt, p_op)
                    acc_lo, acc_hi = _pv_issue(p16, v_lo, v_hi, slot, acc_lo, acc_hi)
                acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(acc_lo, acc_hi))
                mbarrier.arrive(empty.index((cnt + n_t + STAGES - 1) % STAGES), count=1, pred=n_t > 0)
            if Q_TMA:  # a pair without K / V tiles releases its Q at once
                mbarrier.arrive(q_empty, count=1, pred=n_t == 0)
            cnt += n_t
            _store_out(o_ptr, lse_ptr, acc_lo, acc_hi, m_i, l_i, qi, row0, qo_start, qo_len, kvh, group,
                       stride_on, stride_oh, stride_ln, stride_lh, v_scale, WRITE_LSE, rows_l, cols_l)

    @gluon.jit
    def paged_prefill_sm90_ws_kernel(
        q_ptr, o_ptr, lse_ptr, work_ptr, deal_ptr, idx_ptr, k_desc, v_desc, q_desc,
        stride_qn, stride_qh, stride_on, stride_oh, stride_ln, stride_lh,
        n_work, n_pages, group, mask_mode, qk_scale, v_scale,
        PAGE: gl.constexpr, HND: gl.constexpr, WRITE_LSE: gl.constexpr, OVERLAP: gl.constexpr,
        Q_TMA: gl.constexpr, num_warps: gl.constexpr,
    ):
        """paged_prefill_sm90_kernel's arguments and results, with the page copies issued by a copy
        warp of their own (_ws_copies) on full / empty barrier pairs and the attention in the
        kernel's warpgroup (_ws_attend). Q_TMA: the copy warp also loads each pair's Q through
        q_desc (None otherwise: the warpgroup loads it). Launch with maxnreg=WS_MAXNREG: 8 warps'
        worth of registers at that cap leave two programs an SM."""
        q_lo, q_hi, k_lo, k_hi, v_lo, v_hi = _alloc_tiles(k_desc.dtype)
        full = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        q_bars = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
        for st in gl.static_range(STAGES):
            mbarrier.init(full.index(st), count=1)
            mbarrier.init(empty.index(st), count=1)
        mbarrier.init(q_bars.index(0), count=1)
        mbarrier.init(q_bars.index(1), count=1)
        q_full = q_bars.index(0)
        q_empty = q_bars.index(1)
        # (the argument tuples are written in the call: a tuple assigned to a local first turns its
        # constexprs into run-time values, and an `if` on them into a branch compiled both ways)
        if WS_LEGACY_API:
            gl.warp_specialize((q_ptr, o_ptr, lse_ptr, work_ptr, deal_ptr, q_lo, q_hi, k_lo, k_hi, v_lo, v_hi, full,
                                empty, q_full, q_empty, stride_qn, stride_qh, stride_on, stride_oh, stride_ln,
                                stride_lh, n_work, group, mask_mode, qk_scale, v_scale, PAGE, WRITE_LSE, OVERLAP,
                                Q_TMA), _ws_attend,
                               (k_desc, v_desc, q_desc, q_lo, q_hi, k_lo, k_hi, v_lo, v_hi, full, empty,
                                q_full, q_empty, work_ptr, deal_ptr, idx_ptr, n_work, n_pages, group, mask_mode, PAGE,
                                HND, Q_TMA), [_ws_copies], [1], [COPY_WARP_REGS])
        else:
            gl.warp_specialize([
                (_ws_attend, (q_ptr, o_ptr, lse_ptr, work_ptr, deal_ptr, q_lo, q_hi, k_lo, k_hi, v_lo, v_hi, full,
                              empty, q_full, q_empty, stride_qn, stride_qh, stride_on, stride_oh, stride_ln,
                              stride_lh, n_work, group, mask_mode, qk_scale, v_scale, PAGE, WRITE_LSE, OVERLAP,
                              Q_TMA)),
                (_ws_copies, (k_desc, v_desc, q_desc, q_lo, q_hi, k_lo, k_hi, v_lo, v_hi, full, empty,
                              q_full, q_empty, work_ptr, deal_ptr, idx_ptr, n_work, n_pages, group, mask_mode, PAGE,
                              HND, Q_TMA)),
            ], [1], [COPY_WARP_REGS])
        for st in gl.static_range(STAGES):
            mbarrier.invalidate(full.index(st))
            mbarrier.invalidate(empty.index(st))
        mbarrier.invalidate(q_full)
        mbarrier.invalidate(q_empty)


def paged_inplace_kernel(form: str):
    """(kernel, extra constexprs, extra launch options) of an in-place form: "plain" (one
    warpgroup issues the copies, loads Q and runs the MMAs), "ws" (a copy warp of its own issues
    the K / V page copies and each pair's Q copy, Q_TMA, where the launcher can describe q; else
    the warpgroup loads Q), "ws_overlap" ("ws" with FA3's order of Q.K^T / softmax / P.V)."""
    if form == "plain":
        return paged_prefill_sm90_kernel, {}, {}
    if form in ("ws", "ws_overlap"):
        return (paged_prefill_sm90_ws_kernel, dict(OVERLAP=form == "ws_overlap", Q_TMA=True),
                dict(maxnreg=WS_MAXNREG))
    raise ValueError(f"form: expected plain, ws or ws_overlap, got {form!r}")


def q_box(group: int):
    """The Q copy's box over q viewed as [nnz, H_kv, group, 128]: a pair's BLOCK_M packed rows
    ((query, head-in-group), head fastest) in two D halves; None where group does not divide
    BLOCK_M (a tile would start mid-query)."""
    return [BLOCK_M.value // group, 1, group, HALF.value] if BLOCK_M.value % group == 0 else None


def compile_for_sm90(page: int = 16, hnd: bool = False, write_lse: bool = False, form: str = "plain",
                     group: int = 4):
    """The in-place kernel of `form` compiled for sm90 without a GPU (Triton's compiled kernel: asm
    ["ptx" / "cubin" / "ttgir"], metadata.shared): what tests and reports check on the CPU."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    kernel, consts, opts = paged_inplace_kernel(form)
    layout = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=4)
    block = [1, 1, page, 64] if hnd else [1, page, 1, 64]
    desc = f"tensordesc<bf16{block},{layout!r}>"
    sig = dict(q_ptr="*bf16", o_ptr="*bf16", lse_ptr="*fp32", work_ptr="*i32", deal_ptr="*i32", idx_ptr="*i32",
               k_desc=desc, v_desc=desc)
    constexprs = dict(PAGE=page, HND=hnd, WRITE_LSE=write_lse, num_warps=4, **consts)
    if kernel is paged_prefill_sm90_ws_kernel:
        if consts["Q_TMA"]:
            sig["q_desc"] = f"tensordesc<bf16{q_box(group)},{layout!r}>"
        else:
            sig["q_desc"] = "constexpr"
            constexprs["q_desc"] = None
    sig.update(stride_qn="i32", stride_qh="i32", stride_on="i32", stride_oh="i32", stride_ln="i32", stride_lh="i32",
               n_work="i32", n_pages="i32", group="i32", mask_mode="i32", qk_scale="fp32", v_scale="fp32",
               PAGE="constexpr", HND="constexpr", WRITE_LSE="constexpr")
    sig.update({k: "constexpr" for k in consts})
    sig["num_warps"] = "constexpr"
    names = list(sig)
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in names if sig[n].startswith("*")}
    src = GluonASTSource(fn=kernel, signature=sig, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=4, **opts))
