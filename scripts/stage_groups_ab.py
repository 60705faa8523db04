"""A/B (GPU): paged causal prefill on staged K / V, pipelined in request groups (the op's copy of
group g + 1 on a side stream while group g attends; FLASHINFER_PREFILL_STAGE_GROUPS) against one
copy + one dense launch (groups 1), for copy chunks of 64 and 32 rows (STAGE_ROWS: 64 rows take
110 registers a thread, 32 take 56, and only <= 80 fit beside two dense programs an SM).

    PYTHONPATH=$PWD python scripts/stage_groups_ab.py [--shapes 16x1024,4x4096,1x8192] [--groups 1,2,4,8]
        [--rows 64,32] [--best-to FILE]

One JSON line a setting: eager us (device time of run() calls, reading flush), graph us (the same
run() replayed from a CUDA graph), host us of an eager run(), max |diff| against groups 1, and
SDPA cuDNN's time on the same shape as dense tensors; then the setting with the least eager time
relative to cuDNN summed over the shapes.
"""
import argparse
import json
import os
import time

import torch

import flashinfer  # noqa: F401  (registers the ops)
from benchmarks.attention_prefill import _paged_case, _sdpa
from benchmarks.common import time_device_us
from flashinfer_ops.launch.attention import prefill as lp


def graphed(fn):
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def host_us(fn, n=20):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="16x1024,4x4096,1x8192")
    ap.add_argument("--groups", default="1,2,4,8")
    ap.add_argument("--rows", default="64,32")
    ap.add_argument("--best-to", default="", help="write the best setting as environment assignments here")
    args = ap.parse_args()
    cudnn = {}
    for shape in args.shapes.split(","):
        b, l = (int(x) for x in shape.split("x"))
        cudnn[shape] = _sdpa("CUDNN_ATTENTION", b, l, 1)[0]
        print(json.dumps(dict(b=b, l=l, sdpa_cudnn_us=cudnn[shape])), flush=True)
    total = {}
    for rows in args.rows.split(","):
        lp.STAGE_ROWS = int(rows)
        for shape in args.shapes.split(","):
            b, l = (int(x) for x in shape.split("x"))
            ref = None
            for n in args.groups.split(","):
                os.environ["FLASHINFER_PREFILL_STAGE_GROUPS"] = n
                torch.manual_seed(0)
                w, fns = _paged_case(b, l, 1)
                assert w._staging_bytes, "the plan did not stage"
                eager = time_device_us(fns, warmup=2, reps=10)
                host = host_us(fns[0])
                out = fns[0]().float()
                torch.cuda.synchronize()
                ref = out if ref is None else ref
                graph = time_device_us([graphed(fns[0])], warmup=2, reps=20)
                c = cudnn[shape]
                total[(rows, n)] = total.get((rows, n), 0.0) + eager / (c or 1.0)
                print(json.dumps(dict(rows=int(rows), b=b, l=l, groups=n, work=list(w._work.shape),
                                      eager_us=round(eager, 2), graph_us=round(graph, 2), host_us=round(host, 1),
                                      ratio_vs_cudnn_eager=round(c / eager, 3) if c else None,
                                      max_abs_diff=float((out - ref).abs().max()),
                                      nan=bool(torch.isnan(out).any()))), flush=True)
                del w, fns
                torch.cuda.empty_cache()
    rows, n = min(total, key=total.get)
    print(json.dumps(dict(best_rows=int(rows), best_groups=int(n))), flush=True)
    if args.best_to:
        with open(args.best_to, "w") as f:
            f.write(f"FLASHINFER_PREFILL_STAGE_ROWS={rows} FLASHINFER_PREFILL_STAGE_GROUPS={n}\n")


if __name__ == "__main__":
    main()
