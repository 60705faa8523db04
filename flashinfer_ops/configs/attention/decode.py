"""Launch table for decode attention, per arch family, plus the split-KV planning constants.

BLOCK_H = 16 query heads per program (the smallest tl.dot M on every target; larger GQA groups use
several head blocks). BLOCK_N tokens per KV tile (see block_n): 64 keeps a K and a V tile (bf16,
D <= 128) at 16 KiB each; smaller where registers would spill on gfx942/gfx950.
"""
import os

from .. import LaunchConfig

BLOCK_H = 16
HEAD_DIMS = (64, 128, 256)
MERGE_BLOCK_H = 16  # cascade merge_state*: heads per program
# Split-KV merge: partial states read per step ([MERGE_BLOCK_C, D] fp32 tile, one head a program).
# The old merge walked a request's chunks one at a time with 2 programs for batch 1: a
# 128-chunk request paid 128 dependent loads (most of decode batch 1 x 32768's 185 us on the H100).
MERGE_BLOCK_C = 32
# Split-KV planning: a request is split only while the grid has fewer programs than one wave
# (SMs x resident_programs); chunks are sized so the grid stays within that wave (a second,
# partly filled wave cost 25%: H100 run s2r2, batch 16 x 4096, 640 programs on 528 slots 141.7 us,
# 512 programs 112.3 us), and are >= MIN_CHUNK_TOKENS (a multiple of every BLOCK_N).
PROGRAMS_PER_SM = 8  # AMD (not measured there)
MIN_CHUNK_TOKENS = 256
CHUNK_ALIGN = 64


def resident_programs(family: str, fp8: bool) -> int:
    """Decode programs one SM / CU runs at once with decode_config's tile (the wave the planner
    fills). sm90 bf16: 32-token tiles, 3 stages = 48 KiB of shared memory -> 4 a SM. sm90 fp8
    (converted in registers, latency-bound): more, smaller-footprint programs are faster (run s2r2:
    1536 programs 607 us vs 512 programs 897 us at batch 64 x 8192)."""
    if family == "sm90":
        return 8 if fp8 else 4
    return PROGRAMS_PER_SM


def block_n(family: str, head_dim: int, fp8: bool, rope: bool) -> int:
    """KV tokens per tile. On AMD (64-lane waves, gathered 64-bit addresses per element) the tile
    shrinks with the head dim, fp8 decoding (fp32 intermediates) and RoPE (a rotated copy of K):
    this keeps every variant spill-free at >= 2 waves (1 for RoPE) per SIMD on Triton 3.5 and 3.9."""
    if family == "sm90":
        # H100 run s2r2 (batch 64 x 8192, one wave): bf16 32 -> 735 us, 64 -> 851 us; fp8 64 best
        return 64 if fp8 and head_dim < 256 else 32
    if head_dim >= 256:
        return 16
    if head_dim >= 128 or fp8 or rope:
        return 32
    return 64


def prefetch(native_fp8: bool, rope: bool) -> bool:
    """Register double-buffering of K/V tiles (decode_kernel PREFETCH): for fp8 caches that Triton
    converts itself (sm90); FLASHINFER_DECODE_PREFETCH=0 turns it off (A/B experiments)."""
    return native_fp8 and not rope and os.environ.get("FLASHINFER_DECODE_PREFETCH", "1") != "0"


def min_waves(head_dim: int, fp8: bool, rope: bool) -> int:
    """Occupancy floor the AMD gate enforces (waves per SIMD)."""
    return 1 if rope else 2


def decode_config(family: str, head_dim: int, fp8: bool, rope: bool) -> LaunchConfig:
    if family == "sm90":
        return LaunchConfig(num_warps=4, num_stages=2 if fp8 else 3)
    # gfx942 / gfx950: stream-pipeline the next tile's global loads, except for RoPE (registers).
    return LaunchConfig(num_warps=4, num_stages=1 if rope else 2)


def merge_config(family: str, head_dim: int) -> LaunchConfig:
    return LaunchConfig(num_warps=4, num_stages=1)


# State merge (cascade merge_state*): head dims padded to a power of two, 16 .. 512.
MERGE_BLOCK_DS = (16, 32, 64, 128, 256, 512)


def merge_block_d(head_dim: int) -> int:
    bd = max(16, 1 << (max(1, head_dim) - 1).bit_length())
    if bd > MERGE_BLOCK_DS[-1]:
        raise ValueError(f"head_dim: expected <= {MERGE_BLOCK_DS[-1]}, got {head_dim}")
    return bd
