"""Experiment (GPU): paged causal prefill on staged K / V with the copy overlapped by stream order
instead of in-kernel waits. The batch's requests are split into G groups; group g's K / V copy
(stage_paged_kv_kernel) runs on a side stream and records an event; the dense kernel of group g
waits for that event. So the copy of group g + 1 runs while group g attends, with no spin (no
deadlock question). `dense_streams` 1: every dense launch on the main stream (a launch's tail is
not filled by the next group); 2: dense launches alternate between the main stream and a second
one, so group g + 1 may start while group g drains. G = 1 is what run() does today.

Every setting is captured in a CUDA graph and timed by replaying it (the host launches of several
groups would otherwise show up as gaps between kernels).

    PYTHONPATH=$PWD python scripts/stage_stream_ab.py [--shapes 16x1024,4x4096] [--rows 64,32]

Prints one JSON line a setting: us (device time, reading flush), max |diff| against run().
"""
import argparse
import json
import math

import torch

import flashinfer  # noqa: F401  (registers the ops)
from benchmarks.attention_prefill import _paged_case
from benchmarks.common import time_device_us
from flashinfer_ops.launch.attention import prefill as lp


def pipeline(w, q, cache, out, groups, copy_stream, dense_side):
    """run() of the staged plan of wrapper w, split into request groups (lists of request ids);
    dense_side: None (every dense launch on the current stream) or a second stream that takes the
    odd groups' dense launches."""
    k_cache, v_cache = cache.unbind(1)
    page = k_cache.shape[1]
    ks_, vs_ = lp._paged_strides(k_cache, 0), lp._paged_strides(v_cache, 0)
    work = w._work[: int((w._work[:, 2] > 0).sum())]  # the live rows come first; the buffer has spare ones
    req = work[:, 6]
    parts = [work[torch.isin(req, torch.tensor(g, device=work.device, dtype=work.dtype))].contiguous()
             for g in groups]
    h_kv = ks_[3]
    scal = dict(mask_mode=1, pos_encoding_mode=0, sm_scale=1.0 / math.sqrt(q.shape[2]), window_left=-1,
                logits_soft_cap=0.0, rope_scale=1.0, rope_theta=1e4, v_scale=1.0)

    def run():
        main = torch.cuda.current_stream()
        events = []
        copy_stream.wait_stream(main)
        if dense_side is not None:
            dense_side.wait_stream(main)
        with torch.cuda.stream(copy_stream):
            for p in parts:
                ks, vs = lp._stage_paged(k_cache, v_cache, p, w._op_indices, w._staging_buf, w._block_m,
                                         q.shape[1] // h_kv, ks_, vs_, page)
                ev = torch.cuda.Event()
                ev.record(copy_stream)
                events.append(ev)
        for i, (p, ev) in enumerate(zip(parts, events)):
            s = dense_side if (dense_side is not None and i % 2) else main
            s.wait_event(ev)
            with torch.cuda.stream(s):
                lp._launch(out, None, q, ks, vs, p, None, None, paged=False, single=False, qo_len=0, kv_len=0,
                           n_programs=p.shape[0], page_size=1, k_strides=lp._dense_strides(ks, 0),
                           v_strides=lp._dense_strides(vs, 0), n_tok=ks.shape[0], kv_start_mul=page, **scal)
        if dense_side is not None:
            main.wait_stream(dense_side)
        return out
    return run


def graphed(fn):
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="16x1024,4x4096")
    ap.add_argument("--rows", default="64,32", help="copy chunk heights (STAGE_ROWS) to try")
    args = ap.parse_args()
    for rows, shape in [(r, s) for r in args.rows.split(",") for s in args.shapes.split(",")]:
        # 64 rows take 110 registers a thread, 32 take 56: only the latter fits beside two dense
        # programs an SM (216 x 128 x 2 of the 65536 registers leave 80 a thread of 128)
        lp.STAGE_ROWS = int(rows)
        b, l = (int(x) for x in shape.split("x"))
        torch.manual_seed(0)
        w, fns = _paged_case(b, l, 1)
        assert w._staging_bytes, "the plan did not stage"
        us = time_device_us(fns, warmup=2, reps=10)
        ref = fns[0]().float()
        torch.cuda.synchronize()
        print(json.dumps(dict(rows=lp.STAGE_ROWS, b=b, l=l, setting="run() eager", us=round(us, 2))), flush=True)
        us = time_device_us([graphed(fns[0])], warmup=2, reps=20)
        print(json.dumps(dict(rows=lp.STAGE_ROWS, b=b, l=l, setting="run() graph", us=round(us, 2))), flush=True)
        q, cache = fns[0].__defaults__[0], fns[0].__defaults__[1]
        for prio in (0, -1):
            stream = torch.cuda.Stream(priority=prio)
            for dense_streams in (1, 2):
                side = torch.cuda.Stream() if dense_streams == 2 else None
                for n in (1, 2, 4, 8, 16):
                    if n > b or (dense_streams == 2 and n == 1):
                        continue
                    groups = [list(range(i * b // n, (i + 1) * b // n)) for i in range(n)]
                    out = torch.full_like(q, float("nan"))
                    replay = graphed(pipeline(w, q, cache, out, groups, stream, side))
                    us = time_device_us([replay], warmup=2, reps=20)
                    out.fill_(float("nan"))
                    replay()
                    torch.cuda.synchronize()
                    diff = float((out.float() - ref).abs().max())
                    print(json.dumps(dict(rows=lp.STAGE_ROWS, b=b, l=l, groups=n, copy_prio=prio, dense_streams=dense_streams,
                                          us=round(us, 2), max_abs_diff=diff)), flush=True)
        del w, fns
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
