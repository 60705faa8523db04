"""Triton kernel merging attention states (v normalised output, s base-2 LSE), spec §5.1.

Program (row, head block) folds the states of one row with the online base-2 merge: n_states
states along a stride (merge_states), or, with TWO, the two states (a, b) given as separate
tensors (merge_state, merge_state_in_place; the output may alias a: every element is read before
it is written by the same program).
"""
import triton
import triton.language as tl


@triton.jit
def _fold(m, l, acc, s, v):
    m_new = tl.maximum(m, s)
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m - m_safe)
    w = tl.exp2(s - m_safe)
    return m_new, l * alpha + w, acc * alpha[:, None] + w[:, None] * v


@triton.jit
def merge_states_kernel(
    vo_ptr, so_ptr, v_ptr, s_ptr, vb_ptr, sb_ptr, mask_ptr,
    n_states, num_heads, head_dim,
    s_vo_r, s_vo_h, s_so_r, s_v_r, s_v_n, s_v_h, s_s_r, s_s_n, s_vb_r, s_vb_h, s_sb_r,
    TWO: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """s tensors have a contiguous head dim (fp32 [seq, (n,) H] with stride 1 over H)."""
    r = tl.program_id(0)
    hb = tl.program_id(1)
    keep = True
    if HAS_MASK:
        keep = tl.load(mask_ptr + r) != 0
    if keep:
        heads = hb * BLOCK_H + tl.arange(0, BLOCK_H)
        offs_d = tl.arange(0, BLOCK_D)
        hmask = heads < num_heads
        m2 = hmask[:, None] & (offs_d < head_dim)[None, :]
        r64 = r.to(tl.int64)
        m = tl.full([BLOCK_H], float("-inf"), tl.float32)
        l = tl.zeros([BLOCK_H], tl.float32)
        acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
        if TWO:
            sa = tl.load(s_ptr + r64 * s_s_r + heads, mask=hmask, other=float("-inf"))
            va = tl.load(v_ptr + r64 * s_v_r + heads[:, None] * s_v_h + offs_d[None, :], mask=m2, other=0.0)
            sb = tl.load(sb_ptr + r64 * s_sb_r + heads, mask=hmask, other=float("-inf"))
            vb = tl.load(vb_ptr + r64 * s_vb_r + heads[:, None] * s_vb_h + offs_d[None, :], mask=m2, other=0.0)
            m, l, acc = _fold(m, l, acc, sa, va.to(tl.float32))
            m, l, acc = _fold(m, l, acc, sb, vb.to(tl.float32))
        else:
            for i in range(0, n_states):
                s = tl.load(s_ptr + r64 * s_s_r + i * s_s_n + heads, mask=hmask, other=float("-inf"))
                v = tl.load(v_ptr + r64 * s_v_r + i * s_v_n + heads[:, None] * s_v_h + offs_d[None, :], mask=m2,
                            other=0.0)
                m, l, acc = _fold(m, l, acc, s, v.to(tl.float32))
        valid = l > 0.0
        out = tl.where(valid[:, None], acc / tl.where(valid, l, 1.0)[:, None], 0.0)
        lse = tl.where(valid, m + tl.log2(tl.where(valid, l, 1.0)), float("-inf"))
        tl.store(vo_ptr + r64 * s_vo_r + heads[:, None] * s_vo_h + offs_d[None, :], out.to(vo_ptr.dtype.element_ty),
                 mask=m2)
        tl.store(so_ptr + r64 * s_so_r + heads, lse, mask=hmask)
