"""Triton kernel for the gated activations (SiLU / GELU / GELU-tanh and multiply)."""
import triton
import triton.language as tl

ACT_SILU = 0
ACT_GELU = 1
ACT_GELU_TANH = 2


@triton.jit
def act_and_mul_kernel(
    out_ptr,
    in_ptr,
    n_rows,
    d,
    s_in_row,
    s_out_row,
    ACT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """out[r, c] = act(in[r, c]) * in[r, d + c], math in fp32.

    Grid: (cdiv(n_rows, BLOCK_M), cdiv(d, BLOCK_D)). tanh is written through exp so the same
    source compiles for AMD and NVIDIA without vendor libdevice calls."""
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (rows < n_rows)[:, None] & (cols < d)[None, :]
    in_off = rows[:, None] * s_in_row + cols[None, :]
    a = tl.load(in_ptr + in_off, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(in_ptr + in_off + d, mask=mask, other=0.0).to(tl.float32)
    if ACT == 0:
        g = a / (1.0 + tl.exp(-a))
    elif ACT == 1:
        g = 0.5 * a * (1.0 + tl.math.erf(a * 0.7071067811865476))
    else:
        inner = 0.7978845608028654 * (a + 0.044715 * a * a * a)
        tanh = 1.0 - 2.0 / (tl.exp(2.0 * inner) + 1.0)
        g = 0.5 * a * (1.0 + tanh)
    tl.store(out_ptr + rows[:, None] * s_out_row + cols[None, :], (g * b).to(out_ptr.dtype.element_ty), mask=mask)
