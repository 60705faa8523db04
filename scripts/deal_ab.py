"""Experiment (session 14): is the stand-alone nested kernel's gain at (16, 1024) its deal or its
code? Ragged causal bf16 32/8 heads D128 at (16, 1024): the ragged wrapper's persistent run()
(prefill_kernel PERSISTENT) and scripts/persistent_ab.py's nested kernel, each over plan()'s deal
(deal_pairs: ties to the program that got there first) and over persistent_ab's heap deal (ties to
the lowest program index), and the wrapper's 2-D grid; also the lean persistent kernel
(prefill_persistent_kernel, run()'s dealt default) launched directly, and run() with
FLASHINFER_PREFILL_LEAN=0 (prefill_kernel PERSISTENT).

    python scripts/deal_ab.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from benchmarks.common import time_device_us  # noqa: E402
from persistent_ab import HKV, HQ, D, LOG2E, flat_schedule, nested_prefill_kernel, nested_schedule  # noqa: E402


def main():
    import flashinfer
    from triton.tools.tensor_descriptor import TensorDescriptor

    from flashinfer_ops.kernels.attention.prefill import prefill_persistent_kernel

    os.environ["FLASHINFER_PREFILL_DEAL"] = "1"
    torch.manual_seed(0)
    b, l = 16, 1024
    n = b * l
    q = torch.randn(n, HQ, D, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(n, HKV, D, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(n, HKV, D, device="cuda", dtype=torch.bfloat16)
    ind = torch.arange(0, n + 1, l, dtype=torch.int32)
    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
    w.plan(ind, ind, HQ, HKV, D, causal=True, q_data_type=torch.bfloat16)
    work = w._work.cpu().numpy()
    n_w = work.shape[0]
    P = 2 * torch.cuda.get_device_properties(0).multi_processor_count
    mine = w._deal[:P + 2 + n_w * HKV].cpu().numpy().copy()
    offs = mine[:P + 1]
    owned_mine = [mine[P + 1 + offs[p]:P + 1 + offs[p + 1]].tolist() for p in range(P)]
    tiles, prog, items, owned_heap, n_t, diag_from = flat_schedule(work, P, 64, 64, 4, D, "heap")
    heap = np.concatenate([[0], np.cumsum([len(o) for o in owned_heap]),
                           np.concatenate([np.asarray(o, np.int64) for o in owned_heap]), [0]]).astype(np.int32)
    ref = None
    row = {}
    for dname, arr, owned in (("mine", mine, owned_mine), ("heap", heap, owned_heap)):
        w._deal[:arr.shape[0]] = torch.from_numpy(arr).cuda()
        o = w.run(q, k, v)
        ref = o if ref is None else ref
        row[f"run_{dname}"] = round(time_device_us([lambda: w.run(q, k, v)], warmup=3, reps=20), 1)
        row[f"run_{dname}_diff"] = (o.float() - ref.float()).abs().max().item()
        pitems, pbeg, _ = nested_schedule(items, owned, n_t, diag_from, D)
        pit, pb = torch.from_numpy(pitems).cuda(), torch.from_numpy(pbeg).cuda()
        kd = TensorDescriptor(k, [n, HKV * D], [HKV * D, 1], [64, D])
        vd = TensorDescriptor(v, [n, HKV * D], [HKV * D, 1], [64, D])
        o = torch.empty_like(q)

        def nested():
            nested_prefill_kernel[(P,)](q, o, pit, pb, kd, vd, q.stride(0), q.stride(1), o.stride(0), o.stride(1), 4,
                                        D ** -0.5 * LOG2E, D=D, BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=3)
        nested()
        row[f"nested_{dname}"] = round(time_device_us([nested], warmup=3, reps=20), 1)
        row[f"nested_{dname}_diff"] = (o.float() - ref.float()).abs().max().item()
        # the lean persistent kernel (what run() takes by default), launched directly
        d_t = torch.from_numpy(arr).cuda()
        o2 = torch.full_like(q, float("nan"))

        def lean():
            prefill_persistent_kernel[(P,)](
                q, k, v, o2, o2, w._work, d_t, kd, vd, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                v.stride(0), v.stride(1), o2.stride(0), o2.stride(1), 0, 0, n_w, 4, 1, 1, D ** -0.5 * LOG2E,
                1.0, 0, D, 0, D, HEAD_DIM_QK=D, HEAD_DIM_VO=D, BLOCK_M=64, BLOCK_N=64,
                num_warps=4, num_stages=3)
        lean()
        row[f"lean_{dname}"] = round(time_device_us([lean], warmup=3, reps=20), 1)
        row[f"lean_{dname}_diff"] = (o2.float() - ref.float()).abs().max().item()
        os.environ["FLASHINFER_PREFILL_LEAN"] = "0"
        row[f"run_full_{dname}"] = round(time_device_us([lambda: w.run(q, k, v)], warmup=3, reps=20), 1)
        os.environ["FLASHINFER_PREFILL_LEAN"] = "1"
    os.environ["FLASHINFER_PREFILL_DEAL"] = "0"
    w.plan(ind, ind, HQ, HKV, D, causal=True, q_data_type=torch.bfloat16)
    row["run_grid2d"] = round(time_device_us([lambda: w.run(q, k, v)], warmup=3, reps=20), 1)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
