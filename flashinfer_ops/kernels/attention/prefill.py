"""Triton prefill attention: FA2-style online softmax over K/V tiles, one kernel for single,
ragged-batch and paged-batch prefill.

Program (w, kvh): work item w (a request and a tile of BLOCK_M packed rows) and kv head kvh. GQA
heads are packed into the M tile: packed row r of a request is (query r // group, head-in-group
r % group), so every K/V tile is loaded once per kv head and serves the whole group.

Work item (int32 x WORK_WORDS, written by plan()): [tile_row0, qo_start, qo_len, kv_start, kv_len,
mask_byte_off, -, -]. qo_len == 0 marks an unused slot (graph-mode padding). Single prefill
(runtime flag `single`) takes the item from its scalars and the program id instead.

K/V columns are visited in three ranges: masked tiles left of the sliding window's full range,
unmasked tiles (visible to every row of the tile: no per-element masking), and masked tiles at the
causal diagonal / the kv_len edge. A custom mask makes every visited tile masked. Causal tiles
beyond the diagonal of the tile's last query are never visited.

Scores are kept in base 2: s2 = (q.k) * sm_scale * log2(e) (after soft cap and ALiBi, which work
in natural units), so LSE comes out in base 2 as FlashInfer's.

prefill_persistent_kernel is a second, lean kernel for plan()'s persistent deal on sm90 (16-bit
dense K / V, mask none or causal, D128): one descriptor-fed loop without the feature branches.

EXTRA=False compiles the lean variant (no RoPE, ALiBi, soft cap or custom mask: those branches
are removed, which keeps the D128 tile within 256 VGPRs on gfx942); EXTRA=True keeps them as
runtime branches (smaller tiles).

fp8 K/V arrive as uint8 bits and are decoded exactly in registers (runtime exponent / mantissa
widths and bias), which serves e4m3fn, e5m2, e4m3fnuz and e5m2fnuz on every arch alike (Triton on
sm90 cannot compute with the FNUZ types). NaN / inf encodings are not special-cased.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

WORK_WORDS = 8
LOG2E = 1.4426950408889634


@triton.jit
def _decode_fp8(b, exp_bits, man_bits, bias):
    """uint8 fp8 bits -> float32 value (exact for finite encodings)."""
    b = b.to(tl.int32)
    s = (b >> 7) & 1
    e = (b >> man_bits) & ((1 << exp_bits) - 1)
    m = b & ((1 << man_bits) - 1)
    normal_bits = ((e - bias + 127) << 23) | (m << (23 - man_bits))
    normal = normal_bits.to(tl.float32, bitcast=True)
    # subnormal: m * 2^(1 - bias - man_bits)
    sub = m.to(tl.float32) * tl.exp2((1 - bias - man_bits).to(tl.float32))
    val = tl.where(e == 0, sub, normal)
    return tl.where(s == 1, -val, val)


@triton.jit
def _rope_halves(a, b, pos, offs_h, head_dim, rcp_scale, log2_theta):
    """Rotate-half RoPE on the two halves of x [R, D] (a = dims [0, D/2), b = [D/2, D), fp32) at
    positions pos [R]: returns (a cos - b sin, b cos + a sin)."""
    inv_freq = tl.exp2(-(2.0 * offs_h.to(tl.float32) / head_dim) * log2_theta)
    ang = (pos.to(tl.float32) * rcp_scale)[:, None] * inv_freq[None, :]
    TWO_PI: tl.constexpr = 6.283185307179586
    ang = ang - TWO_PI * tl.floor(ang / TWO_PI + 0.5)
    c = tl.cos(ang)
    sn = tl.sin(ang)
    return a * c - b * sn, b * c + a * sn


@triton.jit
def _page_split(cols, page_size, page_shift, PAGE_POW2: tl.constexpr):
    """(page number within the request, row within the page) of token `cols`. A power-of-two page
    size uses a shift and a mask: a division by a run-time value costs ~20 instructions per row,
    on the same warps as the softmax, every tile (45 vs 13 PTX divisions, paged vs dense)."""
    if PAGE_POW2:
        return cols >> page_shift, cols & (page_size - 1)
    else:
        return cols // page_size, cols % page_size


@triton.jit
def _tile_pages(idx_ptr, kv_start, cols, kv_len, page_size, page_shift, PAGE_POW2: tl.constexpr):
    """Page id of each K/V row `cols` of one request ([BLOCK_N] int64; 0 past kv_len)."""
    page_no, _ = _page_split(cols, page_size, page_shift, PAGE_POW2)
    return tl.load(idx_ptr + kv_start + page_no, mask=cols < kv_len, other=0).to(tl.int64)


@triton.jit
def _load_kv(ptr, pages, cols, kv_len, page_size, page_shift, stride_p, stride_n, stride_h, kvh, offs_d,
             d_lim: tl.constexpr, PAGED: tl.constexpr, PAGE_POW2: tl.constexpr, ROW32: tl.constexpr = False):
    """Tile [BLOCK_N, BLOCK_D] of K or V rows `cols` of one request (raw element type); paged rows
    live in pages `pages` (_tile_pages). ROW32: (page_size - 1) * |stride_n| fits int32, so the
    offset within a page is a 32-bit product."""
    cmask = cols < kv_len
    if PAGED:
        _, in_page = _page_split(cols, page_size, page_shift, PAGE_POW2)
        if ROW32:
            row_off = pages * stride_p + (in_page * stride_n).to(tl.int64)
        else:
            row_off = pages * stride_p + in_page.to(tl.int64) * stride_n
        ptrs = ptr + (row_off + kvh.to(tl.int64) * stride_h)[:, None] + offs_d[None, :]
    else:
        # ptr is already the request's (row 0, head kvh) address: 32-bit offsets within the request
        ptrs = ptr + (cols * stride_n)[:, None] + offs_d[None, :]
    return tl.load(ptrs, mask=cmask[:, None] & (offs_d < d_lim)[None, :], other=0)


@triton.jit
def _attn_tile(acc, m_i, l_i, qa, qb, start_n, qi, row_ok, row_pos,
               k_ptr, v_ptr, pages, mask_ptr, kv_len, page_size, page_shift,
               stride_kp, stride_kn, stride_kh, stride_vp, stride_vn, stride_vh, kvh,
               offs_n, offs_dqk, offs_dvo, head_dim_qk: tl.constexpr, head_dim_vo: tl.constexpr,
               mask_mode, window_left, mask_byte0, sm_scale, soft_cap, slope, alibi_on,
               rope_rcp_scale, rope_log2_theta, use_rope, fp8_exp, fp8_man, fp8_bias,
               PAGED: tl.constexpr, KV_FP8: tl.constexpr, EXTRA: tl.constexpr, MASKED: tl.constexpr,
               PAGE_POW2: tl.constexpr, SHARED_ROWS: tl.constexpr,
               k_desc=None, v_desc=None, k_row0=0, k_col0=0, v_row0=0, v_col0=0, TMA: tl.constexpr = False,
               diag_from=0, DIAG: tl.constexpr = False):
    cols = start_n + offs_n
    if TMA:
        # whole tile inside the request (unmasked loop only): one bulk copy per tile
        k = k_desc.load([k_row0 + start_n, k_col0])
        qk = tl.dot(qa, tl.trans(k))
    elif EXTRA:
        # q arrives as two halves of the feature dim (qa, qb); so does K, which lets RoPE rotate
        # without reloading partner dims: qk = qa.ka^T + qb.kb^T.
        half = head_dim_qk // 2
        ka = _load_kv(k_ptr, pages, cols, kv_len, page_size, page_shift, stride_kp, stride_kn, stride_kh, kvh,
                      offs_dqk, half, PAGED, PAGE_POW2, SHARED_ROWS)
        kb = _load_kv(k_ptr, pages, cols, kv_len, page_size, page_shift, stride_kp, stride_kn, stride_kh, kvh,
                      offs_dqk + half, head_dim_qk, PAGED, PAGE_POW2, SHARED_ROWS)
        if KV_FP8:
            ka = _decode_fp8(ka, fp8_exp, fp8_man, fp8_bias)
            kb = _decode_fp8(kb, fp8_exp, fp8_man, fp8_bias)
        if use_rope:
            ra, rb = _rope_halves(ka.to(tl.float32), kb.to(tl.float32), cols, offs_dqk, head_dim_qk,
                                  rope_rcp_scale, rope_log2_theta)
            ka = ra.to(ka.dtype)
            kb = rb.to(kb.dtype)
        qk = tl.dot(qa, tl.trans(ka.to(qa.dtype)))
        qk = tl.dot(qb, tl.trans(kb.to(qa.dtype)), qk)
    else:
        k = _load_kv(k_ptr, pages, cols, kv_len, page_size, page_shift, stride_kp, stride_kn, stride_kh, kvh,
                     offs_dqk, head_dim_qk, PAGED, PAGE_POW2, SHARED_ROWS)
        if KV_FP8:
            k = _decode_fp8(k, fp8_exp, fp8_man, fp8_bias)
        qk = tl.dot(qa, tl.trans(k.to(qa.dtype)))
    if EXTRA and soft_cap > 0:
        t = qk * (sm_scale / soft_cap)
        # tanh(t) = 1 - 2 / (exp(2t) + 1), in base 2
        s = soft_cap * (1.0 - 2.0 / (tl.exp2(t * (2.0 * 1.4426950408889634)) + 1.0))
        s = s * 1.4426950408889634
    else:
        s = qk * (sm_scale * 1.4426950408889634)
    if EXTRA and alibi_on:
        s = s + (slope * 1.4426950408889634)[:, None] * (cols[None, :] - row_pos[:, None]).to(tl.float32)
    if DIAG:
        # causal-diagonal tiles inside the request run in the unmasked (pipelined) loop too
        if start_n >= diag_from:
            s = tl.where(cols[None, :] <= row_pos[:, None], s, float("-inf"))
    if MASKED:
        keep = (cols < kv_len)[None, :] & row_ok[:, None]
        if mask_mode == 1:
            keep = keep & (cols[None, :] <= row_pos[:, None])
        if EXTRA and mask_mode == 2:
            bit = (qi * kv_len)[:, None] + cols[None, :]  # within the request's segment (int32)
            byte = tl.load(mask_ptr + mask_byte0 + (bit >> 3), mask=keep, other=0).to(tl.int32)
            keep = keep & (((byte >> (bit & 7)) & 1) != 0)
        if window_left >= 0:
            keep = keep & (cols[None, :] >= row_pos[:, None] - window_left)
        s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = m_new
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    if TMA:
        v = v_desc.load([v_row0 + start_n, v_col0])
    elif SHARED_ROWS:
        # same strides as K: the row offsets computed for K are reused (common subexpressions)
        v = _load_kv(v_ptr, pages, cols, kv_len, page_size, page_shift, stride_kp, stride_kn, stride_kh, kvh,
                     offs_dvo, head_dim_vo, PAGED, PAGE_POW2, SHARED_ROWS)
    else:
        v = _load_kv(v_ptr, pages, cols, kv_len, page_size, page_shift, stride_vp, stride_vn, stride_vh, kvh,
                     offs_dvo, head_dim_vo, PAGED, PAGE_POW2)
    if KV_FP8:
        v = _decode_fp8(v, fp8_exp, fp8_man, fp8_bias)
    acc = acc * alpha[:, None] + tl.dot(p.to(qa.dtype), v.to(qa.dtype))
    return acc, m_new, l_i


@triton.jit
def _work_words(wp):
    """The six words of the work row at wp: tile_row0, qo_start, qo_len, kv_start, kv_len,
    mask_byte_off."""
    return tl.load(wp), tl.load(wp + 1), tl.load(wp + 2), tl.load(wp + 3), tl.load(wp + 4), tl.load(wp + 5)


@triton.jit
def _deal_range(deal_ptr):
    """This program's share of plan()'s deal (deal_pairs: offsets [programs + 1], then the pair
    slots): (pointer to the slots, first index, end index). A slot is kv_head * n_work + work row."""
    pid = tl.program_id(0)
    return deal_ptr + tl.num_programs(0) + 1, tl.load(deal_ptr + pid), tl.load(deal_ptr + pid + 1)


@triton.jit
def _dealt_pair(slots, i, work_ptr, n_work):
    """Slot i of the deal and its work row's six words (_work_words). The persistent kernels read
    the next pair's while the current one runs (that latency, paid at every pair's start, measured
    ~10 us at (16, 1024): NOTES.md session 14); the deal's spare last entry makes i = end safe."""
    slot = tl.load(slots + i)
    w0, w1, w2, w3, w4, w5 = _work_words(work_ptr + (slot % n_work) * 8)
    return slot, w0, w1, w2, w3, w4, w5


@triton.jit
def _prefill_item(
    pid, kvh,
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, work_ptr, idx_ptr, mask_ptr,
    stride_qn, stride_qh, stride_kp, stride_kn, stride_kh, stride_vp, stride_vn, stride_vh,
    stride_on, stride_oh, stride_ln, stride_lh,
    single, single_qo_len, single_kv_len, page_size, page_shift, group, kv_start_mul,
    mask_mode, window_left, sm_scale, soft_cap, v_scale, alibi_n, use_rope, rope_rcp_scale, rope_log2_theta,
    write_lse, fp8_exp, fp8_man, fp8_bias,
    k_desc, v_desc, k_rows_per_head, k_cols_per_head, v_rows_per_head, v_cols_per_head,
    HEAD_DIM_QK: tl.constexpr, HEAD_DIM_VO: tl.constexpr,
    PAGED: tl.constexpr, KV_FP8: tl.constexpr, EXTRA: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DVO: tl.constexpr,
    PREFETCH_PAGES: tl.constexpr = False, PAGE_POW2: tl.constexpr = False, SHARED_ROWS: tl.constexpr = False,
    TMA: tl.constexpr = False, DIAG_IN_LOOP: tl.constexpr = False,
    WORDS_GIVEN: tl.constexpr = False, g_row0=0, g_qo_start=0, g_qo_len=0, g_kv_start=0, g_kv_len=0, g_mask=0,
):
    """One schedule item (row `pid` of the work list, or the single request's tile `pid`) for kv
    head `kvh`: prefill_kernel's whole computation for that tile."""
    if WORDS_GIVEN:
        tile_row0 = g_row0
        qo_start = g_qo_start
        qo_len = g_qo_len
        kv_start = g_kv_start * kv_start_mul
        kv_len = g_kv_len
        mask_byte = g_mask
    elif single != 0:
        tile_row0 = pid * BLOCK_M
        qo_start = single_qo_len * 0
        qo_len = single_qo_len
        kv_start = single_qo_len * 0
        kv_len = single_kv_len
        mask_byte = single_qo_len * 0
    else:
        tile_row0, qo_start, qo_len, kv_start, kv_len, mask_byte = _work_words(work_ptr + pid * 8)
        kv_start = kv_start * kv_start_mul
    if qo_len <= 0:
        return
    offs_m = tile_row0 + tl.arange(0, BLOCK_M)
    qi = offs_m // group
    hq = kvh * group + offs_m % group
    row_ok = qi < qo_len
    off = kv_len - qo_len
    row_pos = qi + off
    offs_n = tl.arange(0, BLOCK_N)
    offs_dvo = tl.arange(0, BLOCK_DVO)

    q_rows = (qo_start + qi).to(tl.int64) * stride_qn + hq.to(tl.int64) * stride_qh
    if EXTRA:
        # two halves of the feature dim, each padded to BLOCK_DQK // 2 (see _attn_tile)
        offs_dqk = tl.arange(0, BLOCK_DQK // 2)
        half = HEAD_DIM_QK // 2
        qa = tl.load(q_ptr + q_rows[:, None] + offs_dqk[None, :], mask=row_ok[:, None] & (offs_dqk < half)[None, :],
                     other=0)
        qb = tl.load(q_ptr + q_rows[:, None] + half + offs_dqk[None, :],
                     mask=row_ok[:, None] & (offs_dqk < half)[None, :], other=0)
        if use_rope:
            ra, rb = _rope_halves(qa.to(tl.float32), qb.to(tl.float32), row_pos, offs_dqk, HEAD_DIM_QK,
                                  rope_rcp_scale, rope_log2_theta)
            qa = ra.to(q_ptr.dtype.element_ty)
            qb = rb.to(q_ptr.dtype.element_ty)
    else:
        offs_dqk = tl.arange(0, BLOCK_DQK)
        qa = tl.load(q_ptr + q_rows[:, None] + offs_dqk[None, :],
                     mask=row_ok[:, None] & (offs_dqk < HEAD_DIM_QK)[None, :], other=0)
        qb = qa

    # ALiBi slope per packed row (0 when off): standard geometric slopes of H_qo heads.
    hqf = hq.to(tl.float32)
    nf = tl.maximum(alibi_n, 1).to(tl.float32)
    slope = tl.where(hq < alibi_n, tl.exp2(-8.0 / nf * (hqf + 1.0)),
                     tl.exp2(-4.0 / nf * (2.0 * (hqf - nf) + 1.0)))
    slope = tl.where(alibi_n > 0, slope, 0.0)

    # Column ranges (see module docstring).
    i_min = tile_row0 // group
    i_max = tl.minimum((tile_row0 + BLOCK_M - 1) // group, qo_len - 1)
    hi = kv_len
    full_hi = kv_len
    if mask_mode == 1:
        hi = tl.minimum(kv_len, tl.maximum(i_max + off + 1, 0))
        full_hi = tl.minimum(kv_len, tl.maximum(i_min + off + 1, 0))
    full_hi = (full_hi // BLOCK_N) * BLOCK_N
    lo = kv_len * 0
    full_lo = kv_len * 0
    if window_left >= 0:
        lo = (tl.maximum(i_min + off - window_left, 0) // BLOCK_N) * BLOCK_N
        full_lo = tl.cdiv(tl.maximum(i_max + off - window_left, 0), BLOCK_N) * BLOCK_N
    if mask_mode == 2:
        full_lo = lo
        full_hi = lo
    n1 = tl.cdiv(tl.maximum(tl.minimum(full_lo, hi) - lo, 0), BLOCK_N)
    loop_hi = full_hi
    if DIAG_IN_LOOP:
        if mask_mode == 1 and window_left < 0:
            # causal-diagonal tiles that lie inside the request join the unmasked loop (masked
            # there): their copies are pipelined (with TMA: no per-row address math either)
            loop_hi = tl.maximum(full_hi, tl.minimum(tl.cdiv(hi, BLOCK_N), kv_len // BLOCK_N) * BLOCK_N)
    s3 = tl.maximum(full_lo, loop_hi)
    n3 = tl.cdiv(tl.maximum(hi - s3, 0), BLOCK_N)
    mask_byte0 = mask_byte.to(tl.int64)

    if not PAGED:
        k_ptr += kv_start.to(tl.int64) * stride_kn + kvh.to(tl.int64) * stride_kh
        v_ptr += kv_start.to(tl.int64) * stride_vn + kvh.to(tl.int64) * stride_vh
    acc = tl.zeros([BLOCK_M, BLOCK_DVO], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    pages = offs_n.to(tl.int64)
    if PAGED and PREFETCH_PAGES:
        pages = _tile_pages(idx_ptr, kv_start, full_lo + offs_n, kv_len, page_size, page_shift, PAGE_POW2)
    k_row0 = kv_start + kvh * k_rows_per_head
    k_col0 = kvh * k_cols_per_head
    v_row0 = kv_start + kvh * v_rows_per_head
    v_col0 = kvh * v_cols_per_head
    for start_n in tl.range(full_lo, loop_hi, BLOCK_N):
        if PAGED:
            if PREFETCH_PAGES:
                pages_next = _tile_pages(idx_ptr, kv_start, start_n + BLOCK_N + offs_n, kv_len, page_size, page_shift,
                                         PAGE_POW2)
            else:
                pages = _tile_pages(idx_ptr, kv_start, start_n + offs_n, kv_len, page_size, page_shift, PAGE_POW2)
        acc, m_i, l_i = _attn_tile(acc, m_i, l_i, qa, qb, start_n, qi, row_ok, row_pos,
                                   k_ptr, v_ptr, pages, mask_ptr, kv_len, page_size, page_shift,
                                   stride_kp, stride_kn, stride_kh, stride_vp, stride_vn, stride_vh, kvh,
                                   offs_n, offs_dqk, offs_dvo, HEAD_DIM_QK, HEAD_DIM_VO,
                                   mask_mode, window_left, mask_byte0, sm_scale, soft_cap, slope, alibi_n > 0,
                                   rope_rcp_scale, rope_log2_theta, use_rope, fp8_exp, fp8_man, fp8_bias,
                                   PAGED, KV_FP8, EXTRA, False, PAGE_POW2, SHARED_ROWS,
                                   k_desc, v_desc, k_row0, k_col0, v_row0, v_col0, TMA, full_hi, DIAG_IN_LOOP)
        if PAGED and PREFETCH_PAGES:
            pages = pages_next
    for t in tl.range(0, n1 + n3, num_stages=1):
        start_n = tl.where(t < n1, lo + t * BLOCK_N, s3 + (t - n1) * BLOCK_N)
        if PAGED:
            pages = _tile_pages(idx_ptr, kv_start, start_n + offs_n, kv_len, page_size, page_shift, PAGE_POW2)
        acc, m_i, l_i = _attn_tile(acc, m_i, l_i, qa, qb, start_n, qi, row_ok, row_pos,
                                   k_ptr, v_ptr, pages, mask_ptr, kv_len, page_size, page_shift,
                                   stride_kp, stride_kn, stride_kh, stride_vp, stride_vn, stride_vh, kvh,
                                   offs_n, offs_dqk, offs_dvo, HEAD_DIM_QK, HEAD_DIM_VO,
                                   mask_mode, window_left, mask_byte0, sm_scale, soft_cap, slope, alibi_n > 0,
                                   rope_rcp_scale, rope_log2_theta, use_rope, fp8_exp, fp8_man, fp8_bias,
                                   PAGED, KV_FP8, EXTRA, True, PAGE_POW2, SHARED_ROWS)

    has = l_i > 0
    l_safe = tl.where(has, l_i, 1.0)
    o = acc * (v_scale / l_safe)[:, None]
    o_rows = (qo_start + qi).to(tl.int64) * stride_on + hq.to(tl.int64) * stride_oh
    tl.store(o_ptr + o_rows[:, None] + offs_dvo[None, :], o.to(o_ptr.dtype.element_ty),
             mask=row_ok[:, None] & (offs_dvo < HEAD_DIM_VO)[None, :])
    if write_lse != 0:
        lse = tl.where(has, m_i + tl.log2(l_safe), float("-inf"))
        l_rows = (qo_start + qi).to(tl.int64) * stride_ln + hq.to(tl.int64) * stride_lh
        tl.store(lse_ptr + l_rows, lse, mask=row_ok)


# Head dims are constexpr: masks against them must be provably uniform over vector widths, or the
# loads are not vectorised (a runtime head_dim halved the H100 throughput). Runtime ints that must
# not be specialised (value 1 / multiple of 16) into extra compiled
# variants: one compiled kernel serves every mask mode, group size, page size and flag.
@triton.jit(do_not_specialize=["single", "single_qo_len", "single_kv_len", "page_size", "page_shift", "group",
                               "kv_start_mul", "mask_mode", "window_left", "alibi_n", "use_rope", "write_lse",
                               "fp8_exp", "fp8_man", "fp8_bias", "k_rows_per_head", "k_cols_per_head",
                               "v_rows_per_head", "v_cols_per_head", "n_work"])
def prefill_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, work_ptr, idx_ptr, mask_ptr,
    stride_qn, stride_qh, stride_kp, stride_kn, stride_kh, stride_vp, stride_vn, stride_vh,
    stride_on, stride_oh, stride_ln, stride_lh,
    single, single_qo_len, single_kv_len, page_size, page_shift, group, kv_start_mul,
    mask_mode, window_left, sm_scale, soft_cap, v_scale, alibi_n, use_rope, rope_rcp_scale, rope_log2_theta,
    write_lse, fp8_exp, fp8_man, fp8_bias,
    k_desc, v_desc, k_rows_per_head, k_cols_per_head, v_rows_per_head, v_cols_per_head,
    n_work, deal_ptr,
    HEAD_DIM_QK: tl.constexpr, HEAD_DIM_VO: tl.constexpr,
    PAGED: tl.constexpr, KV_FP8: tl.constexpr, EXTRA: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DVO: tl.constexpr,
    PREFETCH_PAGES: tl.constexpr = False, PAGE_POW2: tl.constexpr = False, SHARED_ROWS: tl.constexpr = False,
    TMA: tl.constexpr = False, DIAG_IN_LOOP: tl.constexpr = False, PERSISTENT: tl.constexpr = False,
    PDL_WAIT: tl.constexpr = False,
):
    """PREFETCH_PAGES (paged only): the unmasked-tile loop loads the next tile's page ids one
    iteration ahead (loop-carried), so the K/V loads of a tile do not wait on a page-table load.
    That holds without software pipelining (num_stages 1, AMD). A pipelining compiler issues the
    K/V copies num_stages - 1 iterations early and may schedule the carried page-id load right
    before them (sm90, Triton 3.6); off, at 5 stages, the pipeliner gives the page-id load a
    cp.async stage of its own, which measured 2-3% slower (configs/attention/prefill.py). PAGE_POW2: page_size is
    1 << page_shift (shift and mask instead of division). SHARED_ROWS (paged only): K and V have
    the same (page, row, head) strides and (page_size - 1) * |stride_kn| fits int32 (checked at
    launch): V reuses K's row offsets and the in-page part is a 32-bit product (64-bit address math
    was ~120 of the paged loop's 550 SASS instructions against ragged's 401). TMA (dense, lean,
    16-bit K/V, sm90): the unmasked loop reads K / V tiles through tensor descriptors k_desc /
    v_desc (a 2-D view of the cache: row = token (+ kvh * *_rows_per_head), column = kvh *
    *_cols_per_head), one bulk copy a tile instead of per-thread copies and their address math;
    the masked tiles keep the pointer loads (their rows may run past kv_len). DIAG_IN_LOOP (with
    TMA on sm90): causal-diagonal tiles that lie wholly inside the request (no sliding window) join
    the unmasked loop, which masks tiles from full_hi on, so their copies are pipelined (and bulk)
    too. Without TMA the descriptor arguments are unused placeholders.

    Grid: (work rows, kv heads), one item each; or, PERSISTENT, (P, 1): program p runs the (item,
    kv head) pairs plan() dealt it (deal_ptr: int32 [P + 1] offsets, then each program's pair
    numbers s = kv head * n_work + work row, then one spare entry; lpt_deal), in that order;
    deal_ptr is unused otherwise.

    PDL_WAIT (NVIDIA only): the launch is a programmatic dependent of the kernel before it on the
    stream (the staged copy, stage_paged_kv_kernel PDL_SIGNAL): programs may start while that
    kernel still runs and wait here for its completion (and its writes) before any read of K / V."""
    if PDL_WAIT:
        gdc_wait()
    if PERSISTENT:
        slots, beg, end = _deal_range(deal_ptr)
        slot, w0, w1, w2, w3, w4, w5 = _dealt_pair(slots, beg, work_ptr, n_work)
        for i in range(beg, end):
            c_kvh = slot // n_work
            c0, c1, c2, c3, c4, c5 = w0, w1, w2, w3, w4, w5
            slot, w0, w1, w2, w3, w4, w5 = _dealt_pair(slots, i + 1, work_ptr, n_work)
            _prefill_item(0, c_kvh, q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, work_ptr, idx_ptr,
                          mask_ptr, stride_qn, stride_qh, stride_kp, stride_kn, stride_kh, stride_vp, stride_vn,
                          stride_vh, stride_on, stride_oh, stride_ln, stride_lh, single, single_qo_len,
                          single_kv_len, page_size, page_shift, group, kv_start_mul, mask_mode, window_left,
                          sm_scale, soft_cap, v_scale, alibi_n, use_rope, rope_rcp_scale, rope_log2_theta,
                          write_lse, fp8_exp, fp8_man, fp8_bias, k_desc, v_desc, k_rows_per_head, k_cols_per_head,
                          v_rows_per_head, v_cols_per_head, HEAD_DIM_QK, HEAD_DIM_VO, PAGED, KV_FP8, EXTRA,
                          BLOCK_M, BLOCK_N, BLOCK_DQK, BLOCK_DVO, PREFETCH_PAGES, PAGE_POW2, SHARED_ROWS, TMA,
                          DIAG_IN_LOOP, True, c0, c1, c2, c3, c4, c5)
    else:
        _prefill_item(tl.program_id(0), tl.program_id(1), q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, work_ptr, idx_ptr,
                      mask_ptr, stride_qn, stride_qh, stride_kp, stride_kn, stride_kh, stride_vp, stride_vn,
                      stride_vh, stride_on, stride_oh, stride_ln, stride_lh, single, single_qo_len, single_kv_len,
                      page_size, page_shift, group, kv_start_mul, mask_mode, window_left, sm_scale, soft_cap, v_scale,
                      alibi_n, use_rope, rope_rcp_scale, rope_log2_theta, write_lse, fp8_exp, fp8_man, fp8_bias,
                      k_desc, v_desc, k_rows_per_head, k_cols_per_head, v_rows_per_head, v_cols_per_head, HEAD_DIM_QK,
                      HEAD_DIM_VO, PAGED, KV_FP8, EXTRA, BLOCK_M, BLOCK_N, BLOCK_DQK, BLOCK_DVO, PREFETCH_PAGES,
                      PAGE_POW2, SHARED_ROWS, TMA, DIAG_IN_LOOP)


@triton.jit
def _online_softmax_step(s, v, acc, m_i, l_i):
    """One K / V tile of the online softmax (base-2 scores s [M, N], masked entries -inf; rows
    that have seen a key keep a finite max): the running (acc [M, D], max [M], sum [M])."""
    m_new = tl.maximum(m_i, tl.max(s, 1))
    p = tl.exp2(s - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return acc, m_new, l_i


@triton.jit
def _lean_pair(kvh, row0, qo_start, qo_len, kv_start, kv_len, q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, k_desc, v_desc,
               stride_qn, stride_qh, stride_kn, stride_kh, stride_vn, stride_vh, stride_on, stride_oh,
               stride_ln, stride_lh, group, mask_mode, qk_scale, v_scale,
               k_rows_per_head, k_cols_per_head, v_rows_per_head, v_cols_per_head,
               HEAD_DIM_QK: tl.constexpr, HEAD_DIM_VO: tl.constexpr, BLOCK_M: tl.constexpr,
               BLOCK_N: tl.constexpr, WRITE_LSE: tl.constexpr):
    """prefill_persistent_kernel's work for one (item, kv head) pair: the rows row0 .. row0 +
    BLOCK_M of a request (qo_start, qo_len, kv_start: its first K / V row, kv_len > 0; K / V row
    kv_start + j of kv head kvh at k_ptr + (kv_start + j) * stride_kn + kvh * stride_kh, and through
    the descriptors as prefill_kernel's)."""
    offs_b = tl.arange(0, BLOCK_M)
    offs_dqk = tl.arange(0, HEAD_DIM_QK)
    offs_dvo = tl.arange(0, HEAD_DIM_VO)
    qi = (row0 + offs_b) // group
    hq = kvh * group + (row0 + offs_b) % group
    row_ok = qi < qo_len
    off = kv_len - qo_len
    row_pos = qi + off
    q = tl.load(q_ptr + ((qo_start + qi).to(tl.int64) * stride_qn + hq.to(tl.int64) * stride_qh)[:, None]
                + offs_dqk[None, :], mask=row_ok[:, None], other=0)
    hi = kv_len
    diag_from = kv_len
    if mask_mode == 1:
        i_max = tl.minimum((row0 + BLOCK_M - 1) // group, qo_len - 1)
        hi = tl.minimum(kv_len, tl.maximum(i_max + off + 1, 0))
        diag_from = (tl.minimum(kv_len, tl.maximum(row0 // group + off + 1, 0)) // BLOCK_N) * BLOCK_N
    # Every tile goes through the descriptors: the last one, where the request ends mid-tile, is
    # read shifted back to end at kv_len (rows kv_len - BLOCK_N .. kv_len: all this request's, so
    # no other request's values reach the sums) and its columns already seen are masked. One code
    # path in the loop: a second, pointer-loaded edge tile cost it ~4% (NOTES.md session 14).
    # A request shorter than a tile has no such window: its one tile is pointer-loaded instead.
    acc = tl.zeros([BLOCK_M, HEAD_DIM_VO], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    offs_n = tl.arange(0, BLOCK_N)
    if kv_len >= BLOCK_N:
        n_t = tl.cdiv(hi, BLOCK_N)
        mask_from = tl.minimum(diag_from, (kv_len // BLOCK_N) * BLOCK_N)
        last = kv_len - BLOCK_N
        k_row0 = kv_start + kvh * k_rows_per_head
        k_col0 = kvh * k_cols_per_head
        v_row0 = kv_start + kvh * v_rows_per_head
        v_col0 = kvh * v_cols_per_head
        for start_n in tl.range(0, n_t * BLOCK_N, BLOCK_N):
            ld = tl.minimum(start_n, last)
            k = k_desc.load([k_row0 + ld, k_col0])
            s = tl.dot(q, tl.trans(k)) * qk_scale
            if start_n >= mask_from:
                cols = ld + offs_n
                keep = (cols >= start_n)[None, :] & ((cols[None, :] <= row_pos[:, None]) | (mask_mode == 0))
                s = tl.where(keep, s, float("-inf"))
            v = v_desc.load([v_row0 + ld, v_col0])
            acc, m_i, l_i = _online_softmax_step(s, v, acc, m_i, l_i)
    else:
        row_in = offs_n < kv_len
        k = k_desc.load([kv_start + kvh * k_rows_per_head, kvh * k_cols_per_head])
        v = tl.load(v_ptr + (kv_start + offs_n).to(tl.int64)[:, None] * stride_vn + kvh.to(tl.int64) * stride_vh
                    + offs_dvo[None, :], mask=row_in[:, None], other=0)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        keep = row_in[None, :] & ((offs_n[None, :] <= row_pos[:, None]) | (mask_mode == 0))
        acc, m_i, l_i = _online_softmax_step(tl.where(keep, s, float("-inf")), v, acc, m_i, l_i)
    # kv_len > 0 and qo_len <= kv_len (causal): every row sees key 0, so l_i > 0
    o = acc * (v_scale / l_i)[:, None]
    o_rows = (qo_start + qi).to(tl.int64) * stride_on + hq.to(tl.int64) * stride_oh
    tl.store(o_ptr + o_rows[:, None] + offs_dvo[None, :], o.to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
    if WRITE_LSE:
        tl.store(lse_ptr + (qo_start + qi).to(tl.int64) * stride_ln + hq.to(tl.int64) * stride_lh,
                 m_i + tl.log2(l_i), mask=row_ok)


@triton.jit
def _lean_empty(kvh, row0, qo_start, qo_len, o_ptr, lse_ptr, stride_on, stride_oh, stride_ln, stride_lh, group,
                HEAD_DIM_VO: tl.constexpr, BLOCK_M: tl.constexpr, WRITE_LSE: tl.constexpr):
    """A pair of a request without K / V (kv_len 0): zero output, lse -inf."""
    offs_b = tl.arange(0, BLOCK_M)
    offs_dvo = tl.arange(0, HEAD_DIM_VO)
    qi = (row0 + offs_b) // group
    hq = kvh * group + (row0 + offs_b) % group
    row_ok = qi < qo_len
    o_rows = (qo_start + qi).to(tl.int64) * stride_on + hq.to(tl.int64) * stride_oh
    tl.store(o_ptr + o_rows[:, None] + offs_dvo[None, :], tl.zeros([BLOCK_M, HEAD_DIM_VO], o_ptr.dtype.element_ty),
             mask=row_ok[:, None])
    if WRITE_LSE:
        tl.store(lse_ptr + (qo_start + qi).to(tl.int64) * stride_ln + hq.to(tl.int64) * stride_lh,
                 tl.full([BLOCK_M], float("-inf"), tl.float32), mask=row_ok)


@triton.jit(do_not_specialize=["n_work", "group", "kv_start_mul", "mask_mode", "k_rows_per_head",
                               "k_cols_per_head", "v_rows_per_head", "v_cols_per_head"])
def prefill_persistent_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, work_ptr, deal_ptr, k_desc, v_desc,
    stride_qn, stride_qh, stride_kn, stride_kh, stride_vn, stride_vh, stride_on, stride_oh, stride_ln, stride_lh,
    n_work, group, kv_start_mul, mask_mode, qk_scale, v_scale,
    k_rows_per_head, k_cols_per_head, v_rows_per_head, v_cols_per_head,
    HEAD_DIM_QK: tl.constexpr, HEAD_DIM_VO: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    WRITE_LSE: tl.constexpr = False, PDL_WAIT: tl.constexpr = False,
):
    """Persistent lean prefill (sm90, 16-bit dense K / V read through tensor descriptors; no mask
    but causal, no window, RoPE, ALiBi, soft cap or fp8): program p runs the (item, kv head) pairs
    plan() dealt it, as prefill_kernel PERSISTENT does (deal_ptr layout there), with
    prefill_kernel's results. qk_scale = sm_scale * log2(e); mask_mode 0 (none) or 1 (causal);
    work rows and descriptor views as prefill_kernel's (kv_start scaled by kv_start_mul); lse
    written iff WRITE_LSE; K / V strides (stride_kn, stride_kh, ...) address requests shorter
    than a tile (_lean_pair).

    Why a kernel of its own: at short causal sequences (~8.5 tiles a pair at (16, 1024)) a pair's
    fixed cost weighs. The one-pair-a-program grid pays a program launch for each; prefill_kernel's
    persistent form, with its general feature code, ran 393.6-394.4 us there against 384.7-387.2
    for this kernel and 401.6-402.0 for the 2-D grid (H100, outputs bit-identical; LEAN_NOTE in
    configs/attention/prefill.py)."""
    if PDL_WAIT:
        gdc_wait()
    slots, beg, end = _deal_range(deal_ptr)
    slot, w0, w1, w2, w3, w4, w5 = _dealt_pair(slots, beg, work_ptr, n_work)
    for i in range(beg, end):
        kvh = slot // n_work
        row0, qo_start, qo_len, kv_start, kv_len = w0, w1, w2, w3, w4
        slot, w0, w1, w2, w3, w4, w5 = _dealt_pair(slots, i + 1, work_ptr, n_work)
        if kv_len > 0:
            # (unused slots have qo_len 0: every row is then masked off)
            _lean_pair(kvh, row0, qo_start, qo_len, kv_start * kv_start_mul, kv_len, q_ptr, k_ptr, v_ptr, o_ptr,
                       lse_ptr, k_desc, v_desc, stride_qn, stride_qh, stride_kn, stride_kh, stride_vn, stride_vh,
                       stride_on, stride_oh, stride_ln, stride_lh, group, mask_mode, qk_scale, v_scale,
                       k_rows_per_head, k_cols_per_head, v_rows_per_head, v_cols_per_head, HEAD_DIM_QK,
                       HEAD_DIM_VO, BLOCK_M, BLOCK_N, WRITE_LSE)
        else:
            _lean_empty(kvh, row0, qo_start, qo_len, o_ptr, lse_ptr, stride_on, stride_oh, stride_ln, stride_lh,
                        group, HEAD_DIM_VO, BLOCK_M, WRITE_LSE)


@triton.jit(do_not_specialize=["page_size", "page_shift", "group", "block_m"])
def stage_paged_kv_kernel(
    k_ptr, v_ptr, ks_ptr, vs_ptr, work_ptr, idx_ptr,
    stride_kp, stride_kn, stride_kh, stride_vp, stride_vn, stride_vh,
    page_size, page_shift, group, block_m,
    HEAD_DIM_QK: tl.constexpr, HEAD_DIM_VO: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DVO: tl.constexpr,
    ROWS: tl.constexpr, PAGE_POW2: tl.constexpr, PDL_SIGNAL: tl.constexpr = False,
):
    """Copy the paged K / V rows of every scheduled request into contiguous NHD staging buffers, so
    the dense prefill kernel (whole-tile descriptor copies, no per-row page-table arithmetic) can
    run on them: token t of a request whose pages start at kv_indices[kv_start] lands in staging
    row kv_start * page_size + t (ks [rows, H_kv, HEAD_DIM_QK], vs [rows, H_kv, HEAD_DIM_VO],
    contiguous). Program (w, kvh) takes the prefill schedule's item w: the request's T tiles
    (cdiv(qo_len * group, block_m)) split its kv_len tokens into T even shares of ROWS-row chunks,
    and this item copies share tile_row0 // block_m for kv head kvh. Unused slots (qo_len 0) and
    requests without queries copy nothing. PDL_SIGNAL (NVIDIA only): let the dependent dense launch
    (prefill_kernel PDL_WAIT) start now; it waits for this grid's completion before reading."""
    if PDL_SIGNAL:
        gdc_launch_dependents()
    pid = tl.program_id(0)
    kvh = tl.program_id(1)
    wp = work_ptr + pid * 8
    tile_row0 = tl.load(wp)
    qo_len = tl.load(wp + 2)
    kv_start = tl.load(wp + 3)
    kv_len = tl.load(wp + 4)
    if qo_len <= 0:
        return
    n_tiles = tl.cdiv(qo_len * group, block_m).to(tl.int64)
    t = (tile_row0 // block_m).to(tl.int64)
    n_chunks = tl.cdiv(kv_len, ROWS).to(tl.int64)
    c_lo = (t * n_chunks // n_tiles).to(tl.int32)
    c_hi = ((t + 1) * n_chunks // n_tiles).to(tl.int32)
    offs_r = tl.arange(0, ROWS)
    offs_dk = tl.arange(0, BLOCK_DQK)
    offs_dv = tl.arange(0, BLOCK_DVO)
    n_heads = tl.num_programs(1)
    dst_row0 = kv_start.to(tl.int64) * page_size
    for c in range(c_lo, c_hi):
        tok = c * ROWS + offs_r
        ok = tok < kv_len
        page_no, in_page = _page_split(tok, page_size, page_shift, PAGE_POW2)
        page = tl.load(idx_ptr + kv_start + page_no, mask=ok, other=0).to(tl.int64)
        dst = (dst_row0 + tok) * n_heads + kvh
        src_k = page * stride_kp + in_page.to(tl.int64) * stride_kn + kvh.to(tl.int64) * stride_kh
        kt = tl.load(k_ptr + src_k[:, None] + offs_dk[None, :], mask=ok[:, None] & (offs_dk < HEAD_DIM_QK)[None, :])
        tl.store(ks_ptr + (dst * HEAD_DIM_QK)[:, None] + offs_dk[None, :], kt,
                 mask=ok[:, None] & (offs_dk < HEAD_DIM_QK)[None, :])
        src_v = page * stride_vp + in_page.to(tl.int64) * stride_vn + kvh.to(tl.int64) * stride_vh
        vt = tl.load(v_ptr + src_v[:, None] + offs_dv[None, :], mask=ok[:, None] & (offs_dv < HEAD_DIM_VO)[None, :])
        tl.store(vs_ptr + (dst * HEAD_DIM_VO)[:, None] + offs_dv[None, :], vt,
                 mask=ok[:, None] & (offs_dv < HEAD_DIM_VO)[None, :])
