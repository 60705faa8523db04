"""Timing helpers shared by every benchmark module (DESIGN.md §6).

All device times are medians over many runs, measured with CUDA events, rotating over several
input sets so repeated runs do not just measure L2. Host cost is reported separately: eager
microseconds per call (what a Python caller pays) and microseconds per CUDA-graph replay.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, List, Optional, Sequence

import torch


def input_sets_for(bytes_per_set: int, l2_bytes: int = 50 << 20, max_sets: int = 8) -> int:
    """How many distinct input sets make a rotation larger than ~2x the L2 cache."""
    if bytes_per_set <= 0:
        return 1
    return max(1, min(max_sets, -(-2 * l2_bytes // bytes_per_set)))


_L2_FLUSH = {}
# "read" (default): reduce over a 512 MiB buffer, so L2 is left holding clean lines of it and the
# timed call's inputs are not cached. "write": zero the buffer (Triton's do_bench method), which
# leaves L2 full of dirty lines whose write-back the timed call then pays for: on the H100 a plain
# 64 MiB copy measured that way reaches 80% of the copy ceiling, 100% after the reading flush
# (NOTES.md, 2026-12-06). The copy ceiling is measured with the same flush as every row.
FLUSH_MODE = os.environ.get("FLASHINFER_BENCH_FLUSH", "read")
# ~200 us at the H100 / H200 boost clock (~2 GHz)
SLEEP_CYCLES = int(os.environ.get("FLASHINFER_BENCH_SLEEP_CYCLES", 400_000))


def flush_l2() -> None:
    """Evict L2 with a pass over a buffer larger than L2 (cold cache for the next call; FLUSH_MODE
    says whether the pass reads or writes it), then keep the GPU busy for another ~200 us: the
    host's launch latency of the timed call hides behind both instead of being counted as device
    time."""
    buf = _L2_FLUSH.get("buf")
    if buf is None:
        buf = _L2_FLUSH["buf"] = torch.empty(512 << 20, dtype=torch.uint8, device="cuda")
        _L2_FLUSH["sink"] = torch.empty((), dtype=torch.int64, device="cuda")
    if FLUSH_MODE == "read":
        torch.amax(buf.view(torch.int64), dim=0, out=_L2_FLUSH["sink"])
    else:
        buf.zero_()
    # Then keep the GPU busy without touching memory, so the host's cost of the timed call
    # (eager decode run() measured 120-150 us on the H200 machine, more than the ~160 us flush
    # leaves in hand) is not counted as device time; host cost is reported separately.
    torch.cuda._sleep(SLEEP_CYCLES)


def time_device_us(fns: Sequence[Callable[[], object]], warmup: int = 5, reps: int = 50) -> float:
    """Median device time (us) of one call with a cold L2, cycling through `fns` (one closure per
    input set)."""
    for _ in range(warmup):
        for f in fns:
            f()
    torch.cuda.synchronize()
    times: List[float] = []
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        f = fns[i % len(fns)]
        flush_l2()
        starts[i].record()
        f()
        ends[i].record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends)]
    return statistics.median(times)


def steady_us(fns: Sequence[Callable[[], object]], calls: int = 0, reps: int = 10) -> Optional[float]:
    """Device us per call in steady state: back-to-back calls cycling through `fns` (input sets
    totalling more than L2, see input_sets_for), captured in one CUDA graph so host launch cost is
    excluded. Each call finds its inputs outside L2 and pays for writing back the dirty lines the
    previous call left: the STREAM-style throughput the copy ceiling itself is measured with. The
    cold-L2 timing (time_device_us) instead charges a call with the write-back of the flush
    buffer's dirty lines when FLUSH_MODE is "write" (a plain 64 MiB copy reaches only ~80% of the
    ceiling that way)."""
    n = calls or max(8, 2 * len(fns))
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for f in fns:
                f()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for i in range(n):
                fns[i % len(fns)]()
        g.replay()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(reps):
            start.record()
            g.replay()
            end.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(end) * 1e3 / n)
        del g
        return statistics.median(ts)
    except Exception as e:  # report, don't hide
        print(f"  steady-state graph capture failed: {type(e).__name__}: {e}")
        return None


def host_us_eager(fn: Callable[[], object], reps: int = 200) -> float:
    """Host-side microseconds per eager call (launch overhead), measured with the GPU kept busy
    only by these calls: median over batches of calls without synchronising in between."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps // 5):
            fn()
        samples.append((time.perf_counter() - t0) * 1e6 / (reps // 5))
        torch.cuda.synchronize()
    return statistics.median(samples)


def graph_replay_us(fn: Callable[[], object], calls_per_graph: int = 20, reps: int = 20) -> Optional[float]:
    """Device microseconds per call when `calls_per_graph` calls are captured in one CUDA graph."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(calls_per_graph):
                fn()
        g.replay()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(reps):
            start.record()
            g.replay()
            end.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(end) * 1e3 / calls_per_graph)
        return statistics.median(ts)
    except Exception as e:  # report, don't hide: a row without a graph number says why
        print(f"  graph capture failed: {type(e).__name__}: {e}")
        return None


def copy_ceiling_tbps(nbytes: int = 2 << 30) -> float:
    """Device-to-device copy bandwidth, counting bytes read + written (TB/s)."""
    n = nbytes // 2
    a = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
    b = torch.empty_like(a)
    us = time_device_us([lambda: b.copy_(a)], warmup=3, reps=20)
    return 2 * n / (us * 1e-6) / 1e12


def matmul_ceiling_tflops(n: int = 8192) -> float:
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    us = time_device_us([lambda: a @ b], warmup=3, reps=10)
    return 2 * n**3 / (us * 1e-6) / 1e12


def row(op: str, shape, dtype, us: float, nbytes: int, peer: str = "", peer_us: Optional[float] = None,
        host_us: Optional[float] = None, graph_us: Optional[float] = None, us_steady: Optional[float] = None,
        peer_us_steady: Optional[float] = None, **extra) -> dict:
    """One benchmark row; the runner adds the ratios to the copy ceiling, gpu and date.
    us / peer_us: cold L2 (time_device_us); us_steady / peer_us_steady: steady state (steady_us)."""
    r = dict(op=op, shape=str(shape), dtype=str(dtype).replace("torch.", ""), us=round(us, 2), bytes=int(nbytes),
             tbps=round(nbytes / (us * 1e-6) / 1e12, 3) if nbytes else None, pct_of_copy_ceiling=None,
             peer=peer or None, peer_us=round(peer_us, 2) if peer_us else None,
             speedup_vs_peer=round(peer_us / us, 3) if peer_us else None,
             host_us_eager=round(host_us, 2) if host_us else None,
             us_graph_replay=round(graph_us, 2) if graph_us else None)
    if us_steady:
        r.update(us_steady=round(us_steady, 2), pct_steady=None)
        if peer_us_steady:
            r.update(peer_us_steady=round(peer_us_steady, 2), speedup_steady=round(peer_us_steady / us_steady, 3))
    r.update(extra)
    return r
