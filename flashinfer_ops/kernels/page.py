"""Triton kernel that scatters appended K/V rows into a paged KV cache.

Grid (token blocks, heads). Token t of request b = batch_indices[t] at position p = positions[t]
goes to page kv_indices[kv_indptr[b] + p // page_size], slot p % page_size. The cache is
addressed through (page, slot, head) strides, so NHD [pages, P, H, D], HND [pages, H, P, D] and
the K/V halves of a 5-D cache are all the same code. A token whose batch index, page index
(past kv_indptr[b + 1]) or page id (outside [0, num_pages)) is out of range is skipped: the kernel
never writes outside the slots its indices name.

K and V may have different widths (MLA: ckv and kpe). OUT_FMT >= 0 scales by `scale` and encodes
fp8 (the fused RoPE+fp8 path's V); otherwise values are stored as they are (same dtype in and out,
fp8 caches as their uint8 bits).
"""
import triton
import triton.language as tl

from .fp8 import encode_fp8


@triton.jit
def _scatter(src_ptr, dst_ptr, src_row, dst_row, d, mask_t, scale, BLOCK_D: tl.constexpr, OUT_FMT: tl.constexpr):
    for start in range(0, d, BLOCK_D):
        c = start + tl.arange(0, BLOCK_D)
        m = mask_t[:, None] & (c < d)[None, :]
        x = tl.load(src_ptr + src_row[:, None] + c[None, :], mask=m)
        if OUT_FMT >= 0:
            tl.store(dst_ptr + dst_row[:, None] + c[None, :], encode_fp8(x.to(tl.float32) * scale, OUT_FMT), mask=m)
        else:
            tl.store(dst_ptr + dst_row[:, None] + c[None, :], x, mask=m)


@triton.jit(do_not_specialize=["nnz", "batch_size", "num_pages", "page_size"])
def append_paged_kernel(
    k_ptr, v_ptr, kc_ptr, vc_ptr,
    batch_ptr, pos_ptr, indices_ptr, indptr_ptr,
    nnz, batch_size, num_pages, page_size, d_k, d_v,
    s_kt, s_kh, s_vt, s_vh,
    s_kcp, s_kcs, s_kch, s_vcp, s_vcs, s_vch,
    scale,
    HAS_K: tl.constexpr, OUT_FMT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    t = pid * BLOCK_T + tl.arange(0, BLOCK_T)
    ok = t < nnz
    t64 = t.to(tl.int64)
    b = tl.load(batch_ptr + t64, mask=ok, other=0)
    p = tl.load(pos_ptr + t64, mask=ok, other=0)
    ok = ok & (b >= 0) & (b < batch_size) & (p >= 0)
    b = tl.where(ok, b, 0)
    first = tl.load(indptr_ptr + b, mask=ok, other=0)
    last = tl.load(indptr_ptr + b + 1, mask=ok, other=0)
    idx = first + p // page_size
    ok = ok & (idx < last)
    page = tl.load(indices_ptr + idx, mask=ok, other=0)
    ok = ok & (page >= 0) & (page < num_pages)
    page = page.to(tl.int64)
    slot = (p % page_size).to(tl.int64)
    if HAS_K:
        _scatter(k_ptr, kc_ptr, t64 * s_kt + h * s_kh, page * s_kcp + slot * s_kcs + h * s_kch, d_k, ok, scale,
                 BLOCK_D, OUT_FMT)
    _scatter(v_ptr, vc_ptr, t64 * s_vt + h * s_vh, page * s_vcp + slot * s_vcs + h * s_vch, d_v, ok, scale,
             BLOCK_D, OUT_FMT)
