"""Triton kernels for packbits and segment_packbits."""
import triton
import triton.language as tl


@triton.jit
def _pack_bytes(x_ptr, first_elem, n_elems, byte_idx, byte_mask, LITTLE: tl.constexpr):
    """Pack x[first_elem + 8*byte_idx + j], j = 0..7 (elements >= n_elems count as 0)."""
    j = tl.arange(0, 8)
    elem = byte_idx[:, None].to(tl.int64) * 8 + j[None, :]
    m = byte_mask[:, None] & (elem < n_elems)
    bits = (tl.load(x_ptr + first_elem + elem, mask=m, other=0) != 0).to(tl.int32)
    if LITTLE:
        shift = j
    else:
        shift = 7 - j
    return tl.sum(bits << shift[None, :], axis=1)


@triton.jit
def packbits_kernel(out_ptr, x_ptr, n, LITTLE: tl.constexpr, BLOCK: tl.constexpr):
    """out[i] = sum_j bool(x[8i + j]) << (j or 7 - j); grid (cdiv(ceil(n/8), BLOCK),)."""
    byte_idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    n_bytes = (n + 7) // 8
    byte_mask = byte_idx < n_bytes
    packed = _pack_bytes(x_ptr, 0, n, byte_idx, byte_mask, LITTLE)
    tl.store(out_ptr + byte_idx, packed.to(tl.uint8), mask=byte_mask)


@triton.jit
def segment_packbits_kernel(out_ptr, x_ptr, in_indptr_ptr, out_indptr_ptr, LITTLE: tl.constexpr, BLOCK: tl.constexpr):
    """Segment s: x[in_indptr[s]:in_indptr[s+1]] -> out[out_indptr[s]:out_indptr[s+1]].

    Grid (num_segments,); each program walks its segment BLOCK bytes at a time."""
    seg = tl.program_id(0)
    x_start = tl.load(in_indptr_ptr + seg).to(tl.int64)
    x_len = tl.load(in_indptr_ptr + seg + 1).to(tl.int64) - x_start
    o_start = tl.load(out_indptr_ptr + seg).to(tl.int64)
    n_bytes = tl.load(out_indptr_ptr + seg + 1).to(tl.int64) - o_start
    for b0 in range(0, n_bytes, BLOCK):
        byte_idx = b0 + tl.arange(0, BLOCK)
        byte_mask = byte_idx < n_bytes
        packed = _pack_bytes(x_ptr, x_start, x_len, byte_idx, byte_mask, LITTLE)
        tl.store(out_ptr + o_start + byte_idx, packed.to(tl.uint8), mask=byte_mask)
