"""Launch table for decode attention, per arch family, plus the split-KV planning constants.

BLOCK_H = 16 query heads per program (the smallest tl.dot M on every target; larger GQA groups use
several head blocks). BLOCK_N tokens per KV tile (see block_n): 64 keeps a K and a V tile (bf16,
D <= 128) at 16 KiB each; smaller where registers would spill on gfx942/gfx950.
"""
from .. import LaunchConfig

BLOCK_H = 16
HEAD_DIMS = (64, 128, 256)
MERGE_BLOCK_H = 16  # cascade merge_state*: heads per program
# Split-KV merge: partial states read per step ([MERGE_BLOCK_C, D] fp32 tile, one head a program).
# The old merge walked a request's chunks one at a time with 2 programs for batch 1: a
# 128-chunk request paid 128 dependent loads (most of decode batch 1 x 32768's 185 us on the H100).
MERGE_BLOCK_C = 32
# Split-KV planning: aim for at least PROGRAMS_PER_SM x SM-count programs, chunks of at least
# MIN_CHUNK_TOKENS (a multiple of every BLOCK_N) so each program streams a few tiles.
# H100 run 2026-11-25 (value 4): 512 programs reached 78% of the copy ceiling (batch 64, kv 4096),
# 1024 programs 96% (batch 128); hence 8 (1024 programs for H_kv = 8), not yet re-measured.
PROGRAMS_PER_SM = 8
MIN_CHUNK_TOKENS = 256
CHUNK_ALIGN = 64


def block_n(family: str, head_dim: int, fp8: bool, rope: bool) -> int:
    """KV tokens per tile. On AMD (64-lane waves, gathered 64-bit addresses per element) the tile
    shrinks with the head dim, fp8 decoding (fp32 intermediates) and RoPE (a rotated copy of K):
    this keeps every variant spill-free at >= 2 waves (1 for RoPE) per SIMD on Triton 3.5 and 3.9."""
    if family == "sm90":
        return 32 if head_dim >= 256 else 64
    if head_dim >= 256:
        return 16
    if head_dim >= 128 or fp8 or rope:
        return 32
    return 64


def min_waves(head_dim: int, fp8: bool, rope: bool) -> int:
    """Occupancy floor the AMD gate enforces (waves per SIMD)."""
    return 1 if rope else 2


def decode_config(family: str, head_dim: int, fp8: bool, rope: bool) -> LaunchConfig:
    if family == "sm90":
        return LaunchConfig(num_warps=4, num_stages=3)
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
