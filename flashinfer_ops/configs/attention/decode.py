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
    fills). sm90 bf16: 32-token tiles, two in flight (~38 KiB of shared memory with the page ids,
    116 registers): 4 a SM measured best (H200 2026-12-04: batch 1 x 32768 58.8 us at 4, 72-80 us
    at 3, 5 or 6; H100 2026-12-06: 3, 5, 6 slower at 1 x 32768, 16 x 4096 and 32 x 4096).
    sm90 fp8 (fp16 products, 128-token tiles, 210 registers: 2 a SM): planned for 2, batch 64 x
    8192 runs unsplit, 512 programs, 492 us vs 520 us split for 8 a SM (H100 2026-12-06,
    `python -m benchmarks.tune --what decode_fp8`)."""
    if family == "sm90":
        return 2 if fp8 else 4
    return PROGRAMS_PER_SM


def block_n(family: str, head_dim: int, fp8: bool, rope: bool) -> int:
    """KV tokens per tile. On AMD (64-lane waves, gathered 64-bit addresses per element) the tile
    shrinks with the head dim, fp8 decoding (fp32 intermediates) and RoPE (a rotated copy of K):
    this keeps every variant spill-free at >= 2 waves (1 for RoPE) per SIMD on Triton 3.5 and 3.9."""
    if family == "sm90":
        # H100 run s2r2 (batch 64 x 8192, one wave): bf16 32 -> 735 us, 64 -> 851 us. fp8 (Triton's
        # own conversion, pipelined through shared memory): H200 2026-12-04 batch 64 x 8192,
        # 128-token tiles 590 us vs 64: 639 us, 32: 679 us (register prefetch, 64: 776 us).
        if fp8 and head_dim < 256:
            return 128 if head_dim <= 128 else 64
        return 32
    if head_dim >= 256:
        return 16
    if head_dim >= 128 or fp8 or rope:
        return 32
    return 64


def prefetch(native_fp8: bool, rope: bool) -> bool:
    """Register double-buffering of K/V tiles (decode_kernel PREFETCH). Off by default since the
    page ids are loaded a tile ahead (pages_ahead): Triton's shared-memory pipeline then keeps two
    tiles in flight for fp8 too and was faster (H200 2026-12-04, batch 64 x 8192 e4m3: 590 us vs
    776 us). FLASHINFER_DECODE_PREFETCH=1 turns it on for natively converted fp8 (A/B runs)."""
    return native_fp8 and not rope and os.environ.get("FLASHINFER_DECODE_PREFETCH", "0") == "1"


def v_asm(native_fp8: bool, prefetch_on: bool) -> bool:
    """Convert a natively typed fp8 V tile in its loaded layout (decode_kernel V_ASM) rather than
    letting Triton convert it after the MMA operand gather, where V's token pairs were assembled a
    byte at a time (128 ld.shared.b8 a thread and tile; the sm90 PTX loop drops from 1189 to 713
    instructions, shared memory 72 -> 104 KiB, still 2 programs a SM). H100 2026-12-06 (`python -m
    benchmarks.tune --what decode_fp8b`, batch 64 x 8192, bf16 q, reading flush): e4m3 503.6 ->
    412.3 us cold, e5m2 498.8 -> 412.3 (bf16 cache 705.8: 1.40x -> 1.71x); 16 x 4096 77.6 -> 66.3.
    FLASHINFER_DECODE_V_ASM=0 turns it off (A/B runs)."""
    return native_fp8 and not prefetch_on and os.environ.get("FLASHINFER_DECODE_V_ASM", "1") != "0"


def pages_ahead(family: str, prefetch_on: bool) -> bool:
    """Load each tile's page ids one iteration early (decode_kernel PAGES_AHEAD). Without it the
    page-table load sits in the software pipeline ahead of the K/V copies, and Triton 3.6 (sm90,
    num_stages 3) then keeps a single K/V tile in flight per program; with it, two (TTGIR checked
    on the CPU: 1x32x128 vs 2x32x128 shared buffers). FLASHINFER_DECODE_PAGES_AHEAD=0 turns it off."""
    return not prefetch_on and os.environ.get("FLASHINFER_DECODE_PAGES_AHEAD", "1") != "0"


# Fused split-KV merge (decode_kernel FUSED_MERGE): the most chunks a request may have for plan() to
# fuse (the merging program walks them one a step; merge_kernel spreads a long request's chunks
# over one program a head, MERGE_BLOCK_C a step).
FUSED_MERGE_MAX_CHUNKS = 8


def fused_merge(family: str) -> bool:
    """plan() may merge split requests inside the decode kernel (a ticket counter per request and
    head block; the last program to finish merges) instead of launching merge_kernel: on sm90 by
    default (H100, 2026-12-06 session 8, `tune --what opt_in`: bf16 16 x 4096 104.4 -> 101.8 us
    cold, outputs within 2.5e-4). AMD keeps the merge kernel (cross-XCD ordering untested).
    FLASHINFER_DECODE_FUSED_MERGE=0 / 1 forces it off / on for every family (tests, A/B)."""
    return os.environ.get("FLASHINFER_DECODE_FUSED_MERGE", "1" if family == "sm90" else "0") == "1"


def min_waves(head_dim: int, fp8: bool, rope: bool) -> int:
    """Occupancy floor the AMD gate enforces (waves per SIMD)."""
    return 1 if rope else 2


def decode_config(family: str, head_dim: int, fp8: bool, rope: bool) -> LaunchConfig:
    if family == "sm90":
        # 3 stages = page ids + two K/V tiles in flight with pages_ahead (TTGIR checked)
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
