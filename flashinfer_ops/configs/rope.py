"""Launch tables for the RoPE and paged-append kernels (memory bound: ~16 bytes a thread a load)."""
import os
from typing import Tuple

import triton

from . import LaunchConfig

# Rotary half-widths are padded to one of these tiles (rotary_dim <= 256).
HALF_BUCKETS = (32, 64, 128)
REST_BLOCK = 64
# A program rotates BLOCK_T tokens x up to 8 heads, fewer when that leaves too few programs to
# cover DRAM latency. H100 (run s2r1, bf16 32/8 heads D128, cold L2): 4096 tokens with 8 heads a
# program (1280 programs) 37.3 us = 76.8% of the copy ceiling, with 2 (5120 programs) 35.3 us =
# 81.2%; 65536 tokens: 8 heads best (87.7%).
MAX_HEADS_PER_PROGRAM = 8
MIN_PROGRAMS = 4096
# Paged append: head-dim chunk widths.
APPEND_D_BUCKETS = (64, 128)
APPEND_BLOCK_T = 16


def rope_tile(half: int) -> Tuple[int, int]:
    """(BLOCK_T, BLOCK_HALF) for a rotary half-width."""
    block_half = max(HALF_BUCKETS[0], triton.next_power_of_2(max(half, 1)))
    if block_half > HALF_BUCKETS[-1]:
        raise ValueError(f"rotary_dim: at most {2 * HALF_BUCKETS[-1]} supported, got {2 * half}")
    return max(8, 1024 // block_half), block_half


def heads_per_program(nnz: int, n_heads: int, block_t: int) -> int:
    """Heads per program: the most (8, 4, 2) that still gives >= MIN_PROGRAMS programs."""
    token_blocks = -(-nnz // block_t)
    for hpp in (MAX_HEADS_PER_PROGRAM, 4):
        if token_blocks * -(-n_heads // hpp) >= MIN_PROGRAMS:
            return hpp
    return 2


def rope_config(family: str, block_t: int, block_half: int) -> LaunchConfig:
    return LaunchConfig(num_warps=max(1, min(8, block_t * block_half // 256)), num_stages=1)


def rope_evict(family: str) -> str:
    """Eviction hint of the rotated rows' loads; FLASHINFER_ROPE_EVICT overrides (A/B runs).

    sm90: "evict_first" (each row is read once, then overwritten). H200 2026-12-04 (`python -m
    benchmarks.tune --what rope2`, 4096 tokens in place, two repeats): 25.1 / 25.0 us = 81.0 / 81.3%
    of the copy ceiling vs 27.1 / 25.3 us without a hint; "evict_last" 27.6 us. AMD: no hint."""
    env = os.environ.get("FLASHINFER_ROPE_EVICT")
    if env is not None:
        return env
    return "evict_first" if family == "sm90" else ""


def append_block_d(d: int) -> int:
    return min(APPEND_D_BUCKETS[-1], max(APPEND_D_BUCKETS[0], triton.next_power_of_2(max(d, 1))))


def append_config(family: str, block_d: int) -> LaunchConfig:
    return LaunchConfig(num_warps=max(1, APPEND_BLOCK_T * block_d // 512), num_stages=1)
