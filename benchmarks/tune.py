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
    """Copy of the rmsnorm-4096x4096 byte count (32 MiB read + 32 MiB written) after a writing flush
    (dirty lines in L2) and after a reading flush (clean lines)."""
    x = torch.randn(4096, 4096, dtype=torch.bfloat16, device="cuda")
    y = torch.empty_like(x)
    for mode in ("write", "read"):
        common.FLUSH_MODE = mode
        us = time_device_us([lambda: y.copy_(x)])
        emit(section="flush", mode=mode, op="copy 4096x4096 bf16", us=round(us, 2), pct=_pct(2 * x.numel() * 2, us, ceiling))
    common.FLUSH_MODE = "write"


# ---- norm -------------------------------------------------------------------------------------

def sweep_norm(ceiling):
    import flashinfer
    from flashinfer_ops.launch import norm as launch_norm
    from flashinfer_ops.reference import norm as ref
    from flashinfer_ops.configs import LaunchConfig

    orig = launch_norm._launch_plan
    ref_rms = torch.compile(ref.rmsnorm, dynamic=False)
    ref_fused = torch.compile(ref.fused_add_rmsnorm, dynamic=False)
    for m, n in ((4096, 4096), (16384, 8192)):
        x = torch.randn(m, n, dtype=torch.bfloat16, device="cuda")
        r = torch.randn(m, n, dtype=torch.bfloat16, device="cuda")
        w = torch.randn(n, dtype=torch.bfloat16, device="cuda")
        o = torch.empty_like(x)
        for mode in ("write", "read"):
            common.FLUSH_MODE = mode
            emit(section="norm", shape=[m, n], mode=mode, setting="torch.compile",
                 rms_us=round(time_device_us([lambda: ref_rms(x, w, 1e-6)]), 2),
                 add_us=round(time_device_us([lambda: ref_fused(x, r, w, 1e-6)]), 2))
            for block_m in (1, 2, 4):
                for warps in (4, 8, 16, 32):
                    if block_m * n // (warps * 32) < 8:
                        continue

                    def plan(family, hidden, bm=block_m, nw=warps):
                        return bm, n, True, LaunchConfig(num_warps=nw, num_stages=1).options(family)

                    launch_norm._launch_plan = plan
                    try:
                        rms = time_device_us([lambda: flashinfer.rmsnorm(x, w, out=o)])
                        add = time_device_us([lambda: flashinfer.fused_add_rmsnorm(x, r, w)])
                        emit(section="norm", shape=[m, n], mode=mode, block_m=block_m, warps=warps,
                             rms_us=round(rms, 2), rms_pct=_pct(2 * m * n * 2, rms, ceiling),
                             add_us=round(add, 2), add_pct=_pct(4 * m * n * 2, add, ceiling))
                    finally:
                        launch_norm._launch_plan = orig
    common.FLUSH_MODE = "write"


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
    for nnz in (4096, 65536):
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


# ---- prefill ----------------------------------------------------------------------------------

PREFILL_TILES = ("table", "128,64,8,3", "128,128,8,3", "128,128,8,2", "128,64,8,4", "128,64,4,3", "64,64,4,3",
                 "64,128,4,3", "128,32,4,3", "256,64,8,3", "256,128,8,2", "128,128,4,2", "64,64,4,4")


def sweep_prefill(ceiling):
    from .attention_prefill import SHAPES, _paged_case, _ragged_case, _sdpa, _tflops

    for b, l in SHAPES:
        for backend in ("FLASH_ATTENTION", "CUDNN_ATTENTION"):
            us, mode = _sdpa(backend, b, l, 1)
            if us:
                emit(section="prefill", b=b, l=l, setting=f"sdpa {backend} {mode}", us=round(us, 2),
                     tflops=round(_tflops(b, l, us), 1))
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


SECTIONS = {"flush": sweep_flush, "norm": sweep_norm, "rope": sweep_rope, "decode": sweep_decode,
            "prefill": sweep_prefill}


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
