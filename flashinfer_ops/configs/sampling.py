"""Launch table for the sampling kernels.

Rows are walked in BLOCK-wide blocks by one program; the samplers keep one float per block in a
register vector of NB entries, so NB bounds the vocabulary (BLOCK * NB). Under the interpreter the
block is tiny so small test vocabularies still span several blocks.
"""
from typing import Tuple

from . import LaunchConfig, interpreting

BLOCK = 4096
SPEC_BLOCK = 1024
NB_BUCKETS = (64, 256)
INTERPRET_BLOCK = 64


def row_block() -> int:
    return INTERPRET_BLOCK if interpreting() else BLOCK


def spec_block() -> int:
    return INTERPRET_BLOCK if interpreting() else SPEC_BLOCK


def sampler_tile(vocab: int) -> Tuple[int, int]:
    """(BLOCK, NB) for a sampler over `vocab` tokens; ValueError past the largest bucket."""
    block = row_block()
    n_blocks = -(-vocab // block)
    for nb in NB_BUCKETS:
        if n_blocks <= nb:
            return block, nb
    raise ValueError(f"vocab: at most {block * NB_BUCKETS[-1]} tokens are supported, got {vocab}")


def sampling_config(family: str, block: int) -> LaunchConfig:
    # 8 warps: 16 fp32 a lane on sm90 (32-wide warps), 8 on AMD (64-wide).
    return LaunchConfig(num_warps=8 if block >= 4096 else 4, num_stages=1)
