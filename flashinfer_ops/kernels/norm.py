"""Triton kernels for RMSNorm (plain, Gemma, fused residual add) and LayerNorm.

One kernel body serves all of them; constexpr flags pick the variant. Rows are addressed as
(outer, inner) pairs so 2-D [rows, hidden] and 3-D [batch, heads, hidden] inputs with arbitrary
row strides need no copy; only the hidden dim must be contiguous.
"""
import triton
import triton.language as tl


@triton.jit
def norm_kernel(
    out_ptr,
    in_ptr,
    res_ptr,
    w_ptr,
    b_ptr,
    n_rows,
    n_inner,
    hidden,
    s_out_o,
    s_out_i,
    s_in_o,
    s_in_i,
    s_res_o,
    s_res_i,
    eps,
    weight_offset,
    LAYERNORM: tl.constexpr,
    FUSED_ADD: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    EVICT: tl.constexpr = "",
):
    """RMSNorm: y = x * rsqrt(mean(x^2) + eps) * (w + weight_offset).
    LayerNorm: y = (x - mean) * rsqrt(var + eps) * w + b.
    FUSED_ADD: x = in + res (fp32) is first stored back to res; y overwrites out (== in).
    SINGLE_PASS keeps a whole row in registers (BLOCK_N >= hidden); otherwise two passes over
    BLOCK_N-wide chunks: the first only reads (the row statistics), the second reads the same
    chunks again (from L2 when the row fits there), recomputes x in fp32 and writes; so the
    fused-add variant normalises the unrounded sum in both forms, and nothing is written before
    the statistics are known. EVICT: the cache eviction hint of the row loads of the single pass
    and of the two-pass variant's first pass ("", "evict_last", "evict_first")."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < n_rows
    rows64 = rows.to(tl.int64)
    outer = rows64 // n_inner
    inner = rows64 % n_inner
    in_row = outer * s_in_o + inner * s_in_i
    out_row = outer * s_out_o + inner * s_out_i
    res_row = outer * s_res_o + inner * s_res_i

    if SINGLE_PASS:
        cols = tl.arange(0, BLOCK_N)
        col_mask = cols < hidden
        mask = row_mask[:, None] & col_mask[None, :]
        x = tl.load(in_ptr + in_row[:, None] + cols[None, :], mask=mask, other=0.0,
                    eviction_policy=EVICT).to(tl.float32)
        if FUSED_ADD:
            r = tl.load(res_ptr + res_row[:, None] + cols[None, :], mask=mask, other=0.0,
                        eviction_policy=EVICT).to(tl.float32)
            x = x + r
            tl.store(res_ptr + res_row[:, None] + cols[None, :], x.to(res_ptr.dtype.element_ty), mask=mask)
        w = tl.load(w_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
        if LAYERNORM:
            mean = tl.sum(x, axis=1) / hidden
            xc = tl.where(mask, x - mean[:, None], 0.0)
            var = tl.sum(xc * xc, axis=1) / hidden
            rstd = tl.rsqrt(var + eps)
            b = tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
            y = xc * rstd[:, None] * w[None, :] + b[None, :]
        else:
            rstd = tl.rsqrt(tl.sum(x * x, axis=1) / hidden + eps)
            y = x * rstd[:, None] * (w + weight_offset)[None, :]
        tl.store(out_ptr + out_row[:, None] + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        sum_x = tl.zeros([BLOCK_M], dtype=tl.float32)
        sum_xx = tl.zeros([BLOCK_M], dtype=tl.float32)
        for start in range(0, hidden, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            mask = row_mask[:, None] & (cols < hidden)[None, :]
            x = tl.load(in_ptr + in_row[:, None] + cols[None, :], mask=mask, other=0.0,
                        eviction_policy=EVICT).to(tl.float32)
            if FUSED_ADD:
                x += tl.load(res_ptr + res_row[:, None] + cols[None, :], mask=mask, other=0.0,
                             eviction_policy=EVICT).to(tl.float32)
            sum_x += tl.sum(x, axis=1)
            sum_xx += tl.sum(x * x, axis=1)
        if LAYERNORM:
            mean = sum_x / hidden
            rstd = tl.rsqrt(tl.maximum(sum_xx / hidden - mean * mean, 0.0) + eps)
        else:
            mean = sum_x * 0.0
            rstd = tl.rsqrt(sum_xx / hidden + eps)
        for start in range(0, hidden, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            col_mask = cols < hidden
            mask = row_mask[:, None] & col_mask[None, :]
            x = tl.load(in_ptr + in_row[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            if FUSED_ADD:
                x += tl.load(res_ptr + res_row[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                tl.store(res_ptr + res_row[:, None] + cols[None, :], x.to(res_ptr.dtype.element_ty), mask=mask)
            w = tl.load(w_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
            if LAYERNORM:
                b = tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
                y = (x - mean[:, None]) * rstd[:, None] * w[None, :] + b[None, :]
            else:
                y = x * rstd[:, None] * (w + weight_offset)[None, :]
            tl.store(out_ptr + out_row[:, None] + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
