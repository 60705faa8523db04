"""Host time of BatchDecodeWithPagedKVCacheWrapper.plan() at batch 256 / 16 with the in-kernel
merge allowed or not (FLASHINFER_DECODE_FUSED_MERGE), alternated; GPU only.
    python scripts/plan_host_ab.py"""
import os
import time

import torch

import flashinfer
from benchmarks.attention_decode import D, H_KV, H_QO, PAGE, _paged, _workspace

for batch, kv_len in ((256, 4096), (16, 4096)):
    cache, indptr, indices, last = _paged(batch, kv_len, torch.bfloat16)
    del cache
    for fused in ("0", "1", "0", "1"):
        os.environ["FLASHINFER_DECODE_FUSED_MERGE"] = fused
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
        plan = lambda: w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16)  # noqa: E731
        plan()
        torch.cuda.synchronize()
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            plan()
            times.append(time.perf_counter() - t0)
        torch.cuda.synchronize()
        times.sort()
        print(f"batch {batch} x {kv_len} fused={fused} (planned {w._merge_counters is not None}): plan host "
              f"median {times[10] * 1e3:.3f} ms, min {times[0] * 1e3:.3f} ms")
