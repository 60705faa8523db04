"""Launch table for decode attention, per arch family, plus the split-KV planning constants.

BLOCK_H = 16 query heads per program (the smallest tl.dot M on every target; larger GQA groups use
several head blocks). BLOCK_N tokens per KV tile: 64 keeps a K and a V tile (bf16, D <= 128) at
16 KiB each; D = 256 halves it so registers stay spill-free on gfx942/gfx950 (64 lanes, 4 waves).
"""
from .. import LaunchConfig

BLOCK_H = 16
HEAD_DIMS = (64, 128, 256)
MERGE_BLOCK_H = 16
# Split-KV planning: aim for at least PROGRAMS_PER_SM x SM-count programs, chunks of at least
# MIN_CHUNK_TOKENS (a multiple of every BLOCK_N) so each program streams a few tiles.
PROGRAMS_PER_SM = 4
MIN_CHUNK_TOKENS = 256
CHUNK_ALIGN = 64


def block_n(head_dim: int, fp8: bool) -> int:
    return 32 if head_dim >= 256 else 64


def decode_config(family: str, head_dim: int, fp8: bool) -> LaunchConfig:
    if family == "sm90":
        return LaunchConfig(num_warps=4, num_stages=3)
    # gfx942 / gfx950: stream pipelining of the next tile's global loads.
    return LaunchConfig(num_warps=4, num_stages=2)


def merge_config(family: str, head_dim: int) -> LaunchConfig:
    return LaunchConfig(num_warps=4, num_stages=1)
