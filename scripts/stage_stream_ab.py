"""Experiment (GPU): paged causal prefill on staged K / V with the copy overlapped by stream order
instead of in-kernel waits. The batch's requests are split into G groups; group g's K / V copy
(stage_paged_kv_kernel) runs on a side stream and records an event; the dense kernel of group g
runs on the main stream after waiting for that event. So the copy of group g + 1 runs while
group g attends, with no spin (no deadlock question), at the price of one dense launch (and its
tail) a group. G = 1 is what run() does today (copy, then one dense launch).

    PYTHONPATH=$PWD python scripts/stage_stream_ab.py [--shapes 16x1024,4x4096]

Prints one JSON line a setting: us (device time, reading flush), max |diff| against G = 1.
"""
import argparse
import json
import math

import torch

import flashinfer  # noqa: F401  (registers the ops)
from benchmarks.attention_prefill import _paged_case
from benchmarks.common import time_device_us
from flashinfer_ops.launch.attention import prefill as lp


def pipeline(w, q, cache, out, groups, copy_stream):
    """run() of the staged plan of wrapper w, split into request groups (lists of request ids)."""
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
        with torch.cuda.stream(copy_stream):
            for p in parts:
                ks, vs = lp._stage_paged(k_cache, v_cache, p, w._op_indices, w._staging_buf, w._block_m,
                                         q.shape[1] // h_kv, ks_, vs_, page)
                ev = torch.cuda.Event()
                ev.record(copy_stream)
                events.append(ev)
        for p, ev in zip(parts, events):
            main.wait_event(ev)
            lp._launch(out, None, q, ks, vs, p, None, None, paged=False, single=False, qo_len=0, kv_len=0,
                       n_programs=p.shape[0], page_size=1, k_strides=lp._dense_strides(ks, 0),
                       v_strides=lp._dense_strides(vs, 0), n_tok=ks.shape[0], kv_start_mul=page, **scal)
        return out
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="16x1024,4x4096")
    args = ap.parse_args()
    for shape in args.shapes.split(","):
        b, l = (int(x) for x in shape.split("x"))
        torch.manual_seed(0)
        w, fns = _paged_case(b, l, 1)
        assert w._staging_bytes, "the plan did not stage"
        q, cache = fns[0].__defaults__[0], fns[0].__defaults__[1]
        us = time_device_us(fns, warmup=2, reps=10)
        ref = fns[0]().float()
        print(json.dumps(dict(b=b, l=l, setting="run()", us=round(us, 2))), flush=True)
        for prio in (0, -1):
            stream = torch.cuda.Stream(priority=prio)
            for n in (1, 2, 4, 8):
                if n > b:
                    continue
                groups = [list(range(i * b // n, (i + 1) * b // n)) for i in range(n)]
                out = torch.empty_like(q)
                run = pipeline(w, q, cache, out, groups, stream)
                us = time_device_us([run], warmup=2, reps=10)
                torch.cuda.synchronize()
                diff = float((run().float() - ref).abs().max())
                torch.cuda.synchronize()
                print(json.dumps(dict(b=b, l=l, groups=n, copy_stream_priority=prio, us=round(us, 2),
                                      max_abs_diff=diff)), flush=True)
        del w, fns
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
