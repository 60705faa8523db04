"""Triton RoPE kernel: every RoPE op (pos_ids / Llama-3.1 / cos-sin cache, optional fp8 output,
optional paged K output) is this one body with constexpr switches.

A program owns BLOCK_T tokens and a group of heads (grid axis 1 splits the q heads followed by the
k heads). It computes cos/sin for its tokens once ([BLOCK_T, BLOCK_HALF], fp32) and loops over its
heads, rotating the first rotary_dim dims of each
head. The remaining ("rest") dims — the pass-through tail of a partially rotated head, or the
separate *_nope tensor of the fused fp8 ops — are copied (scaled and fp8-encoded when OUT_FMT >=
0) in BLOCK_REST-wide chunks; rest_dim = 0 skips them (the in-place ops).

Pairing: INTERLEAVE=False rotates dim j with j + rotary_dim/2, INTERLEAVE=True dims (2j, 2j+1).
(x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), fp32 math, stored in the output dtype.

MODE 0: inv_freq = theta^(-2j/rotary_dim) / rope_scale.  MODE 1: Llama-3.1 frequency blend.
MODE 2: cos = cache[pos, j], sin = cache[pos, rotary_dim/2 + j] (fp32 cache).

PAGED_K: k outputs go to a paged cache: token t lands in page
kv_indices[kv_indptr[b] + p // page_size], slot p % page_size, where b = batch_indices[t] and
p = positions[t]; a token whose batch, page index or page id is out of range is not written.
"""
import triton
import triton.language as tl

from .fp8 import encode_fp8


@triton.jit
def _store(ptr, val, mask, scale, OUT_FMT: tl.constexpr):
    if OUT_FMT >= 0:
        tl.store(ptr, encode_fp8(val * scale, OUT_FMT), mask=mask)
    else:
        tl.store(ptr, val.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rotate_heads(
    x_ptr, o_ptr, xr_ptr, or_ptr, h_start, h_end, rest_dim,
    x_row, o_row, xr_row, or_row,
    s_xh, s_oh, s_xrh, s_orh,
    cos, sin, tmask, j, jmask, scale,
    HALF, INTERLEAVE: tl.constexpr, OUT_FMT: tl.constexpr, BLOCK_REST: tl.constexpr, EVICT: tl.constexpr = "",
):
    if INTERLEAVE:
        c1 = 2 * j
        c2 = 2 * j + 1
    else:
        c1 = j
        c2 = j + HALF
    mask = tmask[:, None] & jmask[None, :]
    for h in range(h_start, h_end):
        xb = x_ptr + x_row[:, None] + h * s_xh
        x1 = tl.load(xb + c1[None, :], mask=mask, other=0.0, eviction_policy=EVICT).to(tl.float32)
        x2 = tl.load(xb + c2[None, :], mask=mask, other=0.0, eviction_policy=EVICT).to(tl.float32)
        ob = o_ptr + o_row[:, None] + h * s_oh
        _store(ob + c1[None, :], x1 * cos - x2 * sin, mask, scale, OUT_FMT)
        _store(ob + c2[None, :], x2 * cos + x1 * sin, mask, scale, OUT_FMT)
        for start in range(0, rest_dim, BLOCK_REST):
            r = start + tl.arange(0, BLOCK_REST)
            rmask = tmask[:, None] & (r < rest_dim)[None, :]
            v = tl.load(xr_ptr + xr_row[:, None] + h * s_xrh + r[None, :], mask=rmask, other=0.0).to(tl.float32)
            _store(or_ptr + or_row[:, None] + h * s_orh + r[None, :], v, rmask, scale, OUT_FMT)


# Sizes are not specialised (one compile serves every token / head / page count); strides and the
# rotary half-width are, so 16-element alignment still vectorises the loads.
@triton.jit(do_not_specialize=["nnz", "n_q_heads", "n_k_heads", "heads_per_prog", "rest_dim", "num_pages",
                               "batch_size", "page_size"])
def rope_kernel(
    q_ptr, k_ptr, q_out_ptr, k_out_ptr,
    qr_ptr, kr_ptr, qr_out_ptr, kr_out_ptr,
    pos_ptr, cache_ptr,
    batch_ptr, kvpos_ptr, indices_ptr, indptr_ptr,
    nnz, n_q_heads, n_k_heads, heads_per_prog, half, rest_dim,
    num_pages, batch_size, page_size,
    s_qt, s_qh, s_kt, s_kh,
    s_qot, s_qoh, s_kop, s_kos, s_koh,
    s_qrt, s_qrh, s_krt, s_krh,
    s_qrot, s_qroh, s_krop, s_kros, s_kroh,
    s_cache,
    rope_scale_inv, log2_theta, low_freq_factor, high_freq_factor, old_context_len,
    q_scale, k_scale,
    MODE: tl.constexpr, INTERLEAVE: tl.constexpr, OUT_FMT: tl.constexpr, PAGED_K: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_HALF: tl.constexpr, BLOCK_REST: tl.constexpr, EVICT: tl.constexpr = "",
):
    pid = tl.program_id(0)
    # Axis 1 splits the q heads followed by the k heads into groups of heads_per_prog.
    h_lo = tl.program_id(1) * heads_per_prog
    h_hi = tl.minimum(h_lo + heads_per_prog, n_q_heads + n_k_heads)
    t = pid * BLOCK_T + tl.arange(0, BLOCK_T)
    tmask = t < nnz
    t64 = t.to(tl.int64)
    j = tl.arange(0, BLOCK_HALF)
    jmask = j < half
    pos = tl.load(pos_ptr + t64, mask=tmask, other=0)

    if MODE == 2:
        crow = pos.to(tl.int64) * s_cache
        cmask = tmask[:, None] & jmask[None, :]
        cos = tl.load(cache_ptr + crow[:, None] + j[None, :], mask=cmask, other=0.0).to(tl.float32)
        sin = tl.load(cache_ptr + crow[:, None] + half + j[None, :], mask=cmask, other=0.0).to(tl.float32)
    else:
        inv = tl.exp2(-(2.0 * j.to(tl.float32) / (2 * half)) * log2_theta)
        if MODE == 1:
            smooth = (old_context_len * inv * 0.15915494309189535 - low_freq_factor) / (high_freq_factor - low_freq_factor)
            smooth = tl.minimum(tl.maximum(smooth, 0.0), 1.0)
            inv = (1.0 - smooth) * inv * rope_scale_inv + smooth * inv
        else:
            inv = inv * rope_scale_inv
        ang = pos.to(tl.float32)[:, None] * inv[None, :]
        cos = tl.cos(ang)
        sin = tl.sin(ang)

    # q: dense [token, head, dim] in and out.
    _rotate_heads(
        q_ptr, q_out_ptr, qr_ptr, qr_out_ptr, h_lo, tl.minimum(h_hi, n_q_heads), rest_dim,
        t64 * s_qt, t64 * s_qot, t64 * s_qrt, t64 * s_qrot,
        s_qh, s_qoh, s_qrh, s_qroh,
        cos, sin, tmask, j, jmask, q_scale,
        half, INTERLEAVE, OUT_FMT, BLOCK_REST, EVICT,
    )

    # k: dense, or scattered into the paged cache.
    if PAGED_K:
        b = tl.load(batch_ptr + t64, mask=tmask, other=0)
        p = tl.load(kvpos_ptr + t64, mask=tmask, other=0)
        ok = tmask & (b >= 0) & (b < batch_size) & (p >= 0)
        b = tl.where(ok, b, 0)
        first = tl.load(indptr_ptr + b, mask=ok, other=0)
        last = tl.load(indptr_ptr + b + 1, mask=ok, other=0)
        slot_page = first + p // page_size
        ok = ok & (slot_page < last)
        page = tl.load(indices_ptr + slot_page, mask=ok, other=0)
        ok = ok & (page >= 0) & (page < num_pages)
        slot = (p % page_size).to(tl.int64)
        ko_row = page.to(tl.int64) * s_kop + slot * s_kos
        kro_row = page.to(tl.int64) * s_krop + slot * s_kros
        kmask = ok
    else:
        ko_row = t64 * s_kop
        kro_row = t64 * s_krop
        kmask = tmask
    _rotate_heads(
        k_ptr, k_out_ptr, kr_ptr, kr_out_ptr, tl.maximum(h_lo, n_q_heads) - n_q_heads, h_hi - n_q_heads, rest_dim,
        t64 * s_kt, ko_row, t64 * s_krt, kro_row,
        s_kh, s_koh, s_krh, s_kroh,
        cos, sin, kmask, j, jmask, k_scale,
        half, INTERLEAVE, OUT_FMT, BLOCK_REST, EVICT,
    )
