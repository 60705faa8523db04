"""Launch table for the prefill attention kernel: (BLOCK_M, BLOCK_N) tile and launch options per
arch family and head-dim pair. BLOCK_M counts packed (query, head-in-group) rows.

gfx942 has 64 KiB LDS: K and V tiles of BLOCK_N x D bf16 plus the Q tile must fit with the chosen
number of stages, and every D128 variant must keep occupancy >= 2 (the gate checks it).
gfx950 has 160 KiB LDS; it shares gfx942's tiles (one compiled variant per key). One stage on
both: Triton 3.5.1 spills the D128 tile on gfx950 with two. D192/D256 EXTRA variants run at
occupancy 1 (waves_per_eu=1 lets them use AGPRs instead of scratch). sm90 (H100) is the run-time test machine.
"""
import dataclasses
import functools
import os
from typing import Optional, Tuple


from .. import LaunchConfig, interpreting

# (head_dim_qk, head_dim_vo) pairs with a shipped kernel variant.
HEAD_DIMS = ((64, 64), (128, 128), (256, 256), (192, 128))


@dataclasses.dataclass(frozen=True)
class PrefillConfig:
    block_m: int
    block_n: int
    launch: LaunchConfig
    min_occupancy: int = 1


def _cfg(bm, bn, warps, stages, wpe=0, nonk=0, occ=1):
    return PrefillConfig(bm, bn, LaunchConfig(num_warps=warps, num_stages=stages, waves_per_eu=wpe,
                                              matrix_instr_nonkdim=nonk), occ)


_TABLE = {
    "sm90": {
        (64, 64): _cfg(128, 64, 4, 3),
        # H100 run s2r2 (ragged causal bf16 32/8 heads): 64x64 4 warps 474 / 443 / 297 TFLOP/s at
        # (1, 8192) / (4, 4096) / (16, 1024) vs 128x64 8 warps 463 / 408 / 275. Two programs an SM
        # fit (114.7 KB of shared memory; 210 registers, 255 persistent): plan() deals short pairs to
        # a persistent grid of two programs an SM (PERSISTENT_NOTE, deal_programs).
        (128, 128): _cfg(64, 64, 4, 3),
        (256, 256): _cfg(64, 64, 4, 2),
        (192, 128): _cfg(64, 64, 4, 2),
    },
    "gfx942": {
        (64, 64): _cfg(128, 64, 8, 1, wpe=2, nonk=16, occ=2),
        (128, 128): _cfg(128, 64, 8, 1, wpe=2, nonk=16, occ=2),
        (256, 256): _cfg(64, 16, 8, 1, nonk=16),
        (192, 128): _cfg(64, 16, 8, 1, nonk=16),
    },
    "gfx950": {
        (64, 64): _cfg(128, 64, 8, 1, wpe=2, nonk=16, occ=2),
        (128, 128): _cfg(128, 64, 8, 1, wpe=2, nonk=16, occ=2),
        (256, 256): _cfg(64, 16, 8, 1, nonk=16),
        (192, 128): _cfg(64, 16, 8, 1, nonk=16),
    },
}

# EXTRA variants (RoPE / ALiBi / soft cap / custom mask as runtime branches) need more registers:
# same BLOCK_M as the lean variant (plan() schedules with it before knowing forward() overrides),
# narrower BLOCK_N and/or more warps.
_EXTRA = {
    "sm90": {
        (64, 64): _cfg(128, 32, 8, 2),
        (128, 128): _cfg(64, 32, 4, 2),
        (256, 256): _cfg(64, 32, 4, 2),
        (192, 128): _cfg(64, 32, 4, 2),
    },
    "gfx942": {
        (64, 64): _cfg(128, 16, 8, 1, wpe=2, nonk=16, occ=2),
        (128, 128): _cfg(128, 16, 8, 1, wpe=2, nonk=16, occ=2),
        (256, 256): _cfg(64, 16, 4, 1, wpe=1, nonk=16),
        (192, 128): _cfg(64, 16, 4, 1, wpe=1, nonk=16),
    },
    "gfx950": {
        (64, 64): _cfg(128, 16, 8, 1, wpe=2, nonk=16, occ=2),
        (128, 128): _cfg(128, 16, 8, 1, wpe=2, nonk=16, occ=2),
        (256, 256): _cfg(64, 16, 4, 1, wpe=1, nonk=16),
        (192, 128): _cfg(64, 16, 4, 1, wpe=1, nonk=16),
    },
}

# Paged: whole tiles on sm90 (the paged kernel gathers K/V rows through the page table and favours
# tall tiles: H100 run s2r2, (4, 4096) page 16: 128x128 8 warps 272 TFLOP/s, 64x64 4 warps 210,
# 256x64 293 (not used: its EXTRA twin would need BLOCK_M 256 too)); BLOCK_N per family on AMD
# (64 spills under Triton 3.5.1).
# H200 2026-12-04 with PAGE_POW2 (`python -m benchmarks.tune --what prefill2`, page 16): 128x64 8 warps
# 3 stages 339 / 322 / 228 TFLOP/s at (1, 8192) / (4, 4096) / (16, 1024) vs 128x128: 340 / 310 / 191.
# Page ids: with the register prefetch (3 stages) the pipeliner issues tile j+2's page-id ld.global
# in the same iteration as tile j+2's cp.async, right before them (the SASS loop has 4 LDG whose
# results feed the LDGSTS addresses; the ragged loop has none); 5 stages without the prefetch turn
# the page-id load into a cp.async of its own two stages ahead (0 LDG in the loop). Timed on the H200
# 2026-12-04 (`python -m benchmarks.tune --what prefill2`, with SHARED_ROWS) the register prefetch at
# 3 stages stays ahead: 1387 / 1485 / 546 us at (1, 8192) / (4, 4096) / (16, 1024) vs 1416 / 1528 /
# 559 us (both vs 1601 / 1696 / 602 us before SHARED_ROWS).
_PAGED_TILE = {"sm90": {(128, 128): (_cfg(128, 64, 8, 3), _cfg(128, 32, 8, 2))}}
_PAGED_BLOCK_N = {"gfx942": {(128, 128): 32}, "gfx950": {(128, 128): 32}}

# fp8 K/V (decoded in registers) on AMD: the lean D64/D128 variants take BLOCK_N 32 (64 spills).
_FP8_BLOCK_N = {"gfx942": {(64, 64): 32, (128, 128): 32}, "gfx950": {(64, 64): 32, (128, 128): 32}}

_INTERPRET = _cfg(32, 16, 4, 1)


def prefetch_pages() -> bool:
    """Paged kernels load the next tile's page ids one iteration ahead in registers
    (PREFETCH_PAGES; measured ahead of letting the sm90 pipeliner copy them, see _PAGED_TILE);
    FLASHINFER_PREFILL_PREFETCH=0 turns it off (A/B, with FLASHINFER_PREFILL_TILE for the stages)."""
    return os.environ.get("FLASHINFER_PREFILL_PREFETCH", "1") != "0"


def shared_rows(page_size: int, k_strides, v_strides) -> bool:
    """Paged K and V rows addressed once (prefill_kernel SHARED_ROWS): same (page, row, head)
    strides and a 32-bit in-page offset; FLASHINFER_PREFILL_SHARED_ROWS=0 turns it off (A/B)."""
    return (tuple(k_strides[:3]) == tuple(v_strides[:3]) and max(page_size - 1, 0) * abs(k_strides[1]) < 2 ** 31
            and os.environ.get("FLASHINFER_PREFILL_SHARED_ROWS", "1") != "0")


def tma_enabled(family: str, paged: bool, fp8: bool, extra: bool, head_dim_qk: int, head_dim_vo: int) -> bool:
    """Dense lean 16-bit prefill on sm90 reads its unmasked K / V tiles through tensor descriptors
    (prefill_kernel TMA) where the head dims are the tile widths; the launcher also needs a
    16-byte-aligned 2-D view of K and V (launch/attention/prefill.py tma_view). H100 2026-12-06
    (`python -m benchmarks.tune --what prefill3`, causal bf16 32/8 heads D128, table tile 64x64,
    4 warps, 3 stages): ragged 1154 -> 1109 us at (1, 8192), 1232 -> 1184 at (4, 4096), 469.5 ->
    447.6 at (16, 1024); single 1206 -> 1169 at 8192. With descriptors the table tile stays best
    (128x64 / 8 warps 1234 / 1322 / 512 us, 128x128 / 8 warps / 2 stages 1353 / 1411 / 608).
    FLASHINFER_PREFILL_TMA=0 turns it off (A/B runs)."""
    return (family == "sm90" and not (paged or fp8 or extra) and not interpreting()
            and padded_dims(head_dim_qk, head_dim_vo) == (head_dim_qk, head_dim_vo)
            and os.environ.get("FLASHINFER_PREFILL_TMA", "1") != "0")


# Paged prefill on staged K / V (stage_paged_kv_kernel, then the dense kernel): rows per copy step,
# and the least number of times the schedule must read each staged K / V row for plan() to stage
# (the copy reads and writes every row once; the paged kernel pays its page-table arithmetic on
# every read). H100 2026-12-06 session 8 (`tune --what opt_in`, bf16 32/8 heads D128, page 16, 64-row
# tiles): staging won at (16, 1024), 32.5 reads a row (558 -> 502 us), and lost on chunked prefill
# of 8 x 256 new queries on 4096 cached tokens, 15.5 reads a row (377 -> 392 us; 64 / 32 queries,
# 4 / 2 reads: 107 -> 185, 104 -> 203 us); the threshold sits between.
STAGE_ROWS = int(os.environ.get("FLASHINFER_PREFILL_STAGE_ROWS", "64"))  # env: A/B runs (read at import)
STAGE_MIN_REUSE = 24
STAGE_LAUNCH = LaunchConfig(num_warps=4, num_stages=1)
STAGE_GROUPS = 1


def stage_enabled(family: str, fp8: bool, extra: bool, head_dim_qk: int, head_dim_vo: int,
                  copy_engine: bool = True) -> bool:
    """plan() of the paged prefill wrapper may stage K / V into its workspace: by default where the
    dense kernel would then read whole tiles through tensor descriptors (tma_enabled: sm90, 16-bit
    K / V, no extras, exact head dims). H100, 2026-12-06 session 8 (`python -m benchmarks.tune
    --what opt_in`): paged causal prefill 1383 -> 1126 us at (1, 8192), 1462 -> 1246 at (4, 4096),
    558 -> 502 at (16, 1024), outputs identical. Elsewhere (AMD, fp8 K / V, masks, RoPE, ...) the
    paged kernel stays: staging there is unmeasured. FLASHINFER_PREFILL_STAGE=0 / 1 forces it off /
    on everywhere (tests, A/B runs); =always also drops the reuse threshold (stage_min_reuse).
    copy_engine: the device has descriptor copies (has_tensor_copy_engine; False on the CPU)."""
    env = os.environ.get("FLASHINFER_PREFILL_STAGE")
    if env is not None:
        return env in ("1", "always")
    return copy_engine and tma_enabled(family, False, fp8, extra, head_dim_qk, head_dim_vo)


def stage_groups() -> int:
    """Request groups a staged paged prefill is pipelined in (plan() lays the schedule out as
    [groups, rows, WORK_WORDS]; the op copies group g + 1's K / V on a side stream while group g
    attends, and alternates the groups' dense launches between two streams so one group's tail
    overlaps the next group's start). 1: copy everything, then one dense launch.
    FLASHINFER_PREFILL_STAGE_GROUPS overrides (A/B runs)."""
    env = os.environ.get("FLASHINFER_PREFILL_STAGE_GROUPS")
    return max(1, int(env)) if env else STAGE_GROUPS


def stage_pdl(family: str) -> bool:
    """A one-group staged paged prefill may launch the dense kernel as a programmatic dependent of
    the copy (NVIDIA: the copy's programs call griddepcontrol.launch_dependents first, the dense
    programs griddepcontrol.wait before their first K / V read), so the dense launch and program
    start-up overlap the copy's tail instead of following it. H100, 2026-12-07 session 13
    (`python scripts/persistent_check.py`, bf16 32/8 heads D128, page 16, two passes in one
    process, call 1 then call 3): (1, 8192) 1172 / 1211 -> 1137 / 1142 us, then 1138 / 1117 ->
    1139 / 1114; (4, 4096) 1219 / 1248 -> 1190 / 1230, then 1237 / 1204 -> 1254 / 1253; (16, 1024)
    454 / 449 -> 446 / 448, then 449 / 443 -> 448 / 441: within the run-to-run spread, so off by
    default. FLASHINFER_PREFILL_STAGE_PDL=1 turns it on (sm90 only: AMD has no such launch)."""
    return family == "sm90" and os.environ.get("FLASHINFER_PREFILL_STAGE_PDL", "0") == "1"


def stage_min_reuse() -> int:
    """How many times the schedule must read each K / V row for plan() to stage (STAGE_MIN_REUSE;
    0 with FLASHINFER_PREFILL_STAGE=always, for measuring where staging starts to pay)."""
    return 0 if os.environ.get("FLASHINFER_PREFILL_STAGE", "") == "always" else STAGE_MIN_REUSE


def diag_in_loop(tma: bool) -> bool:
    """Causal-diagonal tiles inside the request run in the kernel's unmasked, pipelined loop
    (prefill_kernel DIAG_IN_LOOP): on by default on the descriptor path, where their bulk copies
    are then pipelined like the others (H100, 2026-12-06 session 8, `tune --what opt_in`: ragged
    causal 1106 -> 1063 us at (1, 8192), 1171 -> 1124 at (4, 4096), 454 -> 408 at (16, 1024)).
    FLASHINFER_PREFILL_DIAG_LOOP=0 / 1 forces it off / on for every path (the interpreter tests
    check the loop bounds and mask with it on)."""
    return os.environ.get("FLASHINFER_PREFILL_DIAG_LOOP", "1" if tma else "0") == "1"


# PERSISTENT_NOTE: at short causal sequences a (tile, kv head) pair is ~9.5 K / V tiles of work
# at (16, 1024), so its fixed cost (program launch, work-word and Q loads, pipeline fill, epilogue)
# weighs. H100 2026-12-07, bf16 32/8 heads D128, 64x64 tiles, 264 programs (two an SM):
# - session 12 (`python scripts/persistent_ab.py`): a stand-alone lean loop (causal only, no
#   edge tiles, no lse / v_scale) over heap-dealt pairs ran 380.8 us at (16, 1024) against 404.4
#   one pair a program; dealing statically in rounds lost 10-45%;
# - sessions 13-14: a queue counter (pairs claimed as programs start or finish them) lost 5-10%
#   at every shape (427-441 us at (16, 1024));
# - session 14 (`python scripts/persistent_check.py`, `python scripts/deal_ab.py`): prefill_kernel
#   PERSISTENT over plan()'s list-scheduled deal (deal_pairs) 391-399 us against 400-406 for the
#   2-D grid at (16, 1024), staged paged 439-443 against 447-451 (two to four calls); the same
#   kernel loses at the longer shapes (1144-1258 us against 1068-1220 at (4, 4096) / (1, 8192)).
#   The deal is not what the stand-alone loop gains on (it ran 376-379 us on either deal); its
#   code is: a lean kernel with the edge-tile path, lse and v_scale added ran 400-403 us, and
#   without the edge path 385 (NOTES.md session 14; branch s14-lean).
# - session 15 (LEAN_NOTE): the lean kernel with its last tile read shifted back (no edge path)
#   ran the dealt pairs at 384.7-387.2 us at (16, 1024) against 393.6-394.4 for prefill_kernel
#   PERSISTENT and 401.6-402.0 for the 2-D grid (outputs bit-identical); dealt at the longer
#   shapes it still lost 1-3% ((4, 4096) 1146.8-1159.3 against 1137.1-1141.1).
# So plan() deals only where pairs are short (DEAL_MAX_TILES).
DEAL_MAX_TILES = 16  # mean K / V tiles a live pair: (16, 1024) 9.5 (dealt), (4, 4096) ~33 (2-D grid)
DEAL_PER_SM = 2  # programs an SM: two fit at the sm90 D128 tile (114.7 KB shared, <= 255 registers)


def deal_grid(n_sms: int) -> int:
    """Programs of the persistent prefill grid (DEAL_PER_SM an SM): plan() deals the pairs to this
    many programs and the op launches as many."""
    return DEAL_PER_SM * n_sms


LEAN_HEAD_DIMS = (128,)


INPLACE_PAGE_SIZES = (16, 32, 64)  # a 64-token tile of whole pages (the Gluon kernel's BLOCK_N)


@functools.lru_cache(maxsize=None)
def gluon_hopper() -> bool:
    """This Triton ships the Gluon Hopper language the in-place paged kernel is written in."""
    from ...kernels.attention.prefill_paged_sm90 import HAVE_GLUON

    return HAVE_GLUON


# the in-place kernel's forms (kernels/attention/prefill_paged_sm90.py paged_inplace_kernel), and
# the one plan() takes by default where pairs are short (paged_inplace)
INPLACE_FORMS = ("plain", "ws", "ws_overlap")
INPLACE_DEFAULT_FORM = "ws"


def inplace_setting() -> Tuple[Optional[str], bool]:
    """(form, forced) from FLASHINFER_PREFILL_INPLACE: unset -> (INPLACE_DEFAULT_FORM, False),
    plan() deciding where; "0" -> (None, False), the staged copy / paged kernel only; "1" or a
    form of INPLACE_FORMS ("1" = "plain") -> (form, True), wherever paged_inplace allows it."""
    val = os.environ.get("FLASHINFER_PREFILL_INPLACE", "")
    if val == "":
        return INPLACE_DEFAULT_FORM, False
    if val == "0":
        return None, False
    form = "plain" if val == "1" else val
    if form not in INPLACE_FORMS:
        raise ValueError(f"FLASHINFER_PREFILL_INPLACE: expected 0, 1 or one of {INPLACE_FORMS}, got {val!r}")
    return form, True


def paged_inplace(family: str, fp8: bool, extra: bool, window_left: int, head_dim_qk: int, head_dim_vo: int,
                  page_size: int, graph: bool = False) -> bool:
    """Paged prefill may read K / V pages in place (kernels/attention/prefill_paged_sm90.py, Gluon)
    over plan()'s deal instead of staging a copy: on sm90 with Gluon, 16-bit K / V, mask none /
    causal, no window, RoPE, ALiBi or soft cap, D128 for both, pages of 16 / 32 / 64 tokens,
    outside CUDA-graph mode (the kernel needs a deal, which graph mode does not plan), unless
    FLASHINFER_PREFILL_INPLACE=0, staging is forced (FLASHINFER_PREFILL_STAGE=1 / always) or the
    deal is forced off (FLASHINFER_PREFILL_DEAL=0). Where this holds, plan() takes it by default
    only where it would deal the dense kernel (use_deal: short pairs), or everywhere when
    FLASHINFER_PREFILL_INPLACE names a form (inplace_setting).

    INPLACE_NOTE (H100, NOTES.md sessions 16-17, bf16 causal 32/8 heads D128 page 16): the plain
    form (one warpgroup issuing copies and MMAs) is correct but slow (584-610 against ~430 us
    staged at (16, 1024)): Triton's shared-memory barrier pass puts a CTA-wide bar.sync before each
    of a tile's 16 page copies. A copy warp of its own (ws) ran 423-427 us there with Q loaded by
    the warpgroup, 399-400 with Q copied by the copy warp too, 388-391 with FA3's order
    (ws_overlap); the benchmark row with ws as the default: 404.8 us = 0.732x cuDNN (staged:
    437.3 = 0.684x, session 16). Forced at (4, 4096) it was 2-3% slower than staged (call 1, Q
    loaded by the warpgroup), where the copy is a smaller share: hence short pairs only."""
    if inplace_setting()[0] is None:
        return False
    if os.environ.get("FLASHINFER_PREFILL_STAGE") in ("1", "always") or os.environ.get("FLASHINFER_PREFILL_DEAL") == "0":
        return False
    return (family == "sm90" and not (fp8 or extra or graph) and window_left < 0
            and head_dim_qk == head_dim_vo == 128 and page_size in INPLACE_PAGE_SIZES
            and not interpreting() and gluon_hopper())


def lean_persistent(family: str, paged: bool, fp8: bool, extra: bool, window_left: int, head_dim_qk: int,
                    head_dim_vo: int) -> bool:
    """Dealt pairs run prefill_persistent_kernel (one descriptor-fed loop, no feature branches)
    instead of prefill_kernel PERSISTENT where their features allow it: sm90 (and the
    interpreter), dense 16-bit K / V (ragged, or paged on staged K / V), no custom mask, RoPE,
    ALiBi, soft cap or window, head dim 128 for both (the sm90 builds at D64, a 128-row tile, and
    at D256 spill 8-56 and 208 bytes). FLASHINFER_PREFILL_LEAN=0 keeps prefill_kernel PERSISTENT (A/B runs).

    LEAN_NOTE, H100 2026-12-07 session 15 (`python scripts/persistent_check.py 0:0 -:0:0 -:0 1:0 -:1`,
    `python scripts/deal_ab.py`; bf16 32/8 heads D128 causal at (16, 1024)): ragged 384.7-386.0
    us dealt to the lean kernel, 393.6-394.2 to prefill_kernel PERSISTENT, 401.6-402.0 on the
    2-D grid; staged paged 432.9-436.9 / 438.1-445.6 / 445.3-451.4. The lean kernel's tile for
    requests shorter than a tile (255 registers against 230 without it) cost 0.1-2 us (A/B with
    it compiled out, same call)."""
    return (family == "sm90" and not (paged or fp8 or extra) and window_left < 0
            and head_dim_qk == head_dim_vo and head_dim_qk in LEAN_HEAD_DIMS
            and os.environ.get("FLASHINFER_PREFILL_LEAN", "1") != "0")


def use_deal(family: str, n_prog: int, n_pairs: int, mean_tiles: float, graph: bool, dense: bool,
             head_dims: Tuple[int, int]) -> bool:
    """plan() deals its (tile, kv head) pairs to the persistent grid (n_prog programs) instead of
    leaving them to the 2-D grid: by default for the dense kernel (ragged, or paged on staged K /
    V) at D128 on sm90 (the one case timed; DEAL_PER_SM programs of that tile fit an SM), outside
    CUDA-graph mode, where live pairs average at most DEAL_MAX_TILES K / V tiles and there are at
    least two a program (PERSISTENT_NOTE). FLASHINFER_PREFILL_DEAL=0 / 1 forces it off / on (on:
    every kernel and schedule but graph mode; tests, A/B runs). sm90 (and the interpreter, which
    takes the sm90 tables) only: on gfx942 the persistent form spills under Triton 3.5.1 (208
    bytes of scratch at D64), so the op runs the 2-D grid there whatever the deal (_prefill_launcher)."""
    env = os.environ.get("FLASHINFER_PREFILL_DEAL", "")
    if graph or env == "0" or n_pairs == 0 or family != "sm90":
        return False
    if env == "1":
        return True
    return dense and head_dims == (128, 128) and mean_tiles <= DEAL_MAX_TILES and n_pairs >= 2 * n_prog


def page_pow2(page_size: int) -> bool:
    """Use the shift-and-mask page addressing (prefill_kernel PAGE_POW2) for this page size;
    FLASHINFER_PREFILL_POW2=0 forces the division path (A/B runs)."""
    return page_size > 0 and page_size & (page_size - 1) == 0 and os.environ.get("FLASHINFER_PREFILL_POW2", "1") != "0"


def padded_dims(head_dim_qk: int, head_dim_vo: int) -> Tuple[int, int]:
    return 1 << (head_dim_qk - 1).bit_length(), 1 << (head_dim_vo - 1).bit_length()


def prefill_config(family: str, head_dim_qk: int, head_dim_vo: int, extra: bool = False,
                   fp8: bool = False, paged: bool = False) -> PrefillConfig:
    """Tile and launch options; FLASHINFER_PREFILL_TILE="BM,BN,WARPS,STAGES" overrides on sm90
    (benchmark experiments only)."""
    return _lookup(family, head_dim_qk, head_dim_vo, extra, fp8, paged, interpreting(),
                   os.environ.get("FLASHINFER_PREFILL_TILE", ""))


@functools.lru_cache(maxsize=None)
def _lookup(family, head_dim_qk, head_dim_vo, extra, fp8, paged, interp, tile_env) -> PrefillConfig:
    if interp:
        return _INTERPRET
    if family == "sm90" and tile_env:
        bm, bn, w, s = (int(x) for x in tile_env.split(","))
        return _cfg(bm, bn, w, s)
    key = (head_dim_qk, head_dim_vo)
    if paged and key in _PAGED_TILE.get(family, {}):
        return _PAGED_TILE[family][key][1 if extra else 0]
    if extra and key in _EXTRA[family]:
        return _EXTRA[family][key]
    cfg = _TABLE[family][key]
    if paged and key in _PAGED_BLOCK_N.get(family, {}):
        cfg = dataclasses.replace(cfg, block_n=_PAGED_BLOCK_N[family][key])
    if fp8 and key in _FP8_BLOCK_N.get(family, {}):
        cfg = dataclasses.replace(cfg, block_n=min(cfg.block_n, _FP8_BLOCK_N[family][key]))
    return cfg
