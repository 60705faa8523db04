"""Launch-table experiments on the GPU: time each candidate setting of a kernel family with the
same method as the benchmarks and print one JSON line per setting (also appended to --out).

    python -m benchmarks.tune --what flush,norm,rope,decode,prefill [--out tune.jsonl]

This is how the shipped sm90 tables were chosen (NOTES.md records each run). Settings are applied
by replacing the launch-table entries the launchers read at call time, so the same public API
(flashinfer.*) is timed as in the benchmarks. Nothing here is used by the library.
"""
from __future__ import annotations

import argparse
import json
import os
import traceback
from typing import Callable, List

import torch

from . import common
from .common import copy_ceiling_tbps, time_device_us

OUT: List[str] = []


def emit(**row):
    line = json.dumps(row)
    print(line, flush=True)
    if OUT:
        with open(OUT[0], "a") as f:
            f.write(line + "\n")


def guarded(label: str, fn: Callable[[], None]):
    try:
        fn()
    except Exception as e:  # one bad setting must not end the sweep
        emit(section=label, error=f"{type(e).__name__}: {str(e)[:300]}")
        traceback.print_exc()


def _pct(nbytes, us, ceiling):
    return round(100 * nbytes / (us * 1e-6) / 1e12 / ceiling, 1)


# ---- L2 flush method --------------------------------------------------------------------------

def sweep_flush(ceiling):
    """Cold timings under the writing flush (dirty L2) and the reading flush (clean L2), alternated
    twice: plain copies of 64-268 MiB and the quick benchmark rows of norm, rope and decode (the
    rows whose figures sat near a same-size copy's cold level). Percentages are against `ceiling`."""
    from . import attention_decode, norm, rope

    keep = (common.FLUSH_MODE, attention_decode.QUICK_SHAPES)
    attention_decode.QUICK_SHAPES = [(1, 32768), (16, 4096)]
    try:
        for rnd, mode in enumerate(("write", "read", "write", "read")):
            common.FLUSH_MODE = mode
            for mib in (64, 84, 134, 268):
                a = torch.empty(mib << 19, dtype=torch.uint8, device="cuda").random_()
                b = torch.empty_like(a)
                us = time_device_us([lambda: b.copy_(a)])
                emit(section="flush", mode=mode, rnd=rnd, op=f"copy {mib} MiB", us=round(us, 2),
                     pct=_pct(2 * a.numel(), us, ceiling))
                del a, b
            for mod in (norm, rope, attention_decode):
                for r in mod.run(quick=True):
                    emit(section="flush", mode=mode, rnd=rnd, op=r["op"], shape=r["shape"], kv=r.get("kv_dtype"),
                         us=r["us"], pct=_pct(r["bytes"], r["us"], ceiling) if r["bytes"] else None,
                         peer_us=r.get("peer_us"), ratio=r.get("speedup_vs_peer"))
                torch.cuda.empty_cache()
    finally:
        common.FLUSH_MODE, attention_decode.QUICK_SHAPES = keep


# ---- norm -------------------------------------------------------------------------------------

NORM_TILES = [(bm, w) for bm in (1, 2, 4) for w in (4, 8, 16, 32)]


def _sweep_norm(ceiling, section, modes, evicts, tiles, peer_reps=1):
    """rmsnorm / fused_add_rmsnorm bf16 at 4096x4096 and 16384x8192 for each (flush mode, eviction
    hint, (rows a program, warps)), with the torch.compile'd references as the yardstick."""
    import flashinfer
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.launch import norm as launch_norm
    from flashinfer_ops.reference import norm as ref

    orig, flush_mode = launch_norm._launch_plan, common.FLUSH_MODE
    ref_rms = torch.compile(ref.rmsnorm, dynamic=False)
    ref_fused = torch.compile(ref.fused_add_rmsnorm, dynamic=False)
    for m, n in ((4096, 4096), (16384, 8192)):
        x = torch.randn(m, n, dtype=torch.bfloat16, device="cuda")
        r = torch.randn(m, n, dtype=torch.bfloat16, device="cuda")
        w = torch.randn(n, dtype=torch.bfloat16, device="cuda")
        o = torch.empty_like(x)
        for mode in modes:
            common.FLUSH_MODE = mode
            for rep in range(peer_reps):
                emit(section=section, shape=[m, n], mode=mode, setting="torch.compile", rep=rep,
                     rms_us=round(time_device_us([lambda: ref_rms(x, w, 1e-6)]), 2),
                     add_us=round(time_device_us([lambda: ref_fused(x, r, w, 1e-6)]), 2))
            for evict in evicts:
                for block_m, warps in tiles:
                    if block_m * n // (warps * 32) < 8:
                        continue

                    def plan(family, hidden, bm=block_m, nw=warps, ev=evict):
                        return bm, n, True, dict(LaunchConfig(num_warps=nw, num_stages=1).options(family), EVICT=ev)

                    launch_norm._launch_plan = plan
                    try:
                        rms = time_device_us([lambda: flashinfer.rmsnorm(x, w, out=o)])
                        add = time_device_us([lambda: flashinfer.fused_add_rmsnorm(x, r, w)])
                        emit(section=section, shape=[m, n], mode=mode, evict=evict, block_m=block_m, warps=warps,
                             rms_us=round(rms, 2), rms_pct=_pct(2 * m * n * 2, rms, ceiling),
                             add_us=round(add, 2), add_pct=_pct(4 * m * n * 2, add, ceiling))
                    finally:
                        launch_norm._launch_plan = orig
    common.FLUSH_MODE = flush_mode


def sweep_norm(ceiling):
    """Tile shapes under both flush methods (no eviction hint)."""
    _sweep_norm(ceiling, "norm", ("write", "read"), ("",), NORM_TILES)


def sweep_norm2(ceiling):
    """Eviction hint x a few tile shapes, write flush, the peers timed twice."""
    _sweep_norm(ceiling, "norm2", ("write",), ("", "evict_first", "evict_last"),
                [(1, 4), (1, 8), (2, 4), (2, 8), (2, 16), (1, 16)], peer_reps=2)


def sweep_norm5(ceiling):
    """Eviction hint x tile shapes under the reading flush (the benchmarks' method since
    2026-12-06), the torch.compile peers timed three times."""
    _sweep_norm(ceiling, "norm5", ("read",), ("", "evict_first", "evict_last"),
                [(1, 8), (1, 16), (2, 8), (2, 16), (2, 32), (4, 16), (4, 32)], peer_reps=3)


# ---- rope -------------------------------------------------------------------------------------

def sweep_rope(ceiling):
    import flashinfer
    from flashinfer_ops.launch import rope as launch_rope
    from flashinfer_ops.configs import LaunchConfig

    from .rope import D, HK, HQ, torch_rope_inplace

    inv = 1.0 / (1e4 ** (torch.arange(0, D, 2, dtype=torch.float32, device="cuda") / D))
    f = torch.outer(torch.arange(65536, dtype=torch.float32, device="cuda"), inv)
    cache = torch.cat((f.cos(), f.sin()), -1)
    peer = torch.compile(torch_rope_inplace, dynamic=False)
    orig_plan, orig_hpp = launch_rope._plan, launch_rope.heads_per_program
    for nnz in [int(x) for x in os.environ.get("TUNE_ROPE_NNZ", "4096,65536").split(",")]:
        q = torch.randn(nnz, HQ, D, dtype=torch.bfloat16, device="cuda")
        k = torch.randn(nnz, HK, D, dtype=torch.bfloat16, device="cuda")
        pos = torch.randint(0, 65536, (nnz,), device="cuda")
        nbytes = 2 * nnz * (HQ + HK) * D * 2 + nnz * D * 4 + nnz * 8
        fn = lambda: flashinfer.apply_rope_with_cos_sin_cache_inplace(pos, q, k, D, cache)  # noqa: E731
        for mode in ("write", "read"):
            common.FLUSH_MODE = mode
            pus = time_device_us([lambda: peer(pos, q, k, cache)])
            emit(section="rope", nnz=nnz, mode=mode, setting="torch.compile", us=round(pus, 2),
                 pct=_pct(nbytes, pus, ceiling))
            for hpp in (1, 2, 4, 8):
                for block_t in (4, 8, 16, 32):
                    for warps in (1, 2, 4, 8):
                        if block_t * 64 // (warps * 32) < 2:
                            continue

                        def plan(family, half, bt=block_t, nw=warps):
                            return bt, 64, LaunchConfig(num_warps=nw, num_stages=1).options(family)

                        launch_rope._plan = plan
                        launch_rope.heads_per_program = lambda nnz, h, bt, hpp=hpp: hpp
                        try:
                            us = time_device_us([fn])
                            emit(section="rope", nnz=nnz, mode=mode, heads_per_program=hpp, block_t=block_t,
                                 warps=warps, us=round(us, 2), pct=_pct(nbytes, us, ceiling))
                        finally:
                            launch_rope._plan, launch_rope.heads_per_program = orig_plan, orig_hpp
    common.FLUSH_MODE = "write"
    # what one facade call launches (profiler: kernel names and device times)
    q = torch.randn(4096, HQ, D, dtype=torch.bfloat16, device="cuda")
    k = torch.randn(4096, HK, D, dtype=torch.bfloat16, device="cuda")
    pos = torch.randint(0, 65536, (4096,), device="cuda")
    flashinfer.apply_rope_with_cos_sin_cache_inplace(pos, q, k, D, cache)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        flashinfer.apply_rope_with_cos_sin_cache_inplace(pos, q, k, D, cache)
        torch.cuda.synchronize()
    emit(section="rope_profile", kernels=[(e.name, round(e.device_time, 2)) for e in prof.events()
                                          if e.device_time > 0][:10])


def sweep_rope2(ceiling):
    """4096 tokens (bf16 32/8 heads D128, cos/sin cache, in place): tile x eviction hint, twice."""
    import flashinfer
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.launch import rope as launch_rope

    from .rope import D, HK, HQ

    nnz = 4096
    inv = 1.0 / (1e4 ** (torch.arange(0, D, 2, dtype=torch.float32, device="cuda") / D))
    f = torch.outer(torch.arange(65536, dtype=torch.float32, device="cuda"), inv)
    cache = torch.cat((f.cos(), f.sin()), -1)
    q = torch.randn(nnz, HQ, D, dtype=torch.bfloat16, device="cuda")
    k = torch.randn(nnz, HK, D, dtype=torch.bfloat16, device="cuda")
    pos = torch.randint(0, 65536, (nnz,), device="cuda")
    nbytes = 2 * nnz * (HQ + HK) * D * 2 + nnz * D * 4 + nnz * 8
    fn = lambda: flashinfer.apply_rope_with_cos_sin_cache_inplace(pos, q, k, D, cache)  # noqa: E731
    orig_plan, orig_hpp = launch_rope._plan, launch_rope.heads_per_program
    settings = [None, (1, 8, 1, ""), (1, 8, 1, "evict_last"), (1, 8, 1, "evict_first"), (2, 16, 4, "evict_last"),
                (2, 16, 4, "evict_first"), (1, 16, 2, "evict_last"), (2, 8, 2, "evict_last")]
    for rep in range(2):
        for st in settings:
            if st is not None:
                hpp, bt, nw, ev = st

                def plan(family, half, bt=bt, nw=nw, ev=ev):
                    return bt, 64, dict(LaunchConfig(num_warps=nw, num_stages=1).options(family), EVICT=ev)

                launch_rope._plan = plan
                launch_rope.heads_per_program = lambda nnz, h, bt, hpp=hpp: hpp
            try:
                us = time_device_us([fn])
                emit(section="rope2", rep=rep, setting=st or "table", us=round(us, 2), pct=_pct(nbytes, us, ceiling))
            finally:
                launch_rope._plan, launch_rope.heads_per_program = orig_plan, orig_hpp


# ---- cold vs steady, norm and rope ------------------------------------------------------------

def _both(fns, ceiling, nbytes):
    """Cold (common.FLUSH_MODE flush) and steady-state us and % of the ceiling of the same calls."""
    cold = time_device_us(fns)
    st = common.steady_us(fns)
    return dict(cold_us=round(cold, 2), cold_pct=_pct(nbytes, cold, ceiling),
                steady_us=round(st, 2) if st else None, steady_pct=_pct(nbytes, st, ceiling) if st else None)


def _norm_settings(ceiling, section, m, n, settings):
    """rmsnorm / fused_add_rmsnorm bf16 [m, n] timed cold and steady (_both) for each launch
    setting (block_m, warps, eviction hint, block_n; block_n None = one pass over the row) and for
    the table (None), over rotating input sets."""
    import flashinfer
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.launch import norm as launch_norm

    from .common import input_sets_for

    nb = 2 * m * n * 2
    sets = [(torch.randn(m, n, dtype=torch.bfloat16, device="cuda"), torch.randn(m, n, dtype=torch.bfloat16, device="cuda"),
             torch.randn(n, dtype=torch.bfloat16, device="cuda"), torch.empty(m, n, dtype=torch.bfloat16, device="cuda"))
            for _ in range(input_sets_for(nb))]
    rms = [lambda x=x, w=w, o=o: flashinfer.rmsnorm(x, w, out=o) for x, r, w, o in sets]
    add = [lambda x=x, r=r, w=w: flashinfer.fused_add_rmsnorm(x, r, w) for x, r, w, o in sets]
    orig = launch_norm._launch_plan
    for st in settings:
        if st is not None:
            bm, nw, ev, bn = st

            def plan(family, hidden, bm=bm, nw=nw, ev=ev, bn=bn):
                return bm, bn or n, bn is None, dict(LaunchConfig(num_warps=nw, num_stages=1).options(family), EVICT=ev)

            launch_norm._launch_plan = plan
        try:
            emit(section=section, op="rmsnorm", shape=[m, n], setting=st or "table", **_both(rms, ceiling, nb))
            emit(section=section, op="fused_add", shape=[m, n], setting=st or "table", **_both(add, ceiling, 2 * nb))
        finally:
            launch_norm._launch_plan = orig


def sweep_steady(ceiling):
    """Each launch setting of rmsnorm / fused-add (4096x4096, 16384x8192) and the in-place RoPE
    (4096 tokens) timed both ways: cold after the writing flush and steady state (back-to-back over
    rotating inputs). Also a plain copy of each op's bytes, and the torch.compile peers."""
    import flashinfer
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.launch import rope as launch_rope
    from flashinfer_ops.reference import norm as ref

    from .common import input_sets_for
    from .rope import D, HK, HQ, torch_rope_inplace

    for mib in (64, 84, 268):
        a = torch.empty((mib << 20) // 2, dtype=torch.uint8, device="cuda").random_()
        sets = [(a, torch.empty_like(a))] + [(torch.empty_like(a).random_(), torch.empty_like(a))
                                             for _ in range(input_sets_for(mib << 20) - 1)]
        emit(section="steady", op=f"copy {mib} MiB", **_both([lambda x=x, y=y: y.copy_(x) for x, y in sets],
                                                              ceiling, mib << 20))
        del a, sets
    ref_rms = torch.compile(ref.rmsnorm, dynamic=False)
    ref_fused = torch.compile(ref.fused_add_rmsnorm, dynamic=False)
    for m, n in ((4096, 4096), (16384, 8192)):
        nb = 2 * m * n * 2
        sets = [(torch.randn(m, n, dtype=torch.bfloat16, device="cuda"), torch.randn(m, n, dtype=torch.bfloat16, device="cuda"),
                 torch.randn(n, dtype=torch.bfloat16, device="cuda")) for _ in range(input_sets_for(nb))]
        emit(section="steady", op="rmsnorm", shape=[m, n], setting="torch.compile",
             **_both([lambda x=x, w=w: ref_rms(x, w, 1e-6) for x, r, w in sets], ceiling, nb))
        emit(section="steady", op="fused_add", shape=[m, n], setting="torch.compile",
             **_both([lambda x=x, r=r, w=w: ref_fused(x, r, w, 1e-6) for x, r, w in sets], ceiling, 2 * nb))
        del sets
        tiles = [(bm, w, ev, None) for ev in ("", "evict_last", "evict_first")
                 for bm, w in ((1, 2), (1, 4), (1, 8), (2, 4), (2, 8), (4, 8), (2, 16), (4, 16)) if bm * n // (w * 32) >= 8]
        _norm_settings(ceiling, "steady", m, n, [None] + tiles)
    inv = 1.0 / (1e4 ** (torch.arange(0, D, 2, dtype=torch.float32, device="cuda") / D))
    f = torch.outer(torch.arange(65536, dtype=torch.float32, device="cuda"), inv)
    cache = torch.cat((f.cos(), f.sin()), -1)
    nnz = 4096
    nbytes = 2 * nnz * (HQ + HK) * D * 2 + nnz * D * 4 + nnz * 8
    sets = [(torch.randint(0, 65536, (nnz,), device="cuda"), torch.randn(nnz, HQ, D, dtype=torch.bfloat16, device="cuda"),
             torch.randn(nnz, HK, D, dtype=torch.bfloat16, device="cuda")) for _ in range(input_sets_for(nbytes))]
    fns = [lambda p=p, q=q, k=k: flashinfer.apply_rope_with_cos_sin_cache_inplace(p, q, k, D, cache) for p, q, k in sets]
    peer = torch.compile(torch_rope_inplace, dynamic=False)
    emit(section="steady", op="rope", nnz=nnz, setting="torch.compile",
         **_both([lambda p=p, q=q, k=k: peer(p, q, k, cache) for p, q, k in sets], ceiling, nbytes))
    orig_plan, orig_hpp = launch_rope._plan, launch_rope.heads_per_program
    for st in [None, (1, 8, 1, ""), (2, 8, 2, ""), (2, 16, 4, ""), (4, 16, 4, ""), (8, 16, 4, ""), (1, 16, 2, ""),
               (1, 4, 1, ""), (2, 8, 2, "evict_first"), (4, 8, 2, "evict_first"), (8, 8, 2, "")]:
        if st is not None:
            hpp, bt, nw, ev = st

            def rplan(family, half, bt=bt, nw=nw, ev=ev):
                return bt, 64, dict(LaunchConfig(num_warps=nw, num_stages=1).options(family), EVICT=ev)

            launch_rope._plan = rplan
            launch_rope.heads_per_program = lambda nnz, h, bt, hpp=hpp: hpp
        try:
            emit(section="steady", op="rope", nnz=nnz, setting=st or "table", **_both(fns, ceiling, nbytes))
        finally:
            launch_rope._plan, launch_rope.heads_per_program = orig_plan, orig_hpp


def sweep_norm4(ceiling):
    """The two-pass norm (a read-only statistics pass, then a second read from L2 and the write)
    against the table's single pass, cold and steady, at 4096x4096 and 16384x8192 bf16."""
    settings = [(1, 4, "evict_last", 1024), (1, 2, "evict_last", 1024), (1, 8, "evict_last", 1024),
                (1, 4, "evict_last", 2048), (1, 8, "evict_last", 2048), (1, 4, "", 1024), (2, 8, "evict_last", 1024),
                (1, 16, "evict_last", 4096)]
    for m, n in ((4096, 4096), (16384, 8192)):
        _norm_settings(ceiling, "norm4", m, n, [None] + [st for st in settings if st[3] < n])


def sweep_sampling(ceiling):
    """Top-k-top-p from logits (k 50, p 0.9, vocab 128256, bf16) at batch 16/64/256 with the radix
    split path forced on and off, a profile of the split path at batch 64 (kernel names and device
    us), and the softmax at batch 256 next to a bf16 -> fp32 copy of the same bytes."""
    import flashinfer
    v = 128256
    for b in (16, 64, 256):
        x = (torch.randn(b, v, device="cuda") * 3).to(torch.bfloat16)
        fn = lambda: flashinfer.top_k_top_p_sampling_from_logits(x, 50, 0.9)  # noqa: E731
        for split in ("1", "0"):
            os.environ["FLASHINFER_SAMPLING_SPLIT"] = split
            try:
                emit(section="sampling", op="top_k_top_p_from_logits", batch=b, split=split == "1",
                     us=round(time_device_us([fn]), 2))
            finally:
                os.environ.pop("FLASHINFER_SAMPLING_SPLIT", None)
    x = (torch.randn(64, v, device="cuda") * 3).to(torch.bfloat16)
    flashinfer.top_k_top_p_sampling_from_logits(x, 50, 0.9)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        flashinfer.top_k_top_p_sampling_from_logits(x, 50, 0.9)
        torch.cuda.synchronize()
    emit(section="sampling_profile", batch=64, kernels=[(e.name[:40], round(e.device_time, 2)) for e in prof.events()
                                                        if e.device_time > 0][:12])
    x = (torch.randn(256, v, device="cuda") * 3).to(torch.bfloat16)
    out = torch.empty(256, v, device="cuda")
    nbytes = x.numel() * 6
    emit(section="sampling", op="softmax", batch=256,
         **_both([lambda: torch.ops.flashinfer.softmax(out, x, None, 1.0)], ceiling, nbytes))
    # the same bytes moved by a dtype-converting copy (bf16 read, fp32 written): softmax's traffic
    emit(section="sampling", op="copy bf16->fp32", batch=256, **_both([lambda: out.copy_(x)], ceiling, nbytes))


def sweep_softmax(ceiling):
    """The shipped softmax at 512 / 256 / 64 / 1 x 128256 bf16 (table first), then at 256 rows the
    row-persistent kernel over BLOCK x warps x grid and the vocabulary-split form over the statistics
    segment and the write chunk; reading flush."""
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.launch import sampling as launch_sampling
    from flashinfer_ops.launch import sampling_split as launch_split
    v = 128256
    orig_tile = launch_split.softmax_stats_tile
    orig_rb, orig_rc = launch_sampling.softmax_rows_block, launch_sampling.softmax_rows_config
    for b in (512, 256, 64, 1):
        xs = [((torch.randn(b, v, device="cuda") * 3).to(torch.bfloat16), torch.empty(b, v, device="cuda"))
              for _ in range(2)]
        nbytes = b * v * 6
        emit(section="softmax", batch=b, tile="table",
             **_both([lambda x=x, o=o: torch.ops.flashinfer.softmax(o, x, None, 1.0) for x, o in xs], ceiling, nbytes))
        if b != 256:
            continue
        for block, warps, grid in ((16384, 32, 128), (16384, 32, 132), (8192, 32, 128), (8192, 16, 128),
                                   (8192, 16, 132), (16384, 32, 86)):
            launch_sampling.softmax_rows_block = lambda fam, blk=block: blk
            launch_sampling.softmax_rows_config = lambda fam, w=warps: LaunchConfig(num_warps=w, num_stages=1)
            try:
                emit(section="softmax", batch=b, form="rows", block=block, warps=warps, grid=grid,
                     **_both([lambda x=x, o=o: launch_sampling.softmax_rows(o, x, None, 1.0, grid) for x, o in xs],
                             ceiling, nbytes))
            finally:
                launch_sampling.softmax_rows_block, launch_sampling.softmax_rows_config = orig_rb, orig_rc
        for sblock, seg, wblock in ((2048, 32768, 8192), (2048, 8192, 2048), (4096, 65536, 8192)):
            launch_split.softmax_stats_tile = lambda r, n, t=(sblock, seg): t
            try:
                emit(section="softmax", batch=b, form="split", stats=[sblock, seg], write_block=wblock,
                     **_both([lambda x=x, o=o: launch_split.softmax_split(o, x, None, 1.0, wblock) for x, o in xs],
                             ceiling, nbytes))
            finally:
                launch_split.softmax_stats_tile = orig_tile


def sweep_softmax2(ceiling):
    """Row-persistent softmax at 256 x 128256 bf16 (grid 128, reading flush): BLOCK x warps x
    statistics-sweep depth x write-sweep prefetch; then the same bytes' plain ceilings: a write-only
    fill of the fp32 output, a read-only row max of the bf16 input, and the bf16 -> fp32 copy."""
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.launch import sampling as launch_sampling
    b, v = 256, 128256
    keep = (launch_sampling.softmax_rows_block, launch_sampling.softmax_rows_config, launch_sampling.softmax_rows_pipe)
    xs = [((torch.randn(b, v, device="cuda") * 3).to(torch.bfloat16), torch.empty(b, v, device="cuda"))
          for _ in range(2)]
    nbytes = b * v * 6
    emit(section="softmax2", tile="table",
         **_both([lambda x=x, o=o: torch.ops.flashinfer.softmax(o, x, None, 1.0) for x, o in xs], ceiling, nbytes))
    settings = [(16384, 32, d, a) for d in (1, 2, 3) for a in (False, True)]
    settings += [(8192, 32, d, a) for d in (1, 2, 3, 4) for a in (False, True)]
    settings += [(8192, 16, 2, True), (8192, 16, 4, True), (4096, 32, 4, True), (4096, 16, 4, True)]
    for block, warps, depth, ahead in settings:
        launch_sampling.softmax_rows_block = lambda fam, blk=block: blk
        launch_sampling.softmax_rows_config = lambda fam, w=warps: LaunchConfig(num_warps=w, num_stages=1)
        launch_sampling.softmax_rows_pipe = lambda fam, p=(depth, ahead): p
        try:
            emit(section="softmax2", block=block, warps=warps, depth=depth, ahead=ahead,
                 **_both([lambda x=x, o=o: launch_sampling.softmax_rows(o, x, None, 1.0, 128) for x, o in xs],
                         ceiling, nbytes))
        finally:
            (launch_sampling.softmax_rows_block, launch_sampling.softmax_rows_config,
             launch_sampling.softmax_rows_pipe) = keep
    emit(section="softmax2", op="fill fp32 out (write only)",
         **_both([lambda o=o: o.fill_(1.0) for _, o in xs], ceiling, b * v * 4))
    emit(section="softmax2", op="amax bf16 rows (read only)",
         **_both([lambda x=x: x.amax(dim=1) for x, _ in xs], ceiling, b * v * 2))
    emit(section="softmax2", op="copy bf16 -> fp32",
         **_both([lambda x=x, o=o: o.copy_(x) for x, o in xs], ceiling, nbytes))


# ---- decode -----------------------------------------------------------------------------------

DECODE_PPS = (1, 2, 3, 4, 8)
DECODE_TILES = ((4, 3, 32), (4, 2, 64), (4, 3, 64), (4, 2, 32), (4, 4, 32))


def sweep_decode(ceiling):
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.configs.attention import decode as cfg

    from .attention_decode import _bytes, _sdpa_cudnn, _wrapper

    orig = (cfg.PROGRAMS_PER_SM, cfg.decode_config, cfg.block_n, cfg.MIN_CHUNK_TOKENS)
    cases = [(1, 32768, torch.bfloat16), (16, 4096, torch.bfloat16), (64, 4096, torch.bfloat16),
             (64, 8192, torch.bfloat16), (64, 8192, torch.float8_e4m3fn)]
    settings = [(pps, w, s, bn) for pps in DECODE_PPS for (w, s, bn) in DECODE_TILES]
    for batch, kv_len, kvdt in cases:
        if kvdt == torch.bfloat16:
            peer_fn, label = _sdpa_cudnn(batch, kv_len)
            if peer_fn is not None:
                emit(section="decode", batch=batch, kv=kv_len, setting=label,
                     us=round(time_device_us([peer_fn]), 2))
            del peer_fn
        nbytes = _bytes(batch, kv_len, kvdt)
        for pps, warps, stages, bn in settings:
            cfg.PROGRAMS_PER_SM = pps
            cfg.decode_config = lambda f, d, p8, r, nw=warps, ns=stages: LaunchConfig(num_warps=nw, num_stages=ns)
            cfg.block_n = lambda f, d, p8, r, b=bn: b
            w = cache = None
            try:
                w, cache, q, out, _ = _wrapper(batch, kv_len, kvdt)
                items = int((w._work_info[:, 0] >= 0).sum())
                us = time_device_us([lambda: w.run(q, cache, out=out)])
                emit(section="decode", batch=batch, kv=kv_len, kv_dtype=str(kvdt), pps=pps, warps=warps,
                     stages=stages, block_n=bn, items=items, us=round(us, 2), pct=_pct(nbytes, us, ceiling))
            except Exception as e:
                emit(section="decode", batch=batch, kv=kv_len, pps=pps, warps=warps, stages=stages, block_n=bn,
                     error=f"{type(e).__name__}: {str(e)[:200]}")
            finally:
                cfg.PROGRAMS_PER_SM, cfg.decode_config, cfg.block_n, cfg.MIN_CHUNK_TOKENS = orig
                w = cache = None
                torch.cuda.empty_cache()
    # split of device time between the decode and merge kernels (shipped table)
    for batch, kv_len in ((1, 32768), (16, 4096)):
        w, cache, q, out, _ = _wrapper(batch, kv_len, torch.bfloat16)
        _decode_profile(w, q, cache, out, batch, kv_len)


def _decode_profile(w, q, cache, out, batch, kv_len):
    """Device time per kernel of one planned decode run() (cold L2), from the profiler."""
    w.run(q, cache, out=out)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            common.flush_l2()
            w.run(q, cache, out=out)
        torch.cuda.synchronize()
    emit(section="decode_profile", batch=batch, kv=kv_len,
         kernels=[(e.key, round(e.device_time_total / e.count, 2)) for e in prof.key_averages()
                  if e.device_time_total > 0])


def sweep_decode_h200(ceiling):
    """Decode settings that could move on a faster-memory part (H200): page ids a tile ahead, tile
    depth, resident programs per SM, the fp8 prefetch loop. One cache per case, re-planned per
    setting."""
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.configs.attention import decode as cfg

    import flashinfer

    from .attention_decode import D, H_KV, H_QO, PAGE, _bytes, _paged, _workspace

    names = ("decode_config", "block_n", "resident_programs", "prefetch")
    orig = {n: getattr(cfg, n) for n in names}

    def apply(bn=None, stages=None, warps=4, pps=None, prefetch=None, pa=None):
        os.environ.pop("FLASHINFER_DECODE_PAGES_AHEAD", None)
        if pa is not None:
            os.environ["FLASHINFER_DECODE_PAGES_AHEAD"] = "1" if pa else "0"
        if bn is not None:
            cfg.block_n = lambda f, d, p8, r, b=bn: b
        if stages is not None:
            cfg.decode_config = lambda f, d, p8, r, ns=stages, nw=warps: LaunchConfig(num_warps=nw, num_stages=ns)
        if pps is not None:
            cfg.resident_programs = lambda f, p8, v=pps: v
        if prefetch is not None:
            cfg.prefetch = lambda nat, r, v=prefetch: v and nat and not r

    bf16_settings = [dict(pa=False), dict(), dict(stages=4), dict(bn=64, stages=3), dict(pps=5), dict(pps=3),
                     dict(stages=4, pps=3), dict(pps=6)]
    fp8_settings = [dict(), dict(prefetch=False, bn=64, stages=3), dict(prefetch=False, bn=32, stages=3),
                    dict(prefetch=False, bn=64, stages=4), dict(prefetch=False, bn=128, stages=3),
                    dict(prefetch=False, bn=32, stages=4, pps=8), dict(prefetch=False, bn=64, stages=3, pps=6)]
    cases = [(1, 32768, torch.bfloat16), (16, 4096, torch.bfloat16), (64, 8192, torch.bfloat16),
             (64, 8192, torch.float8_e4m3fn)]
    for batch, kv_len, kvdt in cases:
        cache, indptr, indices, last = _paged(batch, kv_len, kvdt)
        q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(q)
        nbytes = _bytes(batch, kv_len, kvdt)
        for st in (fp8_settings if kvdt != torch.bfloat16 else bf16_settings):
            try:
                apply(**st)
                w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
                w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16, kv_data_type=kvdt)
                items = int((w._work_info[:, 0] >= 0).sum())
                us = time_device_us([lambda: w.run(q, cache, out=out)])
                emit(section="decode_h200", batch=batch, kv=kv_len, kv_dtype=str(kvdt), setting=st, items=items,
                     us=round(us, 2), pct=_pct(nbytes, us, ceiling))
            except Exception as e:
                emit(section="decode_h200", batch=batch, kv=kv_len, setting=st, error=f"{type(e).__name__}: {str(e)[:200]}")
            finally:
                for n, v in orig.items():
                    setattr(cfg, n, v)
                os.environ.pop("FLASHINFER_DECODE_PAGES_AHEAD", None)
        if kvdt == torch.bfloat16 and batch <= 16:
            w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
            w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16)
            _decode_profile(w, q, cache, out, batch, kv_len)
        del cache
        torch.cuda.empty_cache()


def sweep_decode_fp8(ceiling):
    """fp8 KV decode at batch 64 x 8192 (bf16 q, 32/8 heads, D 128, page 16) by (warps, tile,
    stages, register cap, residency the planner assumes), cold and steady, with the bf16 cache as
    the yardstick (target: fp8 >= 1.6x faster)."""
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.configs.attention import decode as cfg

    import flashinfer

    from .attention_decode import D, H_KV, H_QO, PAGE, _bytes, _paged, _workspace

    orig = {n: getattr(cfg, n) for n in ("decode_config", "block_n", "resident_programs")}
    # (warps, tile, stages[, maxnreg, resident programs a SM the planner fills]): a register cap
    # lets more programs share an SM (210 registers at the 128-token tile: 2 a SM)
    settings = [None, (4, 128, 3, 168, 8), (4, 128, 3, 168, 3), (4, 128, 3, 128, 4), (4, 128, 3, 128, 8),
                (4, 64, 3, 128, 4), (4, 128, 3, 0, 2), (4, 64, 3, 0, 8)]
    for kvdt in (torch.bfloat16, torch.float8_e4m3fn):
        batch, kv_len = 64, 8192
        cache, indptr, indices, last = _paged(batch, kv_len, kvdt)
        q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(q)
        nbytes = _bytes(batch, kv_len, kvdt)
        for st in (settings if kvdt != torch.bfloat16 else [None]):
            if st is not None:
                nw, bn, ns = st[:3]
                mr, pps = (st[3:] + (0, 0))[:2]
                cfg.block_n = lambda f, d, p8, r, b=bn: b
                cfg.decode_config = lambda f, d, p8, r, ns=ns, nw=nw, mr=mr: LaunchConfig(num_warps=nw, num_stages=ns,
                                                                                           maxnreg=mr)
                if pps:
                    cfg.resident_programs = lambda f, p8, v=pps: v
            try:
                w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
                w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16, kv_data_type=kvdt)
                w.run(q, cache, out=out)
                emit(section="decode_fp8", kv_dtype=str(kvdt), setting=st or "table",
                     items=int((w._work_info[:, 0] >= 0).sum()),
                     **_both([lambda: w.run(q, cache, out=out)], ceiling, nbytes))
            except Exception as e:
                emit(section="decode_fp8", kv_dtype=str(kvdt), setting=st or "table",
                     error=f"{type(e).__name__}: {str(e)[:300]}")
            finally:
                for n, v in orig.items():
                    setattr(cfg, n, v)
        del cache
        torch.cuda.empty_cache()


def sweep_decode_fp8b(ceiling):
    """fp8 e4m3 / e5m2 KV decode at batch 64 x 8192 (bf16 q, 32/8 heads, D 128, page 16) with V
    converted by Triton after the operand gather (table) or in its loaded layout by inline asm
    (FLASHINFER_DECODE_V_ASM=1), cold and steady, next to the bf16 cache; and batch 16 x 4096."""
    import flashinfer

    from .attention_decode import D, H_KV, H_QO, PAGE, _bytes, _paged, _workspace

    for batch, kv_len in ((64, 8192), (16, 4096)):
        for kvdt in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            cache, indptr, indices, last = _paged(batch, kv_len, kvdt)
            q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
            out = torch.empty_like(q)
            nbytes = _bytes(batch, kv_len, kvdt)
            for v_asm in (("0", "1") if kvdt != torch.bfloat16 else ("0",)):
                os.environ["FLASHINFER_DECODE_V_ASM"] = v_asm
                try:
                    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
                    w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16, kv_data_type=kvdt)
                    emit(section="decode_fp8b", batch=batch, kv_len=kv_len, kv_dtype=str(kvdt), v_asm=v_asm,
                         **_both([lambda: w.run(q, cache, out=out)], ceiling, nbytes))
                except Exception as e:
                    emit(section="decode_fp8b", batch=batch, kv_dtype=str(kvdt), v_asm=v_asm,
                         error=f"{type(e).__name__}: {str(e)[:300]}")
            os.environ.pop("FLASHINFER_DECODE_V_ASM", None)
            del cache
            torch.cuda.empty_cache()


def sweep_decode2(ceiling):
    """bf16 decode at batch 1 x 32768, 16 x 4096, 64 x 8192: page ids a tile ahead (loop-carried,
    the table) vs page ids left to Triton's pipeliner at 5 stages (their own async-copy stage, no
    plain load in the loop: pipeline_report), and deeper pipelines; cold and steady, with cuDNN SDPA
    timed the same two ways."""
    from flashinfer_ops.configs import LaunchConfig
    from flashinfer_ops.configs.attention import decode as cfg

    import flashinfer

    from .attention_decode import D, H_KV, H_QO, PAGE, _bytes, _paged, _sdpa_cudnn, _workspace

    orig = cfg.decode_config
    for batch, kv_len in ((1, 32768), (16, 4096), (64, 8192)):
        nbytes = _bytes(batch, kv_len, torch.bfloat16)
        peer, label = _sdpa_cudnn(batch, kv_len)
        peer2, _ = _sdpa_cudnn(batch, kv_len)
        if peer is not None:
            cold = time_device_us([peer])
            st = common.steady_us([peer, peer2])
            emit(section="decode2", batch=batch, kv=kv_len, setting=label, cold_us=round(cold, 2),
                 steady_us=round(st, 2) if st else None)
        del peer, peer2
        cache, indptr, indices, last = _paged(batch, kv_len, torch.bfloat16)
        cache2 = cache.clone()
        q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(q)
        for pa, stages in ((None, None), (False, 5), (True, 4), (False, 6), (True, 5)):
            if pa is not None:
                os.environ["FLASHINFER_DECODE_PAGES_AHEAD"] = "1" if pa else "0"
                cfg.decode_config = lambda f, d, p8, r, ns=stages: LaunchConfig(num_warps=4, num_stages=ns)
            try:
                w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
                w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16)
                fns = [lambda: w.run(q, cache, out=out), lambda: w.run(q, cache2, out=out)]
                emit(section="decode2", batch=batch, kv=kv_len, setting=[pa, stages] if pa is not None else "table",
                     **_both(fns, ceiling, nbytes))
            except Exception as e:
                emit(section="decode2", batch=batch, kv=kv_len, setting=[pa, stages], error=f"{type(e).__name__}: {str(e)[:300]}")
            finally:
                cfg.decode_config = orig
                os.environ.pop("FLASHINFER_DECODE_PAGES_AHEAD", None)
        del cache, cache2
        torch.cuda.empty_cache()


# ---- prefill ----------------------------------------------------------------------------------

PREFILL_TILES = ("table", "128,64,8,3", "128,128,8,3", "128,128,8,2", "128,64,8,4", "128,64,4,3", "64,64,4,3",
                 "64,128,4,3", "128,32,4,3", "256,64,8,3", "256,128,8,2", "128,128,4,2", "64,64,4,4")


def _emit_sdpa(section: str, b: int, l: int):
    """SDPA's flash and cuDNN backends on the prefill benchmark's shape (the peers of a sweep)."""
    from .attention_prefill import _sdpa, _tflops

    for backend in ("FLASH_ATTENTION", "CUDNN_ATTENTION"):
        us, mode = _sdpa(backend, b, l, 1)
        if us:
            emit(section=section, b=b, l=l, setting=f"sdpa {backend} {mode}", us=round(us, 2),
                 tflops=round(_tflops(b, l, us), 1))


def sweep_prefill(ceiling):
    from .attention_prefill import SHAPES, _paged_case, _ragged_case, _tflops

    for b, l in SHAPES:
        _emit_sdpa("prefill", b, l)
        for tile in PREFILL_TILES:
            if tile == "table":
                os.environ.pop("FLASHINFER_PREFILL_TILE", None)
            else:
                os.environ["FLASHINFER_PREFILL_TILE"] = tile
            for name, make in (("ragged", _ragged_case), ("paged", _paged_case)):
                try:
                    _, fns = make(b, l, 1)
                    us = time_device_us(fns, warmup=2, reps=10)
                    emit(section="prefill", b=b, l=l, case=name, tile=tile, us=round(us, 2),
                         tflops=round(_tflops(b, l, us), 1))
                except Exception as e:
                    emit(section="prefill", b=b, l=l, case=name, tile=tile, error=f"{type(e).__name__}: {str(e)[:200]}")
                torch.cuda.empty_cache()
    os.environ.pop("FLASHINFER_PREFILL_TILE", None)


def sweep_prefill3(ceiling):
    """Ragged causal prefill with the unmasked K / V tiles read through tensor descriptors (TMA) or
    per-thread copies, over a few sm90 tiles, next to SDPA's cuDNN and flash backends (B, L as
    shipped; single prefill at (1, 8192) too)."""
    from .attention_prefill import SHAPES, _ragged_case, _single_fns, _tflops

    tiles = ("table", "128,64,8,3", "128,128,8,2", "64,128,4,3", "128,64,4,3")
    for b, l in SHAPES:
        _emit_sdpa("prefill3", b, l)
        for tma in ("0", "1"):
            os.environ["FLASHINFER_PREFILL_TMA"] = tma
            for tile in tiles:
                if tile == "table":
                    os.environ.pop("FLASHINFER_PREFILL_TILE", None)
                else:
                    os.environ["FLASHINFER_PREFILL_TILE"] = tile
                cases = [("ragged", lambda: _ragged_case(b, l, 1)[1])]
                if b == 1:
                    cases.append(("single", lambda: _single_fns(l, 1)))
                for name, make in cases:
                    try:
                        us = time_device_us(make(), warmup=2, reps=10)
                        emit(section="prefill3", b=b, l=l, case=name, tma=tma, tile=tile, us=round(us, 2),
                             tflops=round(_tflops(b, l, us), 1))
                    except Exception as e:
                        emit(section="prefill3", b=b, l=l, case=name, tma=tma, tile=tile,
                             error=f"{type(e).__name__}: {str(e)[:300]}")
                    torch.cuda.empty_cache()
    for name in ("FLASHINFER_PREFILL_TILE", "FLASHINFER_PREFILL_TMA"):
        os.environ.pop(name, None)


def sweep_prefill2(ceiling):
    """Paged prefill: page-id prefetch x stages (the 2026-12 TTGIR finding: the register prefetch
    at 3 stages leaves a page-table load in front of every tile's cp.async; without it, 5 stages
    pipeline the page ids as copies of their own), shared K / V row offsets on / off, shift-and-mask
    addressing on / off, a few sm90 tiles. "table" = the shipped entry; prefetch "env" = the table's choice. B, L as shipped."""
    from .attention_prefill import SHAPES, _paged_case, _ragged_case, _tflops

    # (pow2, tile, prefetch, shared_rows): "table" / "env" = the shipped choice; the second case is
    # the entry shipped before (3 stages, register prefetch, separate K / V row math)
    cases = [("1", "table", "env", "1"), ("1", "128,64,8,3", "1", "0"), ("1", "table", "env", "0"),
             ("1", "128,64,8,3", "1", "1"), ("1", "128,64,8,3", "0", "1"), ("1", "128,64,8,5", "1", "1"),
             ("1", "128,64,8,4", "0", "1"), ("1", "64,64,4,5", "0", "1"), ("1", "128,128,8,2", "1", "1"),
             ("0", "table", "env", "1")]
    for b, l in SHAPES:
        try:
            _, fns = _ragged_case(b, l, 1)
            us = time_device_us(fns, warmup=2, reps=10)
            emit(section="prefill2", b=b, l=l, case="ragged", tile="table", us=round(us, 2),
                 tflops=round(_tflops(b, l, us), 1))
        except Exception as e:
            emit(section="prefill2", b=b, l=l, case="ragged", error=f"{type(e).__name__}: {str(e)[:200]}")
        for pow2, tile, prefetch, rows in cases:
            os.environ["FLASHINFER_PREFILL_POW2"] = pow2
            os.environ["FLASHINFER_PREFILL_SHARED_ROWS"] = rows
            for name, val in (("FLASHINFER_PREFILL_TILE", tile), ("FLASHINFER_PREFILL_PREFETCH", prefetch)):
                if val in ("table", "env"):
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = val
            try:
                _, fns = _paged_case(b, l, 1)
                us = time_device_us(fns, warmup=2, reps=10)
                emit(section="prefill2", b=b, l=l, case="paged", pow2=pow2, tile=tile, prefetch=prefetch,
                     rows=rows, us=round(us, 2), tflops=round(_tflops(b, l, us), 1))
            except Exception as e:
                emit(section="prefill2", b=b, l=l, case="paged", pow2=pow2, tile=tile, prefetch=prefetch,
                     rows=rows, error=f"{type(e).__name__}: {str(e)[:200]}")
            torch.cuda.empty_cache()
        for name in ("FLASHINFER_PREFILL_TILE", "FLASHINFER_PREFILL_POW2", "FLASHINFER_PREFILL_PREFETCH",
                     "FLASHINFER_PREFILL_SHARED_ROWS"):
            os.environ.pop(name, None)


def sweep_stage(ceiling):
    """Paged causal prefill run directly (FLASHINFER_PREFILL_STAGE=0) or on K / V staged into the
    workspace (=1) next to ragged (causal-diagonal tiles in the descriptor loop, and not:
    FLASHINFER_PREFILL_DIAG_LOOP=0) and SDPA's two backends; then, for ragged and staged at
    (16, 1024), a few sm90 tiles with fewer shared-memory stages / narrower K tiles (more programs
    an SM)."""
    from .attention_prefill import SHAPES, _paged_case, _ragged_case, _tflops

    def timed(name, make, **kw):
        try:
            w, fns = make()
            us = time_device_us(fns, warmup=2, reps=10)
            emit(section="stage", case=name, us=round(us, 2), tflops=round(_tflops(b, l, us), 1),
                 staged=bool(getattr(w, "_staging_bytes", 0)), b=b, l=l, **kw)
        except Exception as e:
            emit(section="stage", case=name, b=b, l=l, error=f"{type(e).__name__}: {str(e)[:300]}", **kw)
        torch.cuda.empty_cache()

    for b, l in SHAPES:
        _emit_sdpa("stage", b, l)
        timed("ragged", lambda: _ragged_case(b, l, 1))
        os.environ["FLASHINFER_PREFILL_DIAG_LOOP"] = "0"
        timed("ragged", lambda: _ragged_case(b, l, 1), diag_loop="0")
        os.environ.pop("FLASHINFER_PREFILL_DIAG_LOOP")
        for st in ("0", "1"):
            os.environ["FLASHINFER_PREFILL_STAGE"] = st
            timed("paged", lambda: _paged_case(b, l, 1), stage=st)
    os.environ["FLASHINFER_PREFILL_STAGE"] = "1"
    b, l = SHAPES[-1]
    for tile in ("64,64,4,2", "64,64,4,4", "64,128,4,2"):
        os.environ["FLASHINFER_PREFILL_TILE"] = tile
        timed("ragged", lambda: _ragged_case(b, l, 1), tile=tile)
        timed("paged", lambda: _paged_case(b, l, 1), tile=tile, stage="1")
    for name in ("FLASHINFER_PREFILL_TILE", "FLASHINFER_PREFILL_STAGE"):
        os.environ.pop(name, None)


def sweep_fused(ceiling):
    """bf16 decode with the split-KV merge in the decode kernel (FLASHINFER_DECODE_FUSED_MERGE=1;
    plan() fuses only requests of <= FUSED_MERGE_MAX_CHUNKS chunks) or by merge_kernel (=0), cold
    and steady, cuDNN SDPA timed the same two ways."""
    import flashinfer

    from .attention_decode import D, H_KV, H_QO, PAGE, _bytes, _paged, _sdpa_cudnn, _workspace

    for batch, kv_len in ((16, 4096), (32, 4096), (1, 32768), (64, 4096)):
        nbytes = _bytes(batch, kv_len, torch.bfloat16)
        peer, label = _sdpa_cudnn(batch, kv_len)
        peer2, _ = _sdpa_cudnn(batch, kv_len)
        if peer is not None:
            emit(section="fused", batch=batch, kv=kv_len, setting=label, **_both([peer, peer2], ceiling, nbytes))
        del peer, peer2
        cache, indptr, indices, last = _paged(batch, kv_len, torch.bfloat16)
        cache2 = cache.clone()
        q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(q)
        for fused in ("0", "1", "0", "1"):
            os.environ["FLASHINFER_DECODE_FUSED_MERGE"] = fused
            try:
                w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
                w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16)
                fns = [lambda: w.run(q, cache, out=out), lambda: w.run(q, cache2, out=out)]
                emit(section="fused", batch=batch, kv=kv_len, setting=f"fused={fused}",
                     planned_fused=w._merge_counters is not None, **_both(fns, ceiling, nbytes))
            except Exception as e:
                emit(section="fused", batch=batch, kv=kv_len, setting=f"fused={fused}",
                     error=f"{type(e).__name__}: {str(e)[:300]}")
        os.environ.pop("FLASHINFER_DECODE_FUSED_MERGE", None)
        del cache, cache2
        torch.cuda.empty_cache()


def sweep_opt_in(ceiling):
    """The three attention paths of 2026-12-06 (sm90 defaults since session 8), each switched off
    and on in the same run (outputs compared): paged prefill on staged K / V, ragged with
    causal-diagonal tiles in the descriptor loop, next to SDPA's two backends; bf16 decode with the
    in-kernel merge at 16 x 4096 and 1 x 32768 next to cuDNN SDPA."""
    import flashinfer

    from .attention_decode import D, H_KV, H_QO, PAGE, _bytes, _paged, _sdpa_cudnn, _workspace
    from .attention_prefill import SHAPES, _paged_case, _ragged_case, _tflops

    def pair(name, make, env, b, l, square=True, on="1"):
        res = []
        for val in ("0", on):
            os.environ[env] = val
            torch.manual_seed(0)  # the same inputs for both settings
            try:
                w, fns = make()
                us = time_device_us(fns, warmup=2, reps=10)
                torch.cuda.synchronize()
                res.append(fns[0]())
                emit(section="opt_in", case=name, b=b, l=l, env=f"{env}={val}", us=round(us, 2),
                     tflops=round(_tflops(b, l, us), 1) if square else None,
                     staged=bool(getattr(w, "_staging_bytes", 0)))
            except Exception as e:
                emit(section="opt_in", case=name, b=b, l=l, env=f"{env}={val}", error=f"{type(e).__name__}: {str(e)[:300]}")
            os.environ.pop(env, None)
            torch.cuda.empty_cache()
        if len(res) == 2:
            emit(section="opt_in", case=name, b=b, l=l, max_abs_diff=float((res[0].float() - res[1].float()).abs().max()))

    for b, l in SHAPES:
        _emit_sdpa("opt_in", b, l)
        pair("ragged", lambda: _ragged_case(b, l, 1), "FLASHINFER_PREFILL_DIAG_LOOP", b, l)
        pair("paged", lambda: _paged_case(b, l, 1), "FLASHINFER_PREFILL_STAGE", b, l)
    # chunked prefill, 8 requests of 4096 cached tokens with 256 / 64 / 32 new queries each: every
    # K / V row read ~15 / ~4 / ~2 times; staged regardless of the threshold (=always) to place it
    for qo_len in (256, 64, 32):
        pair(f"paged qo={qo_len}", lambda: _paged_case(8, 4096, 1, qo_len=qo_len), "FLASHINFER_PREFILL_STAGE",
             8, 4096, square=False, on="always")
    for batch, kv_len in ((16, 4096), (1, 32768)):
        nbytes = _bytes(batch, kv_len, torch.bfloat16)
        peer, label = _sdpa_cudnn(batch, kv_len)
        if peer is not None:
            emit(section="opt_in", batch=batch, kv=kv_len, setting=label, cold_us=round(time_device_us([peer]), 2))
        del peer
        cache, indptr, indices, last = _paged(batch, kv_len, torch.bfloat16)
        q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
        outs = []
        for fused in ("0", "1", "0", "1"):
            os.environ["FLASHINFER_DECODE_FUSED_MERGE"] = fused
            out = torch.empty_like(q)
            w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
            w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16)
            us = time_device_us([lambda: w.run(q, cache, out=out)])
            torch.cuda.synchronize()
            outs.append(out.float())
            emit(section="opt_in", batch=batch, kv=kv_len, setting=f"fused={fused}",
                 planned_fused=w._merge_counters is not None, cold_us=round(us, 2), cold_pct=_pct(nbytes, us, ceiling))
        os.environ.pop("FLASHINFER_DECODE_FUSED_MERGE", None)
        emit(section="opt_in", batch=batch, kv=kv_len, max_abs_diff=float((outs[0] - outs[1]).abs().max()))
        del cache
        torch.cuda.empty_cache()


def sweep_tile16(ceiling):
    """sm90 prefill tiles (FLASHINFER_PREFILL_TILE="BM,BN,WARPS,STAGES") with the defaults of
    2026-12-06 session 8 (diagonal tiles in the descriptor loop, paged on staged K / V): ragged and
    paged causal prefill at (16, 1024), where paged stands at 0.66x cuDNN."""
    from .attention_prefill import _paged_case, _ragged_case, _tflops

    for b, l in ((16, 1024),):
        _emit_sdpa("tile16", b, l)
        for tile in ("", "128,64,8,3", "64,32,4,4", "128,64,8,2", "64,64,4,4", "64,128,4,2"):
            if tile:
                os.environ["FLASHINFER_PREFILL_TILE"] = tile
            for name, make in (("ragged", _ragged_case), ("paged", _paged_case)):
                try:
                    w, fns = make(b, l, 1)
                    us = time_device_us(fns, warmup=2, reps=10)
                    emit(section="tile16", b=b, l=l, case=name, tile=tile or "table", us=round(us, 2),
                         tflops=round(_tflops(b, l, us), 1), staged=bool(getattr(w, "_staging_bytes", 0)))
                except Exception as e:
                    emit(section="tile16", b=b, l=l, case=name, tile=tile or "table",
                         error=f"{type(e).__name__}: {str(e)[:200]}")
                torch.cuda.empty_cache()
            os.environ.pop("FLASHINFER_PREFILL_TILE", None)


SECTIONS = {"tile16": sweep_tile16, "opt_in": sweep_opt_in, "stage": sweep_stage, "fused": sweep_fused, "flush": sweep_flush, "norm": sweep_norm, "rope": sweep_rope, "decode": sweep_decode,
            "decode_h200": sweep_decode_h200, "norm2": sweep_norm2, "rope2": sweep_rope2, "prefill2": sweep_prefill2, "prefill3": sweep_prefill3,
            "prefill": sweep_prefill, "steady": sweep_steady, "sampling": sweep_sampling,
            "norm4": sweep_norm4, "norm5": sweep_norm5, "softmax": sweep_softmax, "softmax2": sweep_softmax2, "decode_fp8": sweep_decode_fp8, "decode_fp8b": sweep_decode_fp8b,
            "decode2": sweep_decode2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", default="flush,norm,rope,decode,prefill")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.out:
        OUT.append(args.out)
    ceiling = copy_ceiling_tbps()
    emit(section="ceiling", copy_tbps=round(ceiling, 3), gpu=torch.cuda.get_device_name())
    for name in args.what.split(","):
        guarded(name, lambda name=name: SECTIONS[name](ceiling))


if __name__ == "__main__":
    main()
