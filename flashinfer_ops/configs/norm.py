"""Launch table for the norm kernels: tile shape and warps from the row width, per arch family."""
import os
from typing import Tuple

import triton

from . import WARP_SIZE, LaunchConfig

# Rows up to this width stay in registers (one read, one write); wider rows take two passes.
# 32768 spills on gfx942/gfx950 (16 warps x 64 lanes hold 32 fp32 a lane): the gate caught it.
SINGLE_PASS_MAX_N = 16384
LOOP_BLOCK_N = 4096
# Smallest tile width; every power of two from here to SINGLE_PASS_MAX_N is a shipped variant.
MIN_BLOCK_N = 64
BLOCK_N_BUCKETS = tuple(1 << i for i in range(6, 15))


def norm_tile(hidden: int, family: str = "gfx942") -> Tuple[int, int, bool]:
    """(BLOCK_M, BLOCK_N, single_pass) for a row of `hidden` elements."""
    block_n = max(MIN_BLOCK_N, triton.next_power_of_2(max(hidden, 1)))
    if block_n > SINGLE_PASS_MAX_N:
        return 1, LOOP_BLOCK_N, False
    # Several short rows per program so each program still moves a few KiB.
    block_m = max(1, min(16, 2048 // block_n))
    if family == "sm90" and block_n == 8192:
        # H200 2026-12-04 (tune norm2, 16384x8192 bf16, evict_last): 2 rows a program 128.3 us vs
        # 1 row 133.7 us for rmsnorm (fused-add within 0.5%).
        block_m = 2
    return block_m, block_n, True


def norm_config(family: str, block_m: int, block_n: int) -> LaunchConfig:
    """About 16 elements (two 16-byte loads of bf16) per thread, 1..16 warps.

    With 8 elements a thread (one load), rmsnorm 4096x4096 bf16 reached only 56% of the copy
    ceiling on the H100 (run 3): an SM holds 2048 threads, so 32 KiB in flight per SM, too little
    to cover DRAM latency at 3 TB/s. Two loads a thread double it."""
    elems = block_m * block_n
    num_warps = max(1, min(16, elems // (WARP_SIZE[family] * 16)))
    return LaunchConfig(num_warps=num_warps, num_stages=1)


def norm_evict(family: str) -> str:
    """Eviction hint of the single-pass row loads; FLASHINFER_NORM_EVICT overrides (A/B runs).

    sm90: "evict_last". H200 2026-12-04 (`python -m benchmarks.tune --what norm2`, cold L2 after a
    writing flush): rmsnorm 16384x8192 133.3 -> 128.6 us, fused-add 266.9 -> 257.0 us, 4096x4096
    22.3 -> 20.4 us; "evict_first" was slower than no hint. AMD: no hint (not measured there)."""
    env = os.environ.get("FLASHINFER_NORM_EVICT")
    if env is not None:
        return env
    return "evict_last" if family == "sm90" else ""
