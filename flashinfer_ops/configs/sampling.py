"""Launch table for the sampling kernels.

One program walks a row in BLOCK-wide blocks. Large vocabularies use 16384-wide blocks and 16 warps
so a single program keeps 64 KiB of fp32 loads in flight (a row is latency-bound otherwise); small
vocabularies (<= 1024) use one 1024-wide block and 4 warps. The samplers keep one float per block
in a register vector of NB entries, so NB bounds the vocabulary (BLOCK * NB). Under the interpreter
the block is tiny so small test vocabularies still span several blocks.

Vocabulary-split kernels (kernels/sampling_split.py: softmax, top-k filters, top-k-first sampling
from logits): S = cdiv(vocab, BLOCK) programs per row with S <= SPLIT_SMAX; BLOCK is the widest of
SPLIT_BLOCKS that still gives SPLIT_PROGRAMS programs in all (batch 1 x vocab 128256: 1024-wide
chunks, 126 programs; batch >= 64: 8192-wide chunks). The sampler's top-k survivor list holds
CAP >= k entries (TOPK_CAPS buckets, k <= 256); larger k, k given per row, and k <= 0 or k >= vocab
take the composed path (mask -> softmax -> rejection sampling). Softmax over a batch that gives
every SM / CU two rows or more runs the row-persistent kernel instead (softmax_rows_grid).
FLASHINFER_SAMPLING_SPLIT=0 selects the previous kernels everywhere, including UNROLL=1 in the
rejection samplers (A/B switch, read on every call).
"""
import os
from typing import Optional, Tuple

from . import LaunchConfig, interpreting

BIG_BLOCK = 16384
SAMPLER_BLOCK = 8192  # the rejection samplers hold more live values: 16384 spilled on gfx942/gfx950
SMALL_BLOCK = 1024
SPEC_BLOCK = 1024
INTERPRET_BLOCK = 64
# NB buckets per block width: every (BLOCK, NB) pair below is a shipped variant.
NB_BUCKETS = {SAMPLER_BLOCK: (16, 128), SMALL_BLOCK: (2,), INTERPRET_BLOCK: (16, 64)}


def row_block(vocab: int) -> int:
    if interpreting():
        return INTERPRET_BLOCK
    return SMALL_BLOCK if vocab <= SMALL_BLOCK else BIG_BLOCK


def spec_block() -> int:
    return INTERPRET_BLOCK if interpreting() else SPEC_BLOCK


def sampler_tile(vocab: int) -> Tuple[int, int]:
    """(BLOCK, NB) for a sampler over `vocab` tokens; ValueError past the largest bucket."""
    block = row_block(vocab)
    if block == BIG_BLOCK:
        block = SAMPLER_BLOCK
    n_blocks = -(-vocab // block)
    for nb in NB_BUCKETS[block]:
        if n_blocks <= nb:
            return block, nb
    raise ValueError(f"vocab: at most {block * NB_BUCKETS[block][-1]} tokens are supported, got {vocab}")


def sampler_unroll(block: int) -> int:
    """Blocks per step of the rejection samplers' full passes (kernels/sampling.py _mass_pass):
    2 for the wide blocks, so a program has twice the loads in flight (the tail rows of a batch run
    their last rounds alone; gfx942: 146 VGPRs at 8 wave64s, no scratch); 1 under
    FLASHINFER_SAMPLING_SPLIT=0 and for the small-vocabulary block."""
    return 1 if block == SMALL_BLOCK or not split_enabled() else 2


def sampling_config(family: str, block: int) -> LaunchConfig:
    """Softmax / filters (BIG_BLOCK): 16 warps. Samplers (SAMPLER_BLOCK): 16 warps on sm90, 8 wave64s
    on AMD, whose 1024-lane workgroups cap a lane at 128 VGPRs (the samplers spilled there: the gate
    caught it). Small rows: 4 warps."""
    if block < SAMPLER_BLOCK:
        return LaunchConfig(num_warps=4, num_stages=1)
    if block == SAMPLER_BLOCK and family != "sm90":
        return LaunchConfig(num_warps=8, num_stages=1)
    return LaunchConfig(num_warps=16, num_stages=1)


SPLIT_BLOCKS = (1024, 2048, 4096, 8192)
SPLIT_SMAX = 128
SPLIT_PROGRAMS = 1024
INTERPRET_SPLIT_BLOCK = 32
TOPK_CAPS = (64, 256)
DRAW_SUB = 1024  # columns per step of the draw kernel's tie scan


def split_enabled() -> bool:
    return os.environ.get("FLASHINFER_SAMPLING_SPLIT", "1") != "0"


def split_block(rows: int, vocab: int) -> Optional[int]:
    """Chunk width of the vocabulary-split kernels for a [rows, vocab] input, or None when a row
    would need more than SPLIT_SMAX chunks of the widest block or rows exceed the grid's second
    dimension (65535)."""
    if rows > 65535:
        return None
    if interpreting():
        block = INTERPRET_SPLIT_BLOCK
        while -(-vocab // block) > SPLIT_SMAX:
            block *= 2
        return block
    if vocab > SPLIT_BLOCKS[-1] * SPLIT_SMAX:
        return None
    fits = [b for b in SPLIT_BLOCKS if -(-vocab // b) <= SPLIT_SMAX]
    for b in reversed(fits):
        if rows * -(-vocab // b) >= SPLIT_PROGRAMS:
            return b
    return fits[0]


# Softmax statistics pass (kernels/sampling_split.py softmax_stats_kernel): SOFTMAX_STATS_BLOCK
# columns a step, segments of 1..16 steps a program; the longest segment that still gives
# SOFTMAX_STATS_PROGRAMS programs in all (at most SPLIT_SMAX segments a row).
SOFTMAX_STATS_BLOCK = 2048
SOFTMAX_STATS_PROGRAMS = 1024
SOFTMAX_SEG_STEPS = (16, 8, 4, 2, 1)


def softmax_stats_tile(rows: int, vocab: int) -> Tuple[int, int]:
    """(BLOCK, seg_len) of the softmax statistics pass for a [rows, vocab] input (vocab <=
    SPLIT_BLOCKS[-1] * SPLIT_SMAX, which split_block already requires)."""
    if interpreting():
        # two-step segments, so the small test vocabularies run the loop and a partial segment
        block = INTERPRET_SPLIT_BLOCK
        while -(-vocab // (2 * block)) > SPLIT_SMAX:
            block *= 2
        return block, 2 * block
    block = SOFTMAX_STATS_BLOCK
    fits = [k for k in SOFTMAX_SEG_STEPS if -(-vocab // (k * block)) <= SPLIT_SMAX]
    for k in fits:
        if rows * -(-vocab // (k * block)) >= SOFTMAX_STATS_PROGRAMS:
            return block, k * block
    return block, fits[-1] * block


# Row-persistent softmax (kernels/sampling.py softmax_rows_kernel): used when every program gets at
# least two rows and the programs still cover ~all SMs / CUs (batch 256 on the H100's 132 SMs: 128
# programs of 2 rows). BLOCK columns a step: sm90 4 a thread (32 warps: one program a SM) with four
# steps of the statistics sweep in flight and the write sweep one step ahead; AMD 8 a lane (16
# wave64s, the 1024-lane maximum; 16384 columns spilled there, at 8 or 16 wave64s).
# H100 2026-12-06 (`python -m benchmarks.tune --what softmax2`, 256 x 128256 bf16, reading flush,
# copy ceiling 3.032 TB/s), cold us (BLOCK, warps, depth, write-ahead): (16384, 32, 1, no) 87.5
# (the table before); (16384, 32, 2-3, *) 93-114 (spills); (8192, 32, 1..4, no) 88.9 / 85.9 / 85.9
# / 84.3, with write-ahead 85.9 / 81.9 / 82.5 / 81.2; (8192, 16, 2 / 4, yes) 83.9 / 88.1;
# (4096, 32, 4, yes) 79.0 = 82.2% of the ceiling; (4096, 16, 4, yes) 92.5. Same bytes: fill of
# the fp32 output alone 41.9 us, bf16 -> fp32 copy 101.4 us. AMD keeps the one-step form (not
# measured there).
SOFTMAX_ROWS_BLOCK = {"sm90": 4096, "gfx942": 8192, "gfx950": 8192}
SOFTMAX_ROWS_MIN_FILL = 0.9


def softmax_rows_grid(rows: int, vocab: int, n_units: int) -> Optional[int]:
    """Programs of the row-persistent softmax for [rows, vocab] on n_units SMs / CUs, or None where
    the vocabulary-split form is used instead (fewer than two rows a program, or too few programs
    to cover the GPU). Under the interpreter: two rows a program from 4 rows up, so the CPU tests
    run this kernel too (smaller batches keep the split form's coverage)."""
    if interpreting():
        return -(-rows // 2) if rows >= 4 else None
    if vocab <= SMALL_BLOCK:
        return None
    per_prog = -(-rows // n_units)
    grid = -(-rows // per_prog)
    if per_prog < 2 or grid < SOFTMAX_ROWS_MIN_FILL * n_units:
        return None
    return grid


# (STATS_DEPTH, WRITE_AHEAD) of softmax_rows_kernel: steps of the statistics sweep in flight and
# the write sweep's one-step prefetch (measurements above SOFTMAX_ROWS_BLOCK).
SOFTMAX_ROWS_PIPE = {"sm90": (4, True), "gfx942": (1, False), "gfx950": (1, False)}


def softmax_rows_pipe(family: str) -> Tuple[int, bool]:
    return SOFTMAX_ROWS_PIPE[family]


def softmax_rows_config(family: str) -> LaunchConfig:
    return LaunchConfig(num_warps=32 if family == "sm90" else 16, num_stages=1)


def softmax_rows_block(family: str) -> int:
    return INTERPRET_BLOCK if interpreting() else SOFTMAX_ROWS_BLOCK[family]


def topk_cap(k: int) -> Optional[int]:
    for cap in TOPK_CAPS:
        if k <= cap:
            return cap
    return None


def split_config(family: str, block: int) -> LaunchConfig:
    """One chunk per program, all loads issued at once: 16 columns per thread (sm90: warps of 32,
    AMD: wave64s; 16 wave64s cap a lane at 128 VGPRs and the compaction spilled there), at least
    4 warps."""
    per_warp = 512 if family == "sm90" else 1024
    return LaunchConfig(num_warps=max(4, block // per_warp), num_stages=1)


def draw_jb(cap: int) -> int:
    """Survivors per step of the draw kernel's pairwise sums: a [cap, JB] tile of 2048 values (4096
    int64 needed 254 registers a thread on sm90)."""
    return max(1, 2048 // cap)


def draw_config(family: str) -> LaunchConfig:
    return LaunchConfig(num_warps=4, num_stages=1)
