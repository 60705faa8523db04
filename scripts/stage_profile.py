"""Per-kernel device time of the benchmark's staged paged prefill (copy kernel, dense kernel) and
of ragged prefill at the issue-3 shapes, from the torch profiler (median over 10 calls, cold L2
each call as in the benchmark).

    python scripts/stage_profile.py          (FLASHINFER_PREFILL_STAGE_ROWS etc. apply)
"""
import collections
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from benchmarks.attention_prefill import SHAPES, _paged_case, _ragged_case  # noqa: E402
from benchmarks.common import flush_l2  # noqa: E402


def _kernel_us(fns, calls=10):
    for f in fns * 2:
        f()
    torch.cuda.synchronize()
    per = collections.defaultdict(list)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for i in range(calls):
            flush_l2()
            fns[i % len(fns)]()
        torch.cuda.synchronize()
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA and ("prefill" in ev.name or "stage" in ev.name):
            per[ev.name.split("(")[0][:40]].append(ev.device_time)
    return {k: round(statistics.median(v), 1) for k, v in per.items()}


def main():
    for b, l in SHAPES:
        for name, make in (("ragged", _ragged_case), ("paged_p16", _paged_case)):
            _, fns = make(b, l, 2)
            env = {k: os.environ.get(f"FLASHINFER_PREFILL_{k.upper()}", "default") for k in ("stage_rows", "stage_pdl")}
            print(json.dumps({"shape": f"{b}x{l}", "case": name, **env, **_kernel_us(fns)}), flush=True)


if __name__ == "__main__":
    main()
