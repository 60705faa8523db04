"""Experiment (session 15): paged causal prefill at (16, 1024), bf16 32/8 heads D128, page 16,
pages shuffled: prefill_persistent_kernel reading the pages in place through 4-D descriptors
(PAGE=16, launched directly over the deal plan() makes for the paged kernel) against run() on
staged K / V (the dealt lean kernel on the staging buffer; with and without the dependent launch),
and the ragged lean kernel's run() on the same K / V as contiguous rows.

    python scripts/paged_lean_ab.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.common import time_device_us  # noqa: E402


def main():
    import flashinfer
    from triton.tools.tensor_descriptor import TensorDescriptor

    from flashinfer_ops.kernels.attention.prefill import LOG2E, prefill_persistent_kernel

    torch.manual_seed(0)
    b, l, hq, hk, d, page = 16, 1024, 32, 8, 128, 16
    ind = torch.arange(0, (b + 1) * l, l, dtype=torch.int32)
    q = torch.randn(b * l, hq, d, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(b * l, hk, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    n_pages = b * l // page
    perm = torch.randperm(n_pages)
    kc = torch.empty(n_pages, page, hk, d, device="cuda", dtype=torch.bfloat16)
    vc = torch.empty_like(kc)
    kc[perm] = k.view(n_pages, page, hk, d)
    vc[perm] = v.view(n_pages, page, hk, d)
    kv_ip = torch.arange(0, n_pages + 1, l // page, dtype=torch.int32)
    last = torch.full((b,), page, dtype=torch.int32)
    row = {}
    rag = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
    rag.plan(ind, ind, hq, hk, d, causal=True, q_data_type=torch.bfloat16)
    ref = rag.run(q, k, v)
    row["ragged_run"] = round(time_device_us([lambda: rag.run(q, k, v)], warmup=3, reps=20), 1)
    for pdl in ("0", "1"):
        os.environ["FLASHINFER_PREFILL_STAGE_PDL"] = pdl
        pag = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
        pag.plan(ind, kv_ip, perm.to(torch.int32), last, hq, hk, d, page, causal=True, q_data_type=torch.bfloat16)
        o = pag.run(q, (kc, vc))
        row[f"staged_pdl{pdl}"] = round(time_device_us([lambda: pag.run(q, (kc, vc))], warmup=3, reps=20), 1)
        row[f"staged_pdl{pdl}_diff"] = (o.float() - ref.float()).abs().max().item()
    os.environ["FLASHINFER_PREFILL_STAGE_PDL"] = "0"
    # in place: the paged kernel (2-D grid, its own 128-row tile) for reference; the lean kernel
    # launched directly over a 64-row schedule of the same requests and its deal (as plan() would)
    import numpy as np

    from flashinfer_ops.launch.attention.prefill import build_work, deal_pairs
    os.environ["FLASHINFER_PREFILL_STAGE"] = "0"
    pag = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
    pag.plan(ind, kv_ip, perm.to(torch.int32), last, hq, hk, d, page, causal=True, q_data_type=torch.bfloat16)
    o_paged = pag.run(q, (kc, vc))
    row["paged_kernel_2d"] = round(time_device_us([lambda: pag.run(q, (kc, vc))], warmup=3, reps=20), 1)
    P = 2 * torch.cuda.get_device_properties(0).multi_processor_count
    kv_lens = np.full(b, l)
    work_np, cost = build_work(ind.numpy(), kv_lens, kv_ip.numpy()[:-1], np.zeros(b, np.int64), hq // hk, 64, True,
                               with_cost=True)
    deal_np = deal_pairs(cost, work_np[:, 2] > 0, hk, P, 64)
    work_t, deal_t = torch.from_numpy(work_np).cuda(), torch.from_numpy(deal_np.copy()).cuda()
    idx = perm.to(torch.int32).cuda()
    n_w = work_np.shape[0]
    kd = TensorDescriptor(kc, list(kc.shape), list(kc.stride()), [1, page, 1, d])
    vd = TensorDescriptor(vc, list(vc.shape), list(vc.stride()), [1, page, 1, d])
    for lse in (False, True):
        o2 = torch.full_like(q, float("nan"))
        l2 = torch.full(q.shape[:2], float("nan"), device="cuda")

        def lean():
            prefill_persistent_kernel[(P,)](
                q, kc, vc, o2, l2, work_t, deal_t, kd, vd, q.stride(0), q.stride(1), kc.stride(1), kc.stride(2),
                vc.stride(1), vc.stride(2), o2.stride(0), o2.stride(1), l2.stride(0), l2.stride(1), n_w, hq // hk, 1,
                1, d ** -0.5 * LOG2E, 1.0, 0, 0, 0, 0, idx, n_pages, HEAD_DIM_QK=d, HEAD_DIM_VO=d, BLOCK_M=64,
                BLOCK_N=64, WRITE_LSE=lse, PAGE=page, num_warps=4, num_stages=3)
        lean()
        row[f"lean_inplace_lse{int(lse)}"] = round(time_device_us([lean], warmup=3, reps=20), 1)
        row[f"lean_inplace_lse{int(lse)}_diff"] = (o2.float() - ref.float()).abs().max().item()
        row[f"lean_inplace_vs_paged_kernel"] = (o2.float() - o_paged.float()).abs().max().item()
        for st in (2, 4):
            def lean_st():
                prefill_persistent_kernel[(P,)](
                    q, kc, vc, o2, l2, work_t, deal_t, kd, vd, q.stride(0), q.stride(1), kc.stride(1),
                    kc.stride(2), vc.stride(1), vc.stride(2), o2.stride(0), o2.stride(1), l2.stride(0), l2.stride(1),
                    n_w, hq // hk, 1, 1, d ** -0.5 * LOG2E, 1.0, 0, 0, 0, 0, idx, n_pages, HEAD_DIM_QK=d,
                    HEAD_DIM_VO=d, BLOCK_M=64, BLOCK_N=64, WRITE_LSE=lse, PAGE=page, num_warps=4, num_stages=st)
            if not lse:
                try:
                    lean_st()
                    row[f"lean_inplace_stages{st}"] = round(time_device_us([lean_st], warmup=3, reps=20), 1)
                except Exception as e:  # noqa: BLE001  (an experiment: record, go on)
                    row[f"lean_inplace_stages{st}"] = repr(e)[:120]
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
