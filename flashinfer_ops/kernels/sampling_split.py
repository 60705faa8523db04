"""Vocabulary-split sampling kernels: S programs per row, program (c, row) owning the columns
[c*BLOCK, (c+1)*BLOCK), so a small batch still spreads each row over many compute units and every
program issues all of its loads at once (the one-program-per-row kernels in sampling.py walk a row
block by block and are latency-bound when rows are few).

Top-k-first sampling from logits (softmax(top_k_mask(x, k)) followed by top-p sampling), for a
scalar 0 < k < vocab with k <= CAP:

1. ``topk_radix_kernel`` x D (one launch per 8-bit digit; D = 2 for bf16/fp16 keys, 4 for fp32):
   the k-th largest order-preserving key of each row by radix select. Program (c, row) rebuilds the
   key prefix chosen so far from the row's finished digit histograms (identical in every program),
   histograms the next digit of its keys that match the prefix and adds the histogram into the
   row's int32 workspace with atomics (integer adds: order-independent, deterministic).
2. ``topk_compact_kernel``: with T the threshold key, A = {key > T} (|A| <= k - 1 < CAP) and the
   ties {key == T}. A program writes its A entries into the row's CAP-slot list (a range reserved
   with one atomic: the order of the ranges varies between runs, the set does not) packed as int64
   (key << 32 | 2^31 - 1 - column), and its tie count and first tie column at fixed slots.
3. ``topk_top_p_draw_kernel`` (one program per output row): w_i = exp(x_i - max) for A and
   n_T * w_T for the tie group (the least probable), all as int64 multiples of 2^-40, so every sum
   is exact and independent of the list's order. Top-p rule: keep v iff the mass of strictly more
   probable survivors is < p * Z (pairwise sums over the list, JB entries a step; the most probable
   always stays). One uniform u (Philox counter offset + output row, as the first round of the
   rejection samplers) picks by inverse CDF over the kept entries in descending (key, -column)
   order, then the tie group; a draw in the tie group takes its r-th member in column order
   (r = (u - kept A mass) // w_T), found from the per-chunk tie counts and first tie columns (a
   chunk scan only when that chunk holds several ties). The program of output row i < rows also
   zeroes row i's histograms and counter, so the persistent workspace is clean for the next call
   without a host sync (CUDA-graph safe); the last program to finish advances offset
   (sampling._advance_offset).

top_k_mask_logits / top_k_renorm_probs (per-row k allowed; k <= 0 or k >= vocab keeps the row):
the same radix launches, ``topk_kept_mass_kernel`` (renorm only: each chunk's kept mass), then
``topk_filter_write_kernel``, whose last program per row (a ticket on the row's counter) zeroes the
row's workspace.

Softmax (out = softmax(x / T)) in two launches: ``softmax_stats_kernel`` (grid: segments x rows)
writes each segment's max and sum of exp(x/T - max), accumulated elementwise with one exp per
element and one cross-warp reduction per program; ``softmax_write_kernel`` (one program per
BLOCK-wide chunk) combines the row's segment pairs in a fixed order (bitwise identical in every
program) and writes exp(x/T - M) / Z. The second launch walks the programs in reverse, so the
chunks read last by the first launch (still in L2) are read again first; the first launch's loads
ask L2 to keep the lines (evict_last), the second's loads and stores to drop them first (hints only:
ignored on AMD). (A one-launch form, whose programs keep their chunk in registers and wait for the
row's other programs on a counter, was slower on the H200: NOTES.md.)
"""
import triton
import triton.language as tl

from .sampling import _advance_offset, _key, _span_stats

COUNTER = tl.constexpr(1024)  # int32 slot of a workspace row after its 4 x 256 bins: counter or ticket


@triton.jit
def _ukey(x, KEYBITS: tl.constexpr):
    """Key whose unsigned order is the order of the values: 16-bit keys of bf16/fp16 bits in
    [0, 65535], or the 32 bits of the fp32 key (reinterpreted as unsigned)."""
    if KEYBITS == 16:
        b = x.to(tl.int16, bitcast=True).to(tl.int32)
        return tl.where(b < 0, b ^ 0x7FFF, b) + 32768
    else:
        return _key(x.to(tl.float32)) ^ -2147483648


@triton.jit
def _signed(u, KEYBITS: tl.constexpr):
    """The unsigned-order key as a signed int32 with the same order."""
    if KEYBITS == 16:
        return u - 32768
    else:
        return u ^ -2147483648


@triton.jit
def _select_digits(hist_row, k, N_DIGITS: tl.constexpr, KEYBITS: tl.constexpr):
    """Replay the radix select over the first N_DIGITS finished histograms of a row: the key prefix
    of the k-th largest key and its rank among the keys sharing that prefix."""
    bins = tl.arange(0, 256)
    prefix = tl.zeros([], dtype=tl.int32)
    rem = tl.zeros([], dtype=tl.int32) + k
    for e in tl.static_range(N_DIGITS):
        h = tl.load(hist_row + e * 256 + bins)
        suffix = tl.sum(h) - tl.cumsum(h, 0) + h  # keys with this digit >= b
        chosen = tl.max(tl.where(suffix >= rem, bins, -1))
        rem = rem - tl.sum(tl.where(bins > chosen, h, 0))
        prefix = prefix | (chosen << (KEYBITS - 8 * (e + 1)))
    return prefix, rem


@triton.jit
def _unpack_x(packed):
    """The float32 value of a packed survivor (key in the high 32 bits)."""
    sk = (packed >> 32).to(tl.int32)
    return tl.where(sk < 0, sk ^ 0x7FFFFFFF, sk).to(tl.float32, bitcast=True)


@triton.jit
def _fixed(w):
    """Weights in [0, 1] as int64 multiples of 2^-40: integer sums are exact, so every sum of the
    draw kernel is independent of the order in which the compaction filled the list."""
    return (w * 1099511627776.0).to(tl.int64)


@triton.jit
def _fixed_weights(drow, jj, n_a, shift):
    vj = jj < n_a
    x_j = _unpack_x(tl.load(drow + jj, mask=vj, other=0))
    return tl.where(vj, _fixed(tl.exp(x_j - shift)), 0)


@triton.jit
def _row_k(k_arr_ptr, row, k_val, has_k_arr):
    k = tl.zeros([], dtype=tl.int32) + k_val
    if has_k_arr != 0:
        k = tl.load(k_arr_ptr + row)
    return k


@triton.jit
def _threshold(hist_row, k, vocab, KEYBITS: tl.constexpr):
    """Signed key of the row's k-th largest value from its finished histograms; the smallest key
    (keep everything) when k <= 0 or k >= vocab."""
    thr_u, rem = _select_digits(hist_row, k, KEYBITS // 8, KEYBITS)
    return tl.where((k > 0) & (k < vocab), _signed(thr_u, KEYBITS), -2147483648)


@triton.jit
def _chunk_row(reverse):
    """(chunk, row) of a (S, rows) grid, in reverse launch order when reverse != 0."""
    chunk = tl.program_id(0)
    row = tl.program_id(1)
    if reverse != 0:
        chunk = tl.num_programs(0) - 1 - chunk
        row = tl.num_programs(1) - 1 - row
    return chunk, row.to(tl.int64)


@triton.jit
def topk_radix_kernel(
    hist_ptr, x_ptr, k_arr_ptr, vocab, stride_x, hist_stride, k_val, has_k_arr, reverse,
    DIGIT: tl.constexpr, KEYBITS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Grid (S, rows). hist[row, DIGIT, d] += #{columns of this chunk whose key matches the prefix
    chosen by digits < DIGIT and whose digit DIGIT is d}; nothing for a row whose k (k_val, or
    k_arr[row] when has_k_arr) keeps every token (k <= 0 or k >= vocab). reverse != 0 walks the
    programs in reverse (the launches alternate, so each starts on the chunks the previous one read
    last: with rows larger than L2 those are the ones still cached)."""
    chunk, row = _chunk_row(reverse)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    valid = cols < vocab
    x = tl.load(x_ptr + row * stride_x + cols, mask=valid, other=0.0, eviction_policy="evict_last")
    u = _ukey(x, KEYBITS)
    hist_row = hist_ptr + row * hist_stride
    SHIFT: tl.constexpr = KEYBITS - 8 * (DIGIT + 1)
    k_val = _row_k(k_arr_ptr, row, k_val, has_k_arr)
    match = valid & (k_val > 0) & (k_val < vocab)
    if DIGIT > 0:
        prefix, rem = _select_digits(hist_row, k_val, DIGIT, KEYBITS)
        match = match & ((u >> (SHIFT + 8)) == (prefix >> (SHIFT + 8)))
    d = (u >> SHIFT) & 255
    # 256 bins for every digit: Triton's histogram costs in proportion to the bin count (H200,
    # batch 64 x 128256 bf16: the first digit with each bin spread over 8 copies, 2048 bins, took
    # 283 us against 35 us for the second digit's 256 bins)
    h = tl.histogram(d, 256, mask=match)
    tl.atomic_add(hist_row + DIGIT * 256 + tl.arange(0, 256), h, mask=h > 0)


@triton.jit
def topk_compact_kernel(
    dense_ptr, meta_ptr, hist_ptr, x_ptr, vocab, stride_x, hist_stride, k_val, cap, reverse,
    SMAX: tl.constexpr, KEYBITS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Grid (S, rows). Writes this chunk's entries strictly above the k-th largest key into the
    row's dense list (dense[row, :cap], int64) and, in meta[row] (int32, 3*SMAX + 1 slots), its
    count of those entries, its count of ties and its first tie column; chunk 0 also stores the
    threshold value (fp32 bits) in the last slot. reverse: as topk_radix_kernel."""
    chunk, row = _chunk_row(reverse)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    valid = cols < vocab
    x = tl.load(x_ptr + row * stride_x + cols, mask=valid, other=0.0, eviction_policy="evict_first")
    hist_row = hist_ptr + row * hist_stride
    thr_u, rem = _select_digits(hist_row, k_val, KEYBITS // 8, KEYBITS)
    sk = _signed(_ukey(x, KEYBITS), KEYBITS)
    thr = _signed(thr_u, KEYBITS)
    above = valid & (sk > thr)
    tie = valid & (sk == thr)
    n_above = tl.sum(above.to(tl.int32))
    base = tl.atomic_add(hist_row + COUNTER, n_above, mask=n_above > 0)
    pos = base + tl.cumsum(above.to(tl.int32), 0) - 1
    packed = (_key(x.to(tl.float32)).to(tl.int64) << 32) | (2147483647 - cols).to(tl.int64)
    tl.store(dense_ptr + row * cap + pos, packed, mask=above & (pos < cap))
    meta_row = meta_ptr + row * (3 * SMAX + 1)
    tl.store(meta_row + chunk, n_above)
    tl.store(meta_row + SMAX + chunk, tl.sum(tie.to(tl.int32)))
    tl.store(meta_row + 2 * SMAX + chunk, tl.min(tl.where(tie, cols, 2147483647)))
    if KEYBITS == 16:
        b16 = tl.where(thr < 0, thr ^ 0x7FFF, thr).to(tl.int16)
        thr_x = b16.to(x_ptr.dtype.element_ty, bitcast=True).to(tl.float32)
    else:
        thr_x = tl.where(thr < 0, thr ^ 0x7FFFFFFF, thr).to(tl.float32, bitcast=True)
    tl.store(meta_row + 3 * SMAX, thr_x.to(tl.int32, bitcast=True), mask=chunk == 0)


@triton.jit
def topk_top_p_draw_kernel(
    out_ptr, dense_ptr, meta_ptr, hist_ptr, x_ptr, idx_ptr, p_arr_ptr, seed_ptr, offset_ptr, ticket_ptr,
    n_out, rows, n_chunks, chunk_size, vocab, stride_x, hist_stride, hist_used, p_val, inc, has_indices,
    has_p_arr,
    CAP: tl.constexpr, SMAX: tl.constexpr, SUB: tl.constexpr, JB: tl.constexpr,
):
    """Grid (max(n_out, rows),). Output row pid < n_out: one top-p draw from softmax over the row's
    top-k survivors (see the module docstring). pid < rows: zero row pid's workspace."""
    pid = tl.program_id(0)
    seed = tl.load(seed_ptr)
    off = tl.load(offset_ptr)
    if pid < n_out:
        row = pid.to(tl.int64)
        if has_indices != 0:
            row = tl.load(idx_ptr + pid).to(tl.int64)
        meta_row = meta_ptr + row * (3 * SMAX + 1)
        sids = tl.arange(0, SMAX)
        smask = sids < n_chunks
        n_a = tl.sum(tl.load(meta_row + sids, mask=smask, other=0))
        t = tl.load(meta_row + SMAX + sids, mask=smask, other=0)
        n_t = tl.sum(t)
        x_t = tl.load(meta_row + 3 * SMAX).to(tl.float32, bitcast=True)
        i = tl.arange(0, CAP)
        valid = i < n_a
        drow = dense_ptr + row * CAP
        p_i = tl.load(drow + i, mask=valid, other=0)
        x_i = _unpack_x(p_i)
        col = 2147483647 - (p_i & 2147483647).to(tl.int32)
        m = tl.where(n_a > 0, tl.max(tl.where(valid, x_i, float("-inf"))), x_t)
        shift = tl.where(m > float("-inf"), m, 0.0)
        w_i = tl.where(valid, _fixed(tl.exp(x_i - shift)), 0)
        w_t = _fixed(tl.exp(x_t - shift))
        z = tl.sum(w_i) + n_t.to(tl.int64) * w_t
        pp = tl.zeros([], dtype=tl.float32) + p_val
        if has_p_arr != 0:
            pp = tl.load(p_arr_ptr + row)
        pz = pp.to(tl.float64) * z.to(tl.float64)
        # big_i: mass of the strictly more probable survivors (never the tie group, the least
        # probable). The most probable entries always stay, so p <= 0 still draws a token.
        big = tl.zeros([CAP], dtype=tl.int64)
        for jb in range(0, n_a, JB):
            jj = jb + tl.arange(0, JB)
            w_j = _fixed_weights(drow, jj, n_a, shift)
            big += tl.sum(tl.where(w_j[None, :] > w_i[:, None], w_j[None, :], 0), axis=1)
        w_max = tl.max(w_i)
        thr_w = tl.min(tl.where(valid & ((big.to(tl.float64) < pz) | (w_i == w_max)), w_i, 9223372036854775807))
        keep = valid & (w_i >= thr_w)
        kept_a = tl.sum(tl.where(keep, w_i, 0))
        keep_t = (tl.sum(tl.where(w_i > w_t, w_i, 0)).to(tl.float64) < pz) | (n_a == 0)
        q = kept_a + tl.where(keep_t, n_t.to(tl.int64) * w_t, 0)
        u = (tl.rand(seed, off + pid) * q.to(tl.float32)).to(tl.int64)
        u = tl.minimum(u, tl.maximum(q - 1, 0))
        # Inverse CDF over the kept entries in descending (key, -column) order, then the ties:
        # excl_i = kept mass ordered before entry i.
        excl = tl.zeros([CAP], dtype=tl.int64)
        for jb in range(0, n_a, JB):
            jj = jb + tl.arange(0, JB)
            w_j = _fixed_weights(drow, jj, n_a, shift)
            p_j = tl.load(drow + jj, mask=jj < n_a, other=0)
            wk_j = tl.where(w_j >= thr_w, w_j, 0)
            excl += tl.sum(tl.where(p_j[None, :] > p_i[:, None], wk_j[None, :], 0), axis=1)
        hit = keep & (excl <= u) & (u < excl + w_i)
        has_hit = tl.sum(hit.to(tl.int32)) > 0
        last = tl.min(tl.where(keep, p_i, 9223372036854775807))
        pick = tl.where(has_hit, tl.max(tl.where(hit, p_i, -9223372036854775807)), last)
        tok = tl.sum(tl.where(valid & (p_i == pick), col, 0))
        in_tie = keep_t & (has_hit == 0) & ((u >= kept_a) | (n_a == 0))
        if in_tie:
            r = tl.where(w_t > 0, (u - kept_a) // tl.maximum(w_t, 1), 0)
            r = tl.minimum(tl.maximum(r, 0), n_t - 1).to(tl.int32)
            incl = tl.cumsum(t, 0)
            before = smask & (incl <= r)
            s_star = tl.sum(before.to(tl.int32))
            rr = r - tl.max(tl.where(before, incl, 0))
            tok = tl.load(meta_row + 2 * SMAX + s_star)
            if rr > 0:
                # the (rr+1)-th tie of chunk s_star, in column order
                key_t = _key(x_t)
                seen = rr * 0
                offs = tl.arange(0, SUB)
                for start in range(0, chunk_size, SUB):
                    cols = s_star * chunk_size + start + offs
                    inb = (cols < vocab) & (start + offs < chunk_size)
                    xs = tl.load(x_ptr + row * stride_x + cols, mask=inb, other=0.0).to(tl.float32)
                    is_t = inb & (_key(xs) == key_t)
                    cnt = seen + tl.cumsum(is_t.to(tl.int32), 0)
                    at = tl.min(tl.where(is_t & (cnt == rr + 1), cols, 2147483647))
                    tok = tl.where(at < 2147483647, at, tok)
                    seen += tl.sum(is_t.to(tl.int32))
        tl.store(out_ptr + pid, tok)
    if pid < rows:
        hz = tl.arange(0, 1024)
        hist_row = hist_ptr + pid.to(tl.int64) * hist_stride
        tl.store(hist_row + hz, hz * 0, mask=hz < hist_used)
        tl.store(hist_row + COUNTER, pid * 0)
    _advance_offset(offset_ptr, ticket_ptr, off, inc, tl.num_programs(0))


@triton.jit
def topk_kept_mass_kernel(
    mass_ptr, hist_ptr, x_ptr, k_arr_ptr, vocab, stride_x, hist_stride, k_val, has_k_arr, reverse,
    SMAX: tl.constexpr, KEYBITS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Grid (S, rows), after the radix launches: mass[row, c] = sum of chunk c's values whose key is
    >= the row's k-th largest (top_k_renorm_probs' denominator, summed per chunk)."""
    chunk, row = _chunk_row(reverse)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    valid = cols < vocab
    x = tl.load(x_ptr + row * stride_x + cols, mask=valid, other=0.0, eviction_policy="evict_last")
    thr = _threshold(hist_ptr + row * hist_stride, _row_k(k_arr_ptr, row, k_val, has_k_arr), vocab, KEYBITS)
    keep = valid & (_signed(_ukey(x, KEYBITS), KEYBITS) >= thr)
    tl.store(mass_ptr + row * SMAX + chunk, tl.sum(tl.where(keep, x.to(tl.float32), 0.0)))


@triton.jit
def topk_filter_write_kernel(
    out_ptr, mass_ptr, hist_ptr, x_ptr, k_arr_ptr, vocab, stride_x, stride_out, hist_stride, hist_used, k_val,
    has_k_arr, n_chunks, reverse,
    IS_MASK: tl.constexpr, SMAX: tl.constexpr, KEYBITS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Grid (S, rows), last launch of top_k_mask_logits (IS_MASK: keep x, others -inf) and
    top_k_renorm_probs (x / kept mass, others 0; the chunk masses summed in a fixed order). Keys
    >= the k-th largest are kept (ties kept). The last program of a row to finish (a ticket on the
    row's counter, taken after its histogram reads) zeroes the row's workspace."""
    chunk, row = _chunk_row(reverse)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    valid = cols < vocab
    x = tl.load(x_ptr + row * stride_x + cols, mask=valid, other=0.0, eviction_policy="evict_first")
    hist_row = hist_ptr + row * hist_stride
    thr = _threshold(hist_row, _row_k(k_arr_ptr, row, k_val, has_k_arr), vocab, KEYBITS)
    keep = _signed(_ukey(x, KEYBITS), KEYBITS) >= thr
    xf = x.to(tl.float32)
    if IS_MASK:
        y = tl.where(keep, xf, float("-inf"))
    else:
        sids = tl.arange(0, SMAX)
        kept = tl.sum(tl.load(mass_ptr + row * SMAX + sids, mask=sids < n_chunks, other=0.0))
        y = tl.where(keep, xf * (1.0 / kept), 0.0)
    tl.store(out_ptr + row * stride_out + cols, y, mask=valid)
    ticket = tl.atomic_add(hist_row + COUNTER, 1)
    if ticket == n_chunks - 1:
        hz = tl.arange(0, 1024)
        tl.store(hist_row + hz, hz * 0, mask=hz < hist_used)
        tl.store(hist_row + COUNTER, ticket * 0)


@triton.jit
def softmax_stats_kernel(
    ws_ptr, x_ptr, t_arr_ptr, t_val, vocab, stride_x, has_t_arr, seg_len,
    SMAX: tl.constexpr, BLOCK: tl.constexpr,
):
    """Grid (G, rows). Program (g, row) covers columns [g * seg_len, (g + 1) * seg_len) of x / T in
    BLOCK-wide steps (kernels/sampling.py _span_stats) and writes ws[row, 0, g] = max,
    ws[row, 1, g] = sum exp(x/T - max)."""
    seg = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    t = tl.zeros([], dtype=tl.float32) + t_val
    if has_t_arr != 0:
        t = tl.load(t_arr_ptr + row)
    inv_t = 1.0 / t
    c0 = seg * seg_len
    m, s = _span_stats(x_ptr + row * stride_x, c0, tl.minimum(c0 + seg_len, vocab), inv_t, BLOCK)
    tl.store(ws_ptr + row * (2 * SMAX) + seg, m)
    tl.store(ws_ptr + row * (2 * SMAX) + SMAX + seg, s)


@triton.jit
def softmax_write_kernel(
    out_ptr, ws_ptr, x_ptr, t_arr_ptr, t_val, vocab, stride_x, stride_out, has_t_arr, n_chunks, n_segs, rows,
    SMAX: tl.constexpr, BLOCK: tl.constexpr,
):
    """Grid (n_chunks * rows,), BLOCK-wide chunks in reverse (row, chunk) order. out = exp(x/T - M) / Z
    with the row's M = max of the n_segs segment maxima, Z = sum of the segment sums rescaled to M
    (the same fixed-order sum in every program of the row)."""
    lin = n_chunks * rows - 1 - tl.program_id(0)
    chunk = lin % n_chunks
    row = (lin // n_chunks).to(tl.int64)
    # the chunk's load is issued first, so it is in flight while the row statistics are combined
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    inb = cols < vocab
    x = tl.load(x_ptr + row * stride_x + cols, mask=inb, other=float("-inf"), eviction_policy="evict_first")
    t = tl.zeros([], dtype=tl.float32) + t_val
    if has_t_arr != 0:
        t = tl.load(t_arr_ptr + row)
    inv_t = 1.0 / t
    sids = tl.arange(0, SMAX)
    smask = sids < n_segs
    cm = tl.load(ws_ptr + row * (2 * SMAX) + sids, mask=smask, other=float("-inf"))
    cs = tl.load(ws_ptr + row * (2 * SMAX) + SMAX + sids, mask=smask, other=0.0)
    big_m = tl.max(cm)
    z = tl.sum(tl.where(cm > float("-inf"), cs * tl.exp(cm - big_m), 0.0))
    inv_z = 1.0 / z
    x = x.to(tl.float32) * inv_t
    # the output must not push the inputs still to be re-read out of L2
    tl.store(out_ptr + row * stride_out + cols, tl.exp(x - big_m) * inv_z, mask=inb, eviction_policy="evict_first")
