"""Triton kernels for sampling (spec §11): softmax, sorting-free samplers, top-k/top-p filters,
chain speculative sampling.

Samplers (FlashInfer's rejection sampling with pivots, no sort). A row is walked in BLOCK-wide
blocks; the per-block masses of the current candidate set {p > low} live in a small register
vector (NB >= number of blocks). A round draws one uniform u (Philox, tl.rand), picks the block
whose cumulative mass crosses u*q, then the token inside that block (one block re-read): an exact
inverse-CDF draw from the set. The next pass over the row tests the candidate (mass / count of
tokens strictly above it against top-p / top-k) and, in the same pass, collects the block masses
of the two possible next sets {p > pivot0}, {p > pivot1} (pivot0 = the candidate's probability,
pivot1 = midway to the upper bound), so a round costs one pass plus one block. Rejected
candidates only shrink the set towards the filter's support, so an accepted draw is exactly
distributed as the renormalised filtered row. Rounds are bounded (MAX_ROUNDS).

Filters: top_k_renorm / top_k_mask find the exact k-th largest value by a 4-pass radix select on
the order-preserving int32 key of the float32 values (tl.histogram of one 8-bit digit a pass);
top_p_renorm bisects over the same keys (at most ~33 passes), finishing early when the smallest
key above the lower bound is already inside the nucleus.

Every kernel runs one program per row (no vocabulary split yet: small batches are latency-bound).

Randomness: counter = offset + per-row index + (round << 40); seed and offset are read from
device tensors; the last program to finish (an atomic ticket on a per-device int32 counter)
advances offset by `inc`, so every program reads the old offset and a captured graph advances it on
each replay. The ticket counter is shared per device: two sampling launches running concurrently
on different streams of one device would race on it.
"""
import triton
import triton.language as tl

MODE_PLAIN = 0
MODE_TOP_P = 1
MODE_TOP_K = 2
MODE_JOINT = 3
MODE_MIN_P = 4


@triton.jit
def _advance_offset(offset_ptr, ticket_ptr, off, inc, n_programs):
    """Last program to arrive writes offset = off + inc and re-arms the ticket."""
    t = tl.atomic_add(ticket_ptr, 1)
    last = t == n_programs - 1
    tl.store(offset_ptr, off + inc, mask=last)
    tl.store(ticket_ptr, t * 0, mask=last)


@triton.jit
def _key(x):
    """float32 -> int32 with the same order (negative floats get their magnitude bits flipped)."""
    b = x.to(tl.int32, bitcast=True)
    return tl.where(b < 0, b ^ 0x7FFFFFFF, b)


@triton.jit
def _pick(base, vocab, bmass, u, low, shift, LOGITS: tl.constexpr, BLOCK: tl.constexpr, NB: tl.constexpr):
    """Inverse-CDF draw: the token where the cumulative mass of the candidate set crosses u.
    Probs: the set is {p > low}, mass p. Logits: the set is {x > -inf}, mass exp(x - shift).
    Returns (valid, index, value) where value is p (probs) or x (logits)."""
    bids = tl.arange(0, NB)
    cums = tl.cumsum(bmass, 0)
    b_hit = tl.min(tl.where(cums > u, bids, NB))
    b_last = tl.max(tl.where(bmass > 0, bids, -1))
    b = tl.maximum(tl.where(b_hit < NB, b_hit, b_last), 0)
    u2 = u - tl.sum(tl.where(bids < b, bmass, 0.0))
    offs = tl.arange(0, BLOCK)
    cols = b * BLOCK + offs
    inb = cols < vocab
    if LOGITS:
        x = tl.load(base + cols, mask=inb, other=float("-inf")).to(tl.float32)
        m = inb & (x > float("-inf"))
        w = tl.where(m, tl.exp(x - shift), 0.0)
    else:
        x = tl.load(base + cols, mask=inb, other=0.0).to(tl.float32)
        m = inb & (x > low)
        w = tl.where(m, x, 0.0)
    c = tl.cumsum(w, 0)
    j_hit = tl.min(tl.where((c > u2) & m, offs, BLOCK))
    j_last = tl.max(tl.where(m, offs, -1))
    j = tl.where(j_hit < BLOCK, j_hit, j_last)
    valid = j >= 0
    j = tl.maximum(j, 0)
    val = tl.sum(tl.where(offs == j, x, 0.0))
    return valid, b * BLOCK + j, val


@triton.jit
def _put(vec, b0, vals, NB: tl.constexpr, UNROLL: tl.constexpr):
    """vec[b0 + i] = vals[i] for i < UNROLL (vec: [NB], vals: [UNROLL])."""
    sel = tl.arange(0, NB)[:, None] == (b0 + tl.arange(0, UNROLL))[None, :]
    hit = tl.sum(sel.to(tl.int32), axis=1) > 0
    return tl.where(hit, tl.sum(tl.where(sel, vals[None, :], 0.0), axis=1), vec)


@triton.jit
def _tile(base, b0, vocab, BLOCK: tl.constexpr, UNROLL: tl.constexpr):
    """Blocks b0 .. b0+UNROLL-1 of a row as one [UNROLL, BLOCK] float32 load (0 past the end)."""
    cols = (b0 + tl.arange(0, UNROLL))[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]
    return tl.load(base + cols, mask=cols < vocab, other=0.0).to(tl.float32)


@triton.jit
def _mass_pass(base, vocab, n_blocks, BLOCK: tl.constexpr, NB: tl.constexpr, UNROLL: tl.constexpr):
    """Per-block masses of the positive entries and the row max. With UNROLL > 1 the loads of UNROLL
    blocks are in flight together before any reduction (a lone program is latency-bound: the
    tail rows of a batch run their last rounds alone)."""
    bids = tl.arange(0, NB)
    bmass = tl.zeros([NB], dtype=tl.float32)
    rmax = 0.0
    if UNROLL == 1:
        offs = tl.arange(0, BLOCK)
        for b in range(0, n_blocks):
            cols = b * BLOCK + offs
            x = tl.load(base + cols, mask=cols < vocab, other=0.0).to(tl.float32)
            x = tl.where(x > 0.0, x, 0.0)
            bmass = tl.where(bids == b, tl.sum(x), bmass)
            rmax = tl.maximum(rmax, tl.max(x))
    else:
        for b0 in range(0, n_blocks, UNROLL):
            x = _tile(base, b0, vocab, BLOCK, UNROLL)
            x = tl.where(x > 0.0, x, 0.0)
            bmass = _put(bmass, b0, tl.sum(x, axis=1), NB, UNROLL)
            rmax = tl.maximum(rmax, tl.max(x))
    return bmass, rmax


@triton.jit
def _above_pass(base, vocab, n_blocks, low, BLOCK: tl.constexpr, NB: tl.constexpr, UNROLL: tl.constexpr):
    """Per-block masses of the entries > low."""
    bids = tl.arange(0, NB)
    bmass = tl.zeros([NB], dtype=tl.float32)
    if UNROLL == 1:
        offs = tl.arange(0, BLOCK)
        for b in range(0, n_blocks):
            cols = b * BLOCK + offs
            x = tl.load(base + cols, mask=cols < vocab, other=0.0).to(tl.float32)
            bmass = tl.where(bids == b, tl.sum(tl.where(x > low, x, 0.0)), bmass)
    else:
        for b0 in range(0, n_blocks, UNROLL):
            x = _tile(base, b0, vocab, BLOCK, UNROLL)
            bmass = _put(bmass, b0, tl.sum(tl.where(x > low, x, 0.0), axis=1), NB, UNROLL)
    return bmass


@triton.jit
def _test_pass(base, vocab, n_blocks, pivot0, pivot1, BLOCK: tl.constexpr, NB: tl.constexpr, UNROLL: tl.constexpr):
    """One pass testing a candidate: per-block masses of {x > pivot0} and {x > pivot1} and the
    counts of both sets."""
    bids = tl.arange(0, NB)
    s0 = tl.zeros([NB], dtype=tl.float32)
    s1 = tl.zeros([NB], dtype=tl.float32)
    c0 = tl.zeros([], dtype=tl.int32)
    c1 = tl.zeros([], dtype=tl.int32)
    if UNROLL == 1:
        offs = tl.arange(0, BLOCK)
        for b in range(0, n_blocks):
            cols = b * BLOCK + offs
            x = tl.load(base + cols, mask=cols < vocab, other=0.0).to(tl.float32)
            g0 = x > pivot0
            g1 = x > pivot1
            s0 = tl.where(bids == b, tl.sum(tl.where(g0, x, 0.0)), s0)
            s1 = tl.where(bids == b, tl.sum(tl.where(g1, x, 0.0)), s1)
            c0 += tl.sum(g0.to(tl.int32))
            c1 += tl.sum(g1.to(tl.int32))
    else:
        for b0 in range(0, n_blocks, UNROLL):
            x = _tile(base, b0, vocab, BLOCK, UNROLL)
            g0 = x > pivot0
            g1 = x > pivot1
            s0 = _put(s0, b0, tl.sum(tl.where(g0, x, 0.0), axis=1), NB, UNROLL)
            s1 = _put(s1, b0, tl.sum(tl.where(g1, x, 0.0), axis=1), NB, UNROLL)
            c0 += tl.sum(g0.to(tl.int32))
            c1 += tl.sum(g1.to(tl.int32))
    return s0, s1, c0, c1


@triton.jit
def sample_probs_kernel(
    out_ptr, probs_ptr, idx_ptr, k_arr_ptr, p_arr_ptr, seed_ptr, offset_ptr, ticket_ptr,
    n_out, vocab, stride_row, k_val, p_val, inc, has_indices, has_k_arr, has_p_arr,
    MODE: tl.constexpr,
    MAX_ROUNDS: tl.constexpr, BLOCK: tl.constexpr, NB: tl.constexpr, UNROLL: tl.constexpr = 1,
):
    """One program per output row. MODE: 0 plain, 1 top-p, 2 top-k, 3 joint top-k & top-p, 4 min-p
    (p_val / p_arr carry top_p or min_p). UNROLL blocks are loaded before their sums are reduced
    in the full passes (_mass_pass)."""
    pid = tl.program_id(0)
    seed = tl.load(seed_ptr)
    off = tl.load(offset_ptr)
    row = pid.to(tl.int64)
    if has_indices != 0:
        row = tl.load(idx_ptr + pid).to(tl.int64)
    base = probs_ptr + row * stride_row
    k = tl.zeros([], dtype=tl.int32) + k_val
    if has_k_arr != 0:
        k = tl.load(k_arr_ptr + row)
    k = tl.where((k <= 0) | (k > vocab), vocab, k)
    pp = tl.zeros([], dtype=tl.float32) + p_val
    if has_p_arr != 0:
        pp = tl.load(p_arr_ptr + row)
    n_blocks = tl.cdiv(vocab, BLOCK)
    offs = tl.arange(0, BLOCK)
    bids = tl.arange(0, NB)

    bmass, rmax = _mass_pass(base, vocab, n_blocks, BLOCK, NB, UNROLL)
    low = rmax * 0.0
    high = rmax
    q = tl.sum(bmass)
    thr = pp * rmax
    cand = pid * 0
    done = pid * 0
    r = pid * 0
    while (done == 0) & (r < MAX_ROUNDS):
        u = tl.rand(seed, off + pid + r.to(tl.int64) * 1099511627776) * q
        valid, idx, pc = _pick(base, vocab, bmass, u, low, 0.0, False, BLOCK, NB)
        cand = tl.where(valid, idx, cand)
        r += 1
        if MODE == 0:
            done = r * 0 + 1
        elif MODE == 4:
            if (pc >= thr) | (valid == 0):
                done = r * 0 + 1
            else:
                tb = thr.to(tl.int32, bitcast=True)
                low = tl.where(thr > 0.0, (tb - 1).to(tl.float32, bitcast=True), 0.0)
                bmass = _above_pass(base, vocab, n_blocks, low, BLOCK, NB, UNROLL)
                q = tl.sum(bmass)
        else:
            pivot0 = pc
            pivot1 = (pc + high) * 0.5
            s0, s1, c0, c1 = _test_pass(base, vocab, n_blocks, pivot0, pivot1, BLOCK, NB, UNROLL)
            a0 = tl.sum(s0)
            a1 = tl.sum(s1)
            if MODE == 1:
                ok0 = a0 < pp
                ok1 = a1 < pp
            elif MODE == 2:
                ok0 = c0 < k
                ok1 = c1 < k
            else:
                ok0 = (a0 < pp) & (c0 < k)
                ok1 = (a1 < pp) & (c1 < k)
            if ok0 | (valid == 0):
                done = r * 0 + 1
            elif ok1:
                low = pivot0
                high = pivot1
                bmass = s0
            else:
                low = pivot1
                bmass = s1
            q = tl.sum(bmass)
    tl.store(out_ptr + pid, cand.to(tl.int32))
    _advance_offset(offset_ptr, ticket_ptr, off, inc, n_out)


@triton.jit
def sample_logits_kernel(
    out_ptr, logits_ptr, idx_ptr, seed_ptr, offset_ptr, ticket_ptr,
    n_out, vocab, stride_row, inc, has_indices,
    BLOCK: tl.constexpr, NB: tl.constexpr,
):
    """Categorical draw from softmax(logits) without writing probabilities: one pass collects each
    block's max and sum of exp(x - block max); the block is chosen from the rescaled masses and the
    token inside it by a cumulative sum of exp(x - row max)."""
    pid = tl.program_id(0)
    seed = tl.load(seed_ptr)
    off = tl.load(offset_ptr)
    row = pid.to(tl.int64)
    if has_indices != 0:
        row = tl.load(idx_ptr + pid).to(tl.int64)
    base = logits_ptr + row * stride_row
    n_blocks = tl.cdiv(vocab, BLOCK)
    offs = tl.arange(0, BLOCK)
    bids = tl.arange(0, NB)
    bmax = tl.full([NB], float("-inf"), dtype=tl.float32)
    bsum = tl.zeros([NB], dtype=tl.float32)
    for b in range(0, n_blocks):
        cols = b * BLOCK + offs
        x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
        m = tl.max(x)
        e = tl.where(x > float("-inf"), tl.exp(x - tl.where(m > float("-inf"), m, 0.0)), 0.0)
        bmax = tl.where(bids == b, m, bmax)
        bsum = tl.where(bids == b, tl.sum(e), bsum)
    gmax = tl.max(bmax)
    shift = tl.where(gmax > float("-inf"), gmax, 0.0)
    w = tl.where(bmax > float("-inf"), bsum * tl.exp(bmax - shift), 0.0)
    u = tl.rand(seed, off + pid) * tl.sum(w)
    valid, idx, val = _pick(base, vocab, w, u, 0.0, shift, True, BLOCK, NB)
    tl.store(out_ptr + pid, tl.where(valid, idx, 0).to(tl.int32))
    _advance_offset(offset_ptr, ticket_ptr, off, inc, n_out)


@triton.jit
def softmax_kernel(
    out_ptr, x_ptr, t_arr_ptr, t_val, vocab, stride_x, stride_out, has_t_arr,
    BLOCK: tl.constexpr,
):
    """out = softmax(x / T) per row: online max/sum, then one write pass. -inf entries give 0."""
    row = tl.program_id(0).to(tl.int64)
    t = tl.zeros([], dtype=tl.float32) + t_val
    if has_t_arr != 0:
        t = tl.load(t_arr_ptr + row)
    inv_t = 1.0 / t
    offs = tl.arange(0, BLOCK)
    m = float("-inf")
    s = 0.0
    for start in range(0, vocab, BLOCK):
        cols = start + offs
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32) * inv_t
        m_new = tl.maximum(m, tl.max(x))
        safe = tl.where(m_new > float("-inf"), m_new, 0.0)
        s = s * tl.exp(m - safe) + tl.sum(tl.where(x > float("-inf"), tl.exp(x - safe), 0.0))
        m = m_new
    inv_s = 1.0 / s
    for start in range(0, vocab, BLOCK):
        cols = start + offs
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32) * inv_t
        y = tl.exp(x - m) * inv_s
        tl.store(out_ptr + row * stride_out + cols, y, mask=cols < vocab)


@triton.jit
def _fold_one(m_vec, s_vec, x):
    """Fold x into elementwise running (max m, sum of exp(. - m)) with one exp per element:
    exp(-|x - m|) is exp(x - m) when x <= m and the rescale factor exp(m - x) of the old sum when x
    is the new max. -inf entries add nothing (-inf - -inf is NaN, kept out by the where)."""
    d = x - m_vec
    e = tl.where(x > float("-inf"), tl.exp(-tl.abs(d)), 0.0)
    return tl.maximum(m_vec, x), tl.where(d > 0, s_vec * e + 1.0, s_vec + e)


@triton.jit
def _stats_chunk(x_row, cols, c1):
    return tl.load(x_row + cols, mask=cols < c1, other=float("-inf"), eviction_policy="evict_last")


@triton.jit
def _span_stats(x_row, c0, c1, inv_t, BLOCK: tl.constexpr, DEPTH: tl.constexpr = 1):
    """(max, sum exp(x/T - max)) of x_row[c0:c1] / T in BLOCK-wide steps: elementwise accumulators
    and the next DEPTH steps' loads in flight (DEPTH in 1..4), so the only cross-warp reduction is
    the last (a reduction per step left the loads idle: the read-only sweep ran at ~65% of the copy
    ceiling). Steps past c1 are fully masked loads: they move no bytes."""
    offs = tl.arange(0, BLOCK)
    STEP: tl.constexpr = BLOCK * DEPTH
    m_vec = tl.full([BLOCK], float("-inf"), tl.float32)
    s_vec = tl.zeros([BLOCK], tl.float32)
    x0 = _stats_chunk(x_row, c0 + offs, c1)
    if DEPTH > 1:
        x1 = _stats_chunk(x_row, c0 + BLOCK + offs, c1)
    if DEPTH > 2:
        x2 = _stats_chunk(x_row, c0 + 2 * BLOCK + offs, c1)
    if DEPTH > 3:
        x3 = _stats_chunk(x_row, c0 + 3 * BLOCK + offs, c1)
    for c in range(c0, c1, STEP):
        x = x0.to(tl.float32) * inv_t
        x0 = _stats_chunk(x_row, c + STEP + offs, c1)
        m_vec, s_vec = _fold_one(m_vec, s_vec, x)
        if DEPTH > 1:
            x = x1.to(tl.float32) * inv_t
            x1 = _stats_chunk(x_row, c + STEP + BLOCK + offs, c1)
            m_vec, s_vec = _fold_one(m_vec, s_vec, x)
        if DEPTH > 2:
            x = x2.to(tl.float32) * inv_t
            x2 = _stats_chunk(x_row, c + STEP + 2 * BLOCK + offs, c1)
            m_vec, s_vec = _fold_one(m_vec, s_vec, x)
        if DEPTH > 3:
            x = x3.to(tl.float32) * inv_t
            x3 = _stats_chunk(x_row, c + STEP + 3 * BLOCK + offs, c1)
            m_vec, s_vec = _fold_one(m_vec, s_vec, x)
    m = tl.max(m_vec)
    return m, tl.sum(tl.where(m_vec > float("-inf"), s_vec * tl.exp(m_vec - m), 0.0))


@triton.jit
def softmax_rows_kernel(
    out_ptr, x_ptr, t_arr_ptr, t_val, vocab, stride_x, stride_out, has_t_arr, rows,
    BLOCK: tl.constexpr, STATS_DEPTH: tl.constexpr = 1, WRITE_AHEAD: tl.constexpr = False,
):
    """out = softmax(x / T), grid (G,) with G <= rows: program p handles rows p, p + G, p + 2G, ...,
    one at a time, in two sweeps of BLOCK-wide chunks:

        (m, s) = (max, sum exp(x/T - max)) of the row   (DRAM; _span_stats, STATS_DEPTH chunks ahead)
        out = exp(x/T - m) / s                          (last chunk first: the row is re-read from L2)

    With G ~ the SM count the rows in flight (G x vocab logits) stay in L2 between the sweeps, so
    the logits cross DRAM once. WRITE_AHEAD loads the write sweep's next chunk before the current
    one is stored (the compiler does not move a load above a store that may alias it, so without
    it every chunk waits out an L2 round trip). x: [rows, vocab] (row stride stride_x), out:
    float32 [rows, vocab]; T is t_arr[row] when has_t_arr, else t_val."""
    offs = tl.arange(0, BLOCK)
    n_blk = tl.cdiv(vocab, BLOCK)
    for r in range(tl.program_id(0), rows, tl.num_programs(0)):
        row = tl.zeros([], tl.int64) + r
        t = tl.zeros([], dtype=tl.float32) + t_val
        if has_t_arr != 0:
            t = tl.load(t_arr_ptr + row)
        inv_t = 1.0 / t
        x_row = x_ptr + row * stride_x
        o_row = out_ptr + row * stride_out
        m, s = _span_stats(x_row, 0, vocab, inv_t, BLOCK, STATS_DEPTH)
        inv_s = 1.0 / s
        if WRITE_AHEAD:
            cols = (n_blk - 1) * BLOCK + offs
            x_next = tl.load(x_row + cols, mask=cols < vocab, other=float("-inf"), eviction_policy="evict_first")
            for i in range(0, n_blk):
                cols = (n_blk - 1 - i) * BLOCK + offs
                x = x_next
                # chunk -1 on the last step: a fully masked load (cols < 0 fails the >= 0 test)
                pcols = cols - BLOCK
                x_next = tl.load(x_row + pcols, mask=(pcols >= 0) & (pcols < vocab), other=float("-inf"),
                                 eviction_policy="evict_first")
                tl.store(o_row + cols, tl.exp(x.to(tl.float32) * inv_t - m) * inv_s, mask=cols < vocab,
                         eviction_policy="evict_first")
        else:
            for i in range(0, n_blk):
                cols = (n_blk - 1 - i) * BLOCK + offs
                inb = cols < vocab
                x = tl.load(x_row + cols, mask=inb, other=float("-inf"), eviction_policy="evict_first")
                tl.store(o_row + cols, tl.exp(x.to(tl.float32) * inv_t - m) * inv_s, mask=inb,
                         eviction_policy="evict_first")


@triton.jit
def top_p_renorm_kernel(
    out_ptr, x_ptr, arr_ptr, vocab, stride_x, stride_out, p_val, has_arr,
    MAX_ITERS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Top-p renormalisation. T = the smallest key whose strictly-larger mass is < p, found by
    bisection over int32 keys; each pass also finds m1, the smallest key above the lower bound, and
    stops as soon as m1 is in the nucleus (then T = m1). Keep key >= T, divide by the kept mass."""
    row = tl.program_id(0).to(tl.int64)
    xrow = x_ptr + row * stride_x
    offs = tl.arange(0, BLOCK)
    MAXK: tl.constexpr = 2147483647
    lo = tl.zeros([], dtype=tl.int64) - 2147483649
    hi = tl.zeros([], dtype=tl.int64) + 2147483648
    found = tl.zeros([], dtype=tl.int32)
    thr = tl.zeros([], dtype=tl.int64) - 2147483648
    p = tl.zeros([], dtype=tl.float32) + p_val
    if has_arr != 0:
        p = tl.load(arr_ptr + row)
    it = 0
    while (found == 0) & (it < MAX_ITERS):
        mid = lo + (hi - lo) // 2
        f_lo = 0.0
        f_mid = 0.0
        m1 = tl.zeros([], dtype=tl.int32) + MAXK
        mass1 = 0.0
        c1 = tl.zeros([], dtype=tl.int32)
        for start in range(0, vocab, BLOCK):
            cols = start + offs
            valid = cols < vocab
            x = tl.load(xrow + cols, mask=valid, other=0.0).to(tl.float32)
            key = _key(x)
            above = valid & (key > lo)
            f_lo += tl.sum(tl.where(above, x, 0.0))
            f_mid += tl.sum(tl.where(valid & (key > mid), x, 0.0))
            bm = tl.min(tl.where(above, key, MAXK))
            eq = above & (key == bm)
            bc = tl.sum(eq.to(tl.int32))
            bmass = tl.sum(tl.where(eq, x, 0.0))
            lt = bm < m1
            same = (bm == m1) & (bc > 0)
            c1 = tl.where(lt, bc, tl.where(same, c1 + bc, c1))
            mass1 = tl.where(lt, bmass, tl.where(same, mass1 + bmass, mass1))
            m1 = tl.where(lt, bm, m1)
        if c1 == 0:
            found = found + 1
            thr = thr * 0 + MAXK
        elif f_lo - mass1 < p:
            found = found + 1
            thr = m1.to(tl.int64)
        else:
            lo = tl.maximum(m1.to(tl.int64), tl.where(f_mid >= p, mid, lo))
            hi = tl.where(f_mid >= p, hi, tl.minimum(hi, mid))
        it += 1
    _write_filtered(out_ptr + row * stride_out, xrow, vocab, thr, False, BLOCK)


@triton.jit
def _write_filtered(orow, xrow, vocab, thr, IS_MASK: tl.constexpr, BLOCK: tl.constexpr):
    """Keep key >= thr: logits stay (others -inf), or probabilities renormalised (others 0)."""
    offs = tl.arange(0, BLOCK)
    if IS_MASK:
        for start in range(0, vocab, BLOCK):
            cols = start + offs
            valid = cols < vocab
            x = tl.load(xrow + cols, mask=valid, other=0.0).to(tl.float32)
            tl.store(orow + cols, tl.where(_key(x) >= thr, x, float("-inf")), mask=valid)
    else:
        kept = 0.0
        for start in range(0, vocab, BLOCK):
            cols = start + offs
            valid = cols < vocab
            x = tl.load(xrow + cols, mask=valid, other=0.0).to(tl.float32)
            kept += tl.sum(tl.where(valid & (_key(x) >= thr), x, 0.0))
        inv = 1.0 / kept
        for start in range(0, vocab, BLOCK):
            cols = start + offs
            valid = cols < vocab
            x = tl.load(xrow + cols, mask=valid, other=0.0).to(tl.float32)
            tl.store(orow + cols, tl.where(_key(x) >= thr, x * inv, 0.0), mask=valid)


@triton.jit
def _radix_digit(xrow, vocab, prefix, remaining, PMASK: tl.constexpr, SHIFT: tl.constexpr, BLOCK: tl.constexpr):
    """One radix-select step over the row: among keys whose high bits equal `prefix`, histogram
    the next 8-bit digit and pick the digit holding the `remaining`-th largest. Returns the
    extended prefix and the rank left inside the chosen digit."""
    offs = tl.arange(0, BLOCK)
    bins = tl.arange(0, 256)
    hist = tl.zeros([256], dtype=tl.int32)
    for start in range(0, vocab, BLOCK):
        cols = start + offs
        valid = cols < vocab
        x = tl.load(xrow + cols, mask=valid, other=0.0).to(tl.float32)
        u = _key(x) ^ -2147483648  # unsigned order in int32 bits
        match = valid & ((u & PMASK) == prefix)
        digit = (u >> SHIFT) & 255
        hist += tl.histogram(digit, 256, mask=match)
    suffix = tl.sum(hist) - tl.cumsum(hist, 0) + hist  # keys with digit >= b
    chosen = tl.max(tl.where(suffix >= remaining, bins, -1))
    above = tl.sum(tl.where(bins > chosen, hist, 0))
    return prefix | (chosen << SHIFT), remaining - above


@triton.jit
def top_k_filter_kernel(
    out_ptr, x_ptr, arr_ptr, vocab, stride_x, stride_out, k_val, has_arr,
    IS_MASK: tl.constexpr, BLOCK: tl.constexpr,
):
    """Top-k renormalisation / logits mask: the exact k-th largest key by a 4-pass radix select
    (8 bits a pass, histograms of the order-preserving key), ties kept; k <= 0 or k >= vocab keeps
    every token."""
    row = tl.program_id(0).to(tl.int64)
    xrow = x_ptr + row * stride_x
    k = tl.zeros([], dtype=tl.int32) + k_val
    if has_arr != 0:
        k = tl.load(arr_ptr + row)
    thr = tl.zeros([], dtype=tl.int32) + (-2147483648)
    if (k > 0) & (k < vocab):
        prefix = tl.zeros([], dtype=tl.int32)
        prefix, rem = _radix_digit(xrow, vocab, prefix, k, 0, 24, BLOCK)
        prefix, rem = _radix_digit(xrow, vocab, prefix, rem, -16777216, 16, BLOCK)
        prefix, rem = _radix_digit(xrow, vocab, prefix, rem, -65536, 8, BLOCK)
        prefix, rem = _radix_digit(xrow, vocab, prefix, rem, -256, 0, BLOCK)
        thr = prefix ^ -2147483648
    _write_filtered(out_ptr + row * stride_out, xrow, vocab, thr, IS_MASK, BLOCK)


@triton.jit
def chain_speculative_kernel(
    out_ptr, acc_ptr, emit_ptr, dprobs_ptr, dids_ptr, tprobs_ptr, seed_ptr, offset_ptr, ticket_ptr,
    batch, n_spec, vocab, s_d0, s_d1, s_i0, s_t0, s_t1, s_o0, inc,
    BLOCK: tl.constexpr,
):
    """One program per request: accept draft i when u_i * q_i(d_i) < p_i(d_i); at the first
    rejection resample from relu(p - q) (or p when that is all zero); if all accepted, a bonus token
    from p_n. Slots after the emitted token are -1. Counters are added to."""
    b = tl.program_id(0).to(tl.int64)
    seed = tl.load(seed_ptr)
    off = tl.load(offset_ptr)
    ctr = off + b * (n_spec + 1)
    pos = tl.zeros([], dtype=tl.int32) + n_spec
    acc = tl.zeros([], dtype=tl.int32)
    for i in range(0, n_spec):
        d = tl.load(dids_ptr + b * s_i0 + i).to(tl.int64)
        q = tl.load(dprobs_ptr + b * s_d0 + i * s_d1 + d).to(tl.float32)
        p = tl.load(tprobs_ptr + b * s_t0 + i * s_t1 + d).to(tl.float32)
        u = tl.rand(seed, ctr + i)
        ok = u * q < p
        acc += ok.to(tl.int32)
        pos = tl.where((pos == n_spec) & (ok == 0), i, pos)
    for i in range(0, n_spec + 1):
        d = tl.load(dids_ptr + b * s_i0 + i, mask=i < n_spec, other=0).to(tl.int32)
        tl.store(out_ptr + b * s_o0 + i, tl.where(i < pos, d, -1))
    offs = tl.arange(0, BLOCK)
    trow = tprobs_ptr + b * s_t0 + pos.to(tl.int64) * s_t1
    drow = dprobs_ptr + b * s_d0 + pos.to(tl.int64) * s_d1
    rejected = pos < n_spec
    tot_relu = 0.0
    tot_t = 0.0
    for start in range(0, vocab, BLOCK):
        cols = start + offs
        valid = cols < vocab
        t = tl.load(trow + cols, mask=valid, other=0.0).to(tl.float32)
        dq = tl.load(drow + cols, mask=valid & ((cols * 0 + pos) < n_spec), other=0.0).to(tl.float32)
        tot_relu += tl.sum(tl.maximum(t - dq, 0.0))
        tot_t += tl.sum(tl.maximum(t, 0.0))
    use_relu = rejected & (tot_relu > 0.0)
    tot = tl.where(use_relu, tot_relu, tot_t)
    u = tl.rand(seed, ctr + n_spec) * tot
    run = 0.0
    res = tl.zeros([], dtype=tl.int32) - 1
    last = tl.zeros([], dtype=tl.int32)
    for start in range(0, vocab, BLOCK):
        cols = start + offs
        valid = cols < vocab
        t = tl.load(trow + cols, mask=valid, other=0.0).to(tl.float32)
        dq = tl.load(drow + cols, mask=valid & ((cols * 0 + use_relu.to(tl.int32)) != 0), other=0.0).to(tl.float32)
        w = tl.where(valid, tl.maximum(t - dq, 0.0), 0.0)
        c = tl.cumsum(w, 0) + run
        hit = tl.min(tl.where((c > u) & (w > 0.0), cols, 2147483647))
        res = tl.where((res < 0) & (hit < 2147483647), hit, res)
        last = tl.maximum(last, tl.max(tl.where(w > 0.0, cols, -1)))
        run += tl.sum(w)
    res = tl.where(res < 0, last, res)
    tl.store(out_ptr + b * s_o0 + pos, res)
    tl.store(acc_ptr + b, tl.load(acc_ptr + b) + acc)
    tl.store(emit_ptr + b, tl.load(emit_ptr + b) + pos)
    _advance_offset(offset_ptr, ticket_ptr, off, inc, batch)
