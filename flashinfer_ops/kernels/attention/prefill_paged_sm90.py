"""Paged prefill for sm90 that reads K / V pages in place (Gluon): no staging copy.

Why Gluon: a Triton `desc.load` returns a tensor of its own, so a 64-token K / V tile built from
four 16-token pages became four [16, D] tensors and four chained MMAs (NOTES.md session 15: the
P.V pieces waited on each other and the paged (16, 1024) prefill ran 537-549 us against 427-437
with the copy). Gluon lets every page's copy land in its rows of one shared-memory tile, so each
tile is one Q.K^T and one P.V, as on dense K / V.

Status (H100, 2026-12-07 session 16): correct, but slower than the staged copy (610 against 437
us at (16, 1024); INPLACE_NOTE in configs/attention/prefill.py), so opt-in
(FLASHINFER_PREFILL_INPLACE=1). The compiled loop has a CTA-wide bar.sync before each of a
tile's 16 copies (Triton's shared-memory barrier pass, conservative about copies into one
buffer); a copy warp of its own is the next step.

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

Pipeline (one warpgroup, two programs an SM): STAGES K / V tiles in flight on mbarriers; each
tile's Q.K^T is issued, waited (which also retires the previous P.V), the tile STAGES - 1 ahead is
issued into the freed slot, then the softmax runs and P.V is issued without a wait. Page ids for a
tile are loaded one iteration before its copies are issued, so their latency is off the copy path.
"""
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
    HAVE_GLUON = True
except ImportError:  # Triton without Gluon (ROCm builds before 3.5): the Triton paths only
    HAVE_GLUON = False

# D columns a copy box / MMA operand carries: 128 bytes of bf16, the swizzle width
HALF = triton.language.constexpr(64)
BLOCK_M = triton.language.constexpr(64)
BLOCK_N = triton.language.constexpr(64)
STAGES = triton.language.constexpr(3)  # K / V tiles in flight (3 x 32 KB + Q 16 KB: two programs an SM)


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
        """Copies of tile t (pages t * PIECES ..) of K and V into stage `slot`."""
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
        ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [num_warps, 1], [1, 0])
        tile_sl: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
        dt: gl.constexpr = k_desc.dtype

        q_lo = gl.allocate_shared_memory(dt, [BLOCK_M, HALF], tile_sl)
        q_hi = gl.allocate_shared_memory(dt, [BLOCK_M, HALF], tile_sl)
        # [stage, token slot, column]: the MMAs read .index(stage) as one [BLOCK_N, 64] tile, and a
        # page's copy lands in its PAGE rows of it (_piece)
        k_lo = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        k_hi = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        v_lo = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        v_hi = gl.allocate_shared_memory(dt, [STAGES, BLOCK_N, HALF], tile_sl)
        bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for st in gl.static_range(STAGES):
            mbarrier.init(bars.index(st), count=1)

        pid = gl.program_id(0)
        slots = deal_ptr + gl.num_programs(0) + 1
        beg = gl.load(deal_ptr + pid)
        end = gl.load(deal_ptr + pid + 1)
        offs_m = gl.arange(0, BLOCK_M, layout=rows_l)
        offs_n = gl.arange(0, BLOCK_N, layout=cols_l)
        ld_m = gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, ld))
        ld_d = gl.arange(0, HALF, layout=gl.SliceLayout(0, ld))
        done = 0  # tiles consumed by this program so far: stage and barrier phase of the next
        for i in range(beg, end):
            slot_word = gl.load(slots + i)
            kvh = slot_word // n_work
            wp = work_ptr + (slot_word % n_work) * 8
            row0 = gl.load(wp)
            qo_start = gl.load(wp + 1)
            qo_len = gl.load(wp + 2)
            page0 = gl.load(wp + 3)
            kv_len = gl.load(wp + 4)

            # Q rows (packed: row b is query row0 // group + b // group, head kvh * group + b % group)
            qi_ld = (row0 + ld_m) // group
            hq_ld = kvh * group + (row0 + ld_m) % group
            q_rows = (qo_start + qi_ld).to(gl.int64) * stride_qn + hq_ld.to(gl.int64) * stride_qh
            q_ok = gl.expand_dims(qi_ld < qo_len, 1)
            q_ptrs = q_ptr + gl.expand_dims(q_rows, 1) + gl.expand_dims(ld_d, 0)
            q_lo.store(gl.load(q_ptrs, mask=q_ok, other=0.0))
            q_hi.store(gl.load(q_ptrs + HALF, mask=q_ok, other=0.0))
            fence_async_shared()

            qi = (row0 + offs_m) // group
            off = kv_len - qo_len
            row_pos = qi + off
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
                s_acc = warpgroup_mma(q_lo, k_lo.index(slot).permute((1, 0)),
                                      gl.zeros([BLOCK_M, BLOCK_N], gl.float32, layout=mma), use_acc=False,
                                      is_async=True)
                s_acc = warpgroup_mma(q_hi, k_hi.index(slot).permute((1, 0)), s_acc, is_async=True)
                # waits for every MMA in flight: this tile's Q.K^T and the previous tile's P.V
                s_acc, acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(s_acc, acc_lo, acc_hi))
                t_next = t + STAGES - 1
                if t_next < n_t:
                    _issue_tile(k_desc, v_desc, k_lo, k_hi, v_lo, v_hi, bars, (done + t_next) % STAGES, kvh,
                                t_next, n0, n1, n2, n3, n_req_pages, d, PAGE, PIECES, HND)
                    n0, n1, n2, n3 = _page_ids(idx_ptr, page0, (t_next + 1) * PIECES, n_req_pages, n_pages,
                                               PIECES)
                s = s_acc * qk_scale
                start_n = t * BLOCK_N
                if start_n >= mask_from:
                    c = start_n + offs_n
                    in_last = c >= last0
                    tok = gl.where(in_last, c - d, c)
                    ok = (c < kv_len + d) & ((c - last0 >= d) | (c < last0))
                    keep = gl.expand_dims(ok, 0) & ((gl.expand_dims(tok, 0) <= gl.expand_dims(row_pos, 1))
                                                    | (mask_mode == 0))
                    s = gl.where(keep, s, float("-inf"))
                m_new = gl.maximum(m_i, gl.max(s, 1))
                p = gl.exp2(s - gl.expand_dims(m_new, 1))
                alpha = gl.exp2(m_i - m_new)
                l_i = l_i * alpha + gl.sum(p, 1)
                acc_lo = acc_lo * gl.expand_dims(alpha, 1)
                acc_hi = acc_hi * gl.expand_dims(alpha, 1)
                p16 = gl.convert_layout(p.to(dt), p_op)
                acc_lo = warpgroup_mma(p16, v_lo.index(slot), acc_lo, is_async=True)
                acc_hi = warpgroup_mma(p16, v_hi.index(slot), acc_hi, is_async=True)
                m_i = m_new
            acc_lo, acc_hi = warpgroup_mma_wait(0, deps=(acc_lo, acc_hi))
            done += n_t

            # kv_len 0: no tile ran (l = 0): zero output and lse -inf, as FlashInfer writes
            has_kv = l_i > 0
            inv = gl.where(has_kv, v_scale / l_i, 0.0)
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
        for st in gl.static_range(STAGES):
            mbarrier.invalidate(bars.index(st))


def compile_for_sm90(page: int = 16, hnd: bool = False, write_lse: bool = False):
    """paged_prefill_sm90_kernel compiled for sm90 without a GPU (Triton's compiled kernel: asm
    ["ptx" / "cubin" / "ttgir"], metadata.shared): what tests and reports check on the CPU."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    layout = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=4)
    block = [1, 1, page, 64] if hnd else [1, page, 1, 64]
    desc = f"tensordesc<bf16{block},{layout!r}>"
    sig = dict(q_ptr="*bf16", o_ptr="*bf16", lse_ptr="*fp32", work_ptr="*i32", deal_ptr="*i32", idx_ptr="*i32",
               k_desc=desc, v_desc=desc, stride_qn="i32", stride_qh="i32", stride_on="i32", stride_oh="i32",
               stride_ln="i32", stride_lh="i32", n_work="i32", n_pages="i32", group="i32", mask_mode="i32",
               qk_scale="fp32", v_scale="fp32", PAGE="constexpr", HND="constexpr", WRITE_LSE="constexpr",
               num_warps="constexpr")
    names = list(sig)
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in names if sig[n].startswith("*")}
    src = GluonASTSource(fn=paged_prefill_sm90_kernel, signature=sig,
                         constexprs=dict(PAGE=page, HND=hnd, WRITE_LSE=write_lse, num_warps=4), attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=4))
