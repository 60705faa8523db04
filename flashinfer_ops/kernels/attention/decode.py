"""Triton kernels for decode attention (one query token per request): split-KV decode + merge.

decode_kernel: program (w, kv_head) processes the KV token range [tok_start, tok_end) of one request
for all GROUP query heads that share `kv_head` (GQA: each KV tile is read once per kv head). Query
heads are padded to BLOCK_H >= 16 rows so the two products run on tl.dot (MFMA / mma).
Work item w comes from a work table written by plan() (row: request, tok_start, tok_end,
page_base, kv_len, first_slot, n_chunks), or, with single_n > 0, is chunk w of one dense request.
A request processed by a single work item writes out / lse directly; split requests write their
normalised partial state (o, base-2 lse) into tmp slot w and merge_kernel combines them (§5.1).

Paged addressing: token t of a request lives in page kv_indices[page_base + t // page_size] at
offset t % page_size; NHD / HND differ only in the strides. fp8 KV is loaded as raw bytes and
decoded in-kernel per format (portable: works for OCP and FNUZ formats on every target).
"""
import triton
import triton.language as tl

WORK_COLS = 8  # columns of a work-table row (int32)


@triton.jit
def fp8_bits_to_f32(u, MAN: tl.constexpr, EXP: tl.constexpr, BIAS: tl.constexpr, FNUZ: tl.constexpr):
    """Decode fp8 bit patterns (uint8 tensor) to float32 exactly.

    e4m3fn: MAN 3, EXP 4, BIAS 7 (S.1111.111 = NaN); e5m2: MAN 2, EXP 5, BIAS 15 (IEEE-like inf/NaN);
    e4m3fnuz: BIAS 8, e5m2fnuz: BIAS 16 (0x80 = NaN, no inf, no negative zero)."""
    x = u.to(tl.int32) & 0xFF
    mag = x & 0x7F
    e = mag >> MAN
    m = mag & ((1 << MAN) - 1)
    normal = (((e + (127 - BIAS)) << 23) | (m << (23 - MAN))).to(tl.float32, bitcast=True)
    sub_scale = (x * 0 + ((128 - BIAS - MAN) << 23)).to(tl.float32, bitcast=True)
    val = tl.where(e == 0, m.to(tl.float32) * sub_scale, normal)
    if FNUZ:
        val = tl.where(x == 0x80, float("nan"), val)
    elif EXP == 4:
        val = tl.where(mag == 0x7F, float("nan"), val)
    else:
        special = e == ((1 << EXP) - 1)
        val = tl.where(special, tl.where(m == 0, float("inf"), float("nan")), val)
    return tl.where(x >= 0x80, -val, val)


@triton.jit
def fp8_bits_to_f16_scaled(u, E4M3: tl.constexpr):
    """fp8 bits (uint8) -> float16 equal to value * 2^-c, exactly (c: FP8_PACK_SHIFT in the
    launcher: 8 for e4m3fn, 7 for e4m3fnuz, 0 for e5m2), in ~4 integer ops: e4m3's exponent and
    mantissa fields drop into fp16's (subnormals included), e5m2 is fp16's top byte. The launcher
    folds 2^c into the softmax scale (K) and the output scale (V). NaN encodings of the e4m3
    formats decode to finite values (e5m2 keeps inf / NaN)."""
    x = u.to(tl.int32)
    if E4M3:
        h = ((x & 0x80) << 8) | ((x & 0x7F) << 7)
    else:
        h = x << 8
    return h.to(tl.int16).to(tl.float16, bitcast=True)


@triton.jit
def load_kv(ptr, offs, mask, KV_FMT: tl.constexpr):
    """Load a KV tile. KV_FMT: 0 fp16/bf16 (as stored); 1 e4m3fn, 2 e5m2, 3 e4m3fnuz (fp16 scaled
    by 2^-c, see fp8_bits_to_f16_scaled); 4 e5m2fnuz (float32, exact: its top exponent is finite,
    which fp16 cannot hold); 5 an fp8 type Triton converts itself (as stored)."""
    if KV_FMT == 0 or KV_FMT == 5:
        val = tl.load(ptr + offs, mask=mask, other=0.0)
    else:
        bits = tl.load(ptr + offs, mask=mask, other=0)
        if KV_FMT == 1:
            val = fp8_bits_to_f16_scaled(bits, True)
        elif KV_FMT == 2:
            val = fp8_bits_to_f16_scaled(bits, False)
        elif KV_FMT == 3:
            val = fp8_bits_to_f16_scaled(bits, True)
        else:
            val = fp8_bits_to_f32(bits, 2, 5, 16, True)
    return val


@triton.jit
def fp8_to_f16_opaque(x, E5M2: tl.constexpr):
    """fp8 (e4m3fn / e5m2, sm90) -> float16 with the hardware pair conversion, four values per
    call, written as an impure inline-asm op: Triton then converts in the loaded (row-major)
    layout and reaches the MMA operand through shared memory as fp16 (ldmatrix), instead of
    moving the conversion after the operand gather, where V's token pairs are assembled a byte at
    a time (decode_kernel V_ASM)."""
    b = x.to(tl.uint8, bitcast=True)
    if E5M2:
        return tl.inline_asm_elementwise(
            "{ .reg .b16 lo, hi; mov.b32 {lo, hi}, $2; cvt.rn.f16x2.e5m2x2 $0, lo; cvt.rn.f16x2.e5m2x2 $1, hi; }",
            "=r,=r,r", [b], dtype=tl.float16, is_pure=False, pack=4)
    return tl.inline_asm_elementwise(
        "{ .reg .b16 lo, hi; mov.b32 {lo, hi}, $2; cvt.rn.f16x2.e4m3x2 $0, lo; cvt.rn.f16x2.e4m3x2 $1, hi; }",
        "=r,=r,r", [b], dtype=tl.float16, is_pure=False, pack=4)


@triton.jit
def rope_rotate(x, x_shift, pos, offs_d, HEAD_DIM: tl.constexpr, rope_rcp_scale, rope_log2_theta):
    """Rotate-half RoPE: x [R, D] fp32 at positions pos [R]; x_shift = x with halves swapped."""
    half: tl.constexpr = HEAD_DIM // 2
    i = (offs_d % half).to(tl.float32)
    inv_freq = tl.exp2(-(2.0 * i / HEAD_DIM) * rope_log2_theta) * rope_rcp_scale
    ang = pos.to(tl.float32)[:, None] * inv_freq[None, :]
    sign = tl.where(offs_d < half, -1.0, 1.0)
    return x * tl.cos(ang) + sign[None, :] * x_shift * tl.sin(ang)


@triton.jit
def _pages(idx_ptr, page_base, toks, tok_end, page_size):
    """Page id (int64) of each token of a tile (0 past tok_end)."""
    return tl.load(idx_ptr + page_base + toks // page_size, mask=toks < tok_end, other=0).to(tl.int64)


@triton.jit
def _rows(pages, toks, page_size, s_page, s_tok):
    """Element offset of each token's row: page * s_page + (token % page_size) * s_tok."""
    return pages * s_page + (toks % page_size).to(tl.int64) * s_tok


@triton.jit
def _online_update(q, k, v, toks, tmask, lo, kv_len, slope, m_i, l_i, acc, qk_scale, soft_cap):
    """One KV tile of the online softmax (base 2): q [BLOCK_H, D], k / v [BLOCK_N, D] in the
    product dtype; returns the new (m_i, l_i, acc)."""
    LOG2E: tl.constexpr = 1.4426950408889634
    s = tl.dot(q, tl.trans(k)) * qk_scale
    if soft_cap > 0.0:
        # cap * tanh(s / cap), tanh written with exp2 (portable)
        s = soft_cap * (1.0 - 2.0 / (tl.exp2(s * (2.0 * LOG2E / soft_cap)) + 1.0))
    s = s * LOG2E + slope[:, None] * (toks - (kv_len - 1)).to(tl.float32)[None, :]
    keep = tmask & (toks >= lo)
    s = tl.where(keep[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return m_new, l_i, acc


@triton.jit
def decode_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, work_ptr, out_ptr, lse_ptr, tmp_o_ptr, tmp_lse_ptr, cnt_ptr,
    s_qb, s_qh, s_kp, s_kt, s_kh, s_vp, s_vt, s_vh, s_ob, s_oh, s_lb,
    page_size, single_len, single_chunk, single_n, group, num_qo_heads, has_lse,
    qk_scale, soft_cap, window_left, alibi_n, rope_rcp_scale, rope_log2_theta, v_scale,
    BLOCK_H: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, KV_FMT: tl.constexpr,
    ROPE: tl.constexpr, DOT_F32: tl.constexpr = False, PREFETCH: tl.constexpr = False,
    PAGES_AHEAD: tl.constexpr = False, V_ASM: tl.constexpr = False, FUSED_MERGE: tl.constexpr = False,
):
    """Grid (work items, H_kv, cdiv(group, BLOCK_H)).

    single_n > 0: one dense request split in single_n chunks of single_chunk tokens (single
    decode; the cache is one page of single_len tokens); else rows of the work table.
    soft_cap > 0 enables cap * tanh(s / cap) after sm_scale; window_left >= 0 the left window;
    alibi_n > 0 ALiBi with n = 2^floor(log2 H_qo); ROPE llama RoPE (query at kv_len - 1).
    qk_scale = sm_scale * k_scale. Writes lse only when has_lse. DOT_F32 (Triton's CPU interpreter
    only, whose bf16 tl.dot is wrong) runs the products in float32. PREFETCH (not with ROPE)
    double-buffers K/V tiles in registers. V_ASM (KV_FMT 5 on sm90, not with PREFETCH): V is
    converted by fp8_to_f16_opaque. With an fp8 cache (KV_FMT > 0) both products run in
    float16 whatever q's dtype: every fp8 value is exact in fp16, the conversion is one instruction
    a pair on sm90 (to bf16 it is three: e4m3 -> f16x2, then f16 -> bf16 for each half), and p
    in [0, 1] keeps more bits than in bf16; q is clamped to fp16's finite range.

    FUSED_MERGE (work-table mode): the split requests are merged here rather than by merge_kernel.
    After storing its partial state, each program of a split request takes a ticket from the
    int32 counter cnt_ptr[(request * H_kv + kv head) * head blocks + head block] (zero before the
    launch); the program that draws the last ticket (n_chunks - 1) resets the counter to zero for
    the next launch and merges the request's n_chunks partial states for its heads (_merge_slots).
    A CTA barrier and the ticket's acquire-release order the partial
    stores of every program before the merger's reads (which bypass L1)."""
    w = tl.program_id(0)
    kvh = tl.program_id(1)
    hb = tl.program_id(2)
    LOG2E: tl.constexpr = 1.4426950408889634
    if single_n > 0:
        req = w * 0
        tok_start = w * single_chunk
        if window_left >= 0:
            tok_start += tl.maximum(single_len - 1 - window_left, 0)
        tok_end = tl.minimum(tok_start + single_chunk, single_len)
        page_base = w * 0
        kv_len = single_len
        n_chunks = single_n
        first_slot = w * 0
    else:
        row = work_ptr + w * 8
        req = tl.load(row)
        tok_start = tl.load(row + 1)
        tok_end = tl.load(row + 2)
        page_base = tl.load(row + 3)
        kv_len = tl.load(row + 4)
        n_chunks = tl.load(row + 6)
        first_slot = tl.load(row + 5)
    if req >= 0:
        offs_h = hb * BLOCK_H + tl.arange(0, BLOCK_H)
        heads = kvh * group + offs_h
        hmask = offs_h < group
        offs_d = tl.arange(0, HEAD_DIM)
        q_rows = q_ptr + req.to(tl.int64) * s_qb + heads[:, None] * s_qh
        if DOT_F32:
            cdt = tl.float32
        elif KV_FMT != 0:
            cdt = tl.float16
        else:
            cdt = q_ptr.dtype.element_ty
        q = tl.load(q_rows + offs_d[None, :], mask=hmask[:, None], other=0.0)
        if ROPE:
            d_shift = (offs_d + HEAD_DIM // 2) % HEAD_DIM
            q_sh = tl.load(q_rows + d_shift[None, :], mask=hmask[:, None], other=0.0).to(tl.float32)
            q = rope_rotate(q.to(tl.float32), q_sh, offs_h * 0 + (kv_len - 1), offs_d, HEAD_DIM,
                            rope_rcp_scale, rope_log2_theta).to(q_ptr.dtype.element_ty)
        if KV_FMT != 0 and not DOT_F32:
            q = tl.minimum(tl.maximum(q.to(tl.float32), -65504.0), 65504.0)
        q = q.to(cdt)
        # Standard geometric ALiBi slopes (get_alibi_slopes), n = 2^floor(log2 H_qo); 0 when off.
        hf = heads.to(tl.float32)
        an = tl.maximum(alibi_n, 1).to(tl.float32)
        slope = tl.where(hf < an, tl.exp2(-8.0 * (hf + 1.0) / an), tl.exp2(-4.0 * (2.0 * (hf - an) + 1.0) / an))
        slope = tl.where(alibi_n > 0, slope * LOG2E, 0.0)
        lo = tok_start
        if window_left >= 0:
            lo = tl.maximum(lo, kv_len - 1 - window_left)
        m_i = tl.full([BLOCK_H], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_H], tl.float32)
        acc = tl.zeros([BLOCK_H, HEAD_DIM], tl.float32)
        k_base = k_ptr + kvh.to(tl.int64) * s_kh
        v_base = v_ptr + kvh.to(tl.int64) * s_vh
        if PREFETCH:
            # Register double buffering: tile i+1's K/V and tile i+2's page ids are in flight
            # while tile i is computed (fp8 tiles are converted in registers, which Triton's
            # shared-memory pipelining does not cover).
            toks = lo + tl.arange(0, BLOCK_N)
            pg = _pages(idx_ptr, page_base, toks, tok_end, page_size)
            k_cur = load_kv(k_base, _rows(pg, toks, page_size, s_kp, s_kt)[:, None] + offs_d[None, :],
                            (toks < tok_end)[:, None], KV_FMT)
            v_cur = load_kv(v_base, _rows(pg, toks, page_size, s_vp, s_vt)[:, None] + offs_d[None, :],
                            (toks < tok_end)[:, None], KV_FMT)
            pg_next = _pages(idx_ptr, page_base, toks + BLOCK_N, tok_end, page_size)
            for t0 in range(lo, tok_end, BLOCK_N):
                toks = t0 + tl.arange(0, BLOCK_N)
                toks_n = toks + BLOCK_N
                mask_n = (toks_n < tok_end)[:, None]
                k_next = load_kv(k_base, _rows(pg_next, toks_n, page_size, s_kp, s_kt)[:, None] + offs_d[None, :],
                                 mask_n, KV_FMT)
                v_next = load_kv(v_base, _rows(pg_next, toks_n, page_size, s_vp, s_vt)[:, None] + offs_d[None, :],
                                 mask_n, KV_FMT)
                pg_next = _pages(idx_ptr, page_base, toks_n + BLOCK_N, tok_end, page_size)
                m_i, l_i, acc = _online_update(q, k_cur.to(cdt), v_cur.to(cdt), toks, toks < tok_end,
                                               lo, kv_len, slope, m_i, l_i, acc, qk_scale, soft_cap)
                k_cur = k_next
                v_cur = v_next
        else:
            pg_next = _pages(idx_ptr, page_base, lo + tl.arange(0, BLOCK_N), tok_end, page_size)
            for t0 in range(lo, tok_end, BLOCK_N):
                toks = t0 + tl.arange(0, BLOCK_N)
                tmask = toks < tok_end
                if PAGES_AHEAD:
                    # the page ids arrive one iteration early (loop-carried), so the pipeliner
                    # can issue this tile's K/V copies without waiting on a page-table load
                    pg = pg_next
                    pg_next = _pages(idx_ptr, page_base, toks + BLOCK_N, tok_end, page_size)
                else:
                    pg = _pages(idx_ptr, page_base, toks, tok_end, page_size)
                k_off = _rows(pg, toks, page_size, s_kp, s_kt)
                k = load_kv(k_base, k_off[:, None] + offs_d[None, :], tmask[:, None], KV_FMT)
                if ROPE:
                    d_shift2 = (offs_d + HEAD_DIM // 2) % HEAD_DIM
                    k_sh = load_kv(k_base, k_off[:, None] + d_shift2[None, :], tmask[:, None], KV_FMT)
                    k = rope_rotate(k.to(tl.float32), k_sh.to(tl.float32), toks, offs_d, HEAD_DIM,
                                    rope_rcp_scale, rope_log2_theta)
                v = load_kv(v_base, _rows(pg, toks, page_size, s_vp, s_vt)[:, None] + offs_d[None, :],
                            tmask[:, None], KV_FMT)
                if V_ASM:
                    v = fp8_to_f16_opaque(v, v_ptr.dtype.element_ty == tl.float8e5)
                m_i, l_i, acc = _online_update(q, k.to(cdt), v.to(cdt), toks, tmask, lo, kv_len, slope, m_i, l_i,
                                               acc, qk_scale, soft_cap)
        valid = l_i > 0.0
        o = tl.where(valid[:, None], acc / tl.where(valid, l_i, 1.0)[:, None], 0.0) * v_scale
        lse = tl.where(valid, m_i + tl.log2(tl.where(valid, l_i, 1.0)), float("-inf"))
        if n_chunks == 1:
            o_rows = out_ptr + req.to(tl.int64) * s_ob + heads[:, None] * s_oh
            tl.store(o_rows + offs_d[None, :], o.to(out_ptr.dtype.element_ty), mask=hmask[:, None])
            if has_lse:
                tl.store(lse_ptr + req.to(tl.int64) * s_lb + heads, lse, mask=hmask)
        else:
            slot = w.to(tl.int64) * num_qo_heads + heads
            tl.store(tmp_o_ptr + slot[:, None] * HEAD_DIM + offs_d[None, :], o, mask=hmask[:, None])
            tl.store(tmp_lse_ptr + slot, lse, mask=hmask)
            if FUSED_MERGE:
                tl.debug_barrier()  # every thread's partial stores precede the ticket (released by it)
                cnt = cnt_ptr + (req * tl.num_programs(1) + kvh) * tl.num_programs(2) + hb
                ticket = tl.atomic_add(cnt, 1, sem="acq_rel", scope="gpu")
                if ticket == n_chunks - 1:
                    tl.atomic_xchg(cnt, 0, sem="relaxed", scope="gpu")
                    _merge_slots(out_ptr, lse_ptr, tmp_o_ptr, tmp_lse_ptr, first_slot, n_chunks, req, heads,
                                 hmask, offs_d, s_ob, s_oh, s_lb, num_qo_heads, has_lse, HEAD_DIM)


@triton.jit
def _merge_slots(out_ptr, lse_ptr, tmp_o_ptr, tmp_lse_ptr, first, n, req, heads, hmask, offs_d, s_ob, s_oh, s_lb,
                 num_qo_heads, has_lse, HEAD_DIM: tl.constexpr):
    """Merge the partial states in tmp slots first .. first + n - 1 of query heads `heads` [BLOCK_H]
    (base-2 LSE merge, as merge_kernel) and write request req's out / lse rows. One chunk's
    [BLOCK_H, HEAD_DIM] tile a step, the next one loaded while this one is folded in (register
    double buffering: the loads do not wait on each other; a tile of several chunks took 168-255
    registers a thread on sm90, which would halve the decode kernel's occupancy). Reads go through
    L2 (.cg): the partials were written by other programs."""
    rows = first.to(tl.int64) * num_qo_heads + heads
    s_cur = tl.load(tmp_lse_ptr + rows, mask=hmask, other=float("-inf"), cache_modifier=".cg")
    o_cur = tl.load(tmp_o_ptr + rows[:, None] * HEAD_DIM + offs_d[None, :], mask=hmask[:, None], other=0.0,
                    cache_modifier=".cg")
    m = tl.full(heads.shape, float("-inf"), tl.float32)
    l = tl.zeros(heads.shape, tl.float32)
    acc = tl.zeros([heads.shape[0], HEAD_DIM], tl.float32)
    for c in range(1, n + 1):
        rows = (first + c).to(tl.int64) * num_qo_heads + heads
        ok = hmask & (heads * 0 + c < n)
        s_nxt = tl.load(tmp_lse_ptr + rows, mask=ok, other=float("-inf"), cache_modifier=".cg")
        o_nxt = tl.load(tmp_o_ptr + rows[:, None] * HEAD_DIM + offs_d[None, :], mask=ok[:, None], other=0.0,
                        cache_modifier=".cg")
        m_new = tl.maximum(m, s_cur)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m - m_safe)
        wgt = tl.exp2(s_cur - m_safe)
        l = l * alpha + wgt
        acc = acc * alpha[:, None] + wgt[:, None] * o_cur
        m = m_new
        s_cur = s_nxt
        o_cur = o_nxt
    valid = l > 0.0
    res = tl.where(valid[:, None], acc / tl.where(valid, l, 1.0)[:, None], 0.0)
    o_rows = out_ptr + req.to(tl.int64) * s_ob + heads[:, None] * s_oh
    tl.store(o_rows + offs_d[None, :], res.to(out_ptr.dtype.element_ty), mask=hmask[:, None])
    if has_lse:
        lse = tl.where(valid, m + tl.log2(tl.where(valid, l, 1.0)), float("-inf"))
        tl.store(lse_ptr + req.to(tl.int64) * s_lb + heads, lse, mask=hmask)


@triton.jit
def merge_kernel(
    out_ptr, lse_ptr, tmp_o_ptr, tmp_lse_ptr, req_ptr,
    s_ob, s_oh, s_lb, num_qo_heads, single_n, has_lse,
    HEAD_DIM: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Combine the n_chunks partial states of (request b, query head h) (base-2 LSE merge, §5.1):
    o = sum_c 2^(lse_c - M) o_c / sum_c 2^(lse_c - M), lse = M + log2(sum_c 2^(lse_c - M)).
    Grid (B, H_qo); chunks are read BLOCK_C at a time as one [BLOCK_C, HEAD_DIM] tile, so a
    request split in 128 chunks costs a few dependent loads, not 128. req_ptr rows:
    (first_slot, n_chunks); requests with one chunk were written by decode_kernel."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    if single_n > 0:
        first = b * 0
        n = single_n
    else:
        first = tl.load(req_ptr + b * 2)
        n = tl.load(req_ptr + b * 2 + 1)
    if n > 1:
        offs_c = tl.arange(0, BLOCK_C)
        offs_d = tl.arange(0, HEAD_DIM)
        m = tl.full([], float("-inf"), tl.float32)
        l = tl.full([], 0.0, tl.float32)
        acc = tl.zeros([HEAD_DIM], tl.float32)
        for c0 in range(0, n, BLOCK_C):
            c = c0 + offs_c
            cmask = c < n
            slot = (first + c).to(tl.int64) * num_qo_heads + h
            s = tl.load(tmp_lse_ptr + slot, mask=cmask, other=float("-inf"))
            o = tl.load(tmp_o_ptr + slot[:, None] * HEAD_DIM + offs_d[None, :], mask=cmask[:, None], other=0.0)
            m_new = tl.maximum(m, tl.max(s, 0))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m - m_safe)
            wgt = tl.exp2(s - m_safe)
            l = l * alpha + tl.sum(wgt, 0)
            acc = acc * alpha + tl.sum(wgt[:, None] * o, 0)
            m = m_new
        valid = l > 0.0
        res = tl.where(valid, acc / tl.where(valid, l, 1.0), 0.0)
        o_row = out_ptr + b.to(tl.int64) * s_ob + h.to(tl.int64) * s_oh
        tl.store(o_row + offs_d, res.to(out_ptr.dtype.element_ty))
        if has_lse:
            lse = tl.where(valid, m + tl.log2(tl.where(valid, l, 1.0)), float("-inf"))
            tl.store(lse_ptr + b.to(tl.int64) * s_lb + h, lse)
