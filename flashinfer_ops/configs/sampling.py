"""Launch table for the sampling kernels.

One program walks a row in BLOCK-wide blocks. Large vocabularies use 16384-wide blocks and 16 warps
so a single program keeps 64 KiB of fp32 loads in flight (a row is latency-bound otherwise); small
vocabularies (<= 1024) use one 1024-wide block and 4 warps. The samplers keep one float per block
in a register vector of NB entries, so NB bounds the vocabulary (BLOCK * NB). Under the interpreter
the block is tiny so small test vocabularies still span several blocks.
"""
from typing import Tuple

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


def sampling_config(family: str, block: int) -> LaunchConfig:
    """Softmax / filters (BIG_BLOCK): 16 warps. Samplers (SAMPLER_BLOCK): 16 warps on sm90, 8 wave64s
    on AMD, whose 1024-lane workgroups cap a lane at 128 VGPRs (the samplers spilled there: the gate
    caught it). Small rows: 4 warps."""
    if block < SAMPLER_BLOCK:
        return LaunchConfig(num_warps=4, num_stages=1)
    if block == SAMPLER_BLOCK and family != "sm90":
        return LaunchConfig(num_warps=8, num_stages=1)
    return LaunchConfig(num_warps=16, num_stages=1)
