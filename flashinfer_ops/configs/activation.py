"""Launch table for the gated activations."""
import triton

from . import WARP_SIZE, LaunchConfig

BLOCK_D_MAX = 2048
BLOCK_D_BUCKETS = tuple(1 << i for i in range(4, 12))  # 16 .. 2048


def act_tile(d: int):
    """(BLOCK_M, BLOCK_D): up to 2048 columns a program, several rows when d is small."""
    block_d = min(BLOCK_D_MAX, max(16, triton.next_power_of_2(max(d, 1))))
    block_m = max(1, min(16, 2048 // block_d))
    return block_m, block_d


def act_config(family: str, block_m: int, block_d: int) -> LaunchConfig:
    elems = block_m * block_d
    return LaunchConfig(num_warps=max(1, min(8, elems // (WARP_SIZE[family] * 8))), num_stages=1)
