"""Experiment (session 15): can V be read from the paged cache in place while K comes from a dense
(staged) copy? Then the staged copy would move K only (half of its ~44 us at (16, 1024)).
Stand-alone persistent kernel: K tiles [64, D] through a 2-D descriptor over contiguous K, V as
four page pieces [16, D] through a 4-D descriptor over the shuffled page-16 cache, P split into
four [64, 16] pieces for the P.V dots. Full pages only (every request's kv_len a multiple of 16,
as at (16, 1024)); against the ragged run() and the lean kernel on the same deal.

    python scripts/vpaged_ab.py
"""
import json
import os
import sys

import numpy as np
import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.common import time_device_us  # noqa: E402
from flashinfer_ops.kernels.attention.prefill import _column_pieces, _deal_range, _dealt_pair  # noqa: E402


@triton.jit
def vpaged_kernel(q_ptr, o_ptr, work_ptr, deal_ptr, idx_ptr, k_desc, v_desc, stride_qn, stride_qh, n_work, group,
                  qk_scale, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PAGE: tl.constexpr):
    slots, beg, end = _deal_range(deal_ptr)
    offs_b = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    offs_n = tl.arange(0, BLOCK_N)
    for i in range(beg, end):
        slot, row0, qo_start, qo_len, kv_start, kv_len, _ = _dealt_pair(slots, i, work_ptr, n_work)
        kvh = slot // n_work
        qi = (row0 + offs_b) // group
        hq = kvh * group + (row0 + offs_b) % group
        row_ok = qi < qo_len
        row_pos = qi + kv_len - qo_len
        q_rows = (qo_start + qi).to(tl.int64) * stride_qn + hq.to(tl.int64) * stride_qh
        q = tl.load(q_ptr + q_rows[:, None] + offs_d[None, :], mask=row_ok[:, None], other=0)
        i_max = tl.minimum((row0 + BLOCK_M - 1) // group, qo_len - 1)
        hi = tl.minimum(kv_len, i_max + kv_len - qo_len + 1)
        mask_from = ((row0 // group + kv_len - qo_len + 1) // BLOCK_N) * BLOCK_N
        acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        tok0 = kv_start * PAGE  # contiguous K: the request's first row (page offset * PAGE here)
        for start_n in tl.range(0, tl.cdiv(hi, BLOCK_N) * BLOCK_N, BLOCK_N):
            k = k_desc.load([tok0 + start_n, kvh * D])
            s = tl.dot(q, tl.trans(k)) * qk_scale
            if start_n >= mask_from:
                cols = start_n + offs_n
                s = tl.where((cols[None, :] <= row_pos[:, None]) & (cols < kv_len)[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.exp2(s - m_new[:, None])
            alpha = tl.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            pg = start_n // PAGE
            p0, p1, p2, p3 = _column_pieces(p.to(tl.bfloat16), 4)
            id0 = tl.load(idx_ptr + kv_start + pg)
            id1 = tl.load(idx_ptr + kv_start + pg + 1)
            id2 = tl.load(idx_ptr + kv_start + pg + 2)
            id3 = tl.load(idx_ptr + kv_start + pg + 3)
            v0 = v_desc.load([id0, 0, kvh, 0]).reshape([PAGE, D])
            v1 = v_desc.load([id1, 0, kvh, 0]).reshape([PAGE, D])
            v2 = v_desc.load([id2, 0, kvh, 0]).reshape([PAGE, D])
            v3 = v_desc.load([id3, 0, kvh, 0]).reshape([PAGE, D])
            acc = tl.dot(p0, v0, acc * alpha[:, None])
            acc = tl.dot(p1, v1, acc)
            acc = tl.dot(p2, v2, acc)
            acc = tl.dot(p3, v3, acc)
            m_i = m_new
        o = acc / l_i[:, None]
        tl.store(o_ptr + q_rows[:, None] + offs_d[None, :], o.to(tl.bfloat16), mask=row_ok[:, None])


def main():
    import flashinfer
    from triton.tools.tensor_descriptor import TensorDescriptor

    from flashinfer_ops.kernels.attention.prefill import LOG2E, prefill_persistent_kernel
    from flashinfer_ops.launch.attention.prefill import build_work, deal_pairs

    torch.manual_seed(0)
    b, l, hq, hk, d, page = 16, 1024, 32, 8, 128, 16
    n = b * l
    ind = torch.arange(0, n + 1, l, dtype=torch.int32)
    q = torch.randn(n, hq, d, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(n, hk, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    n_pages = n // page
    perm = torch.randperm(n_pages)
    vc = torch.empty(n_pages, page, hk, d, device="cuda", dtype=torch.bfloat16)
    vc[perm] = v.view(n_pages, page, hk, d)
    rag = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
    rag.plan(ind, ind, hq, hk, d, causal=True, q_data_type=torch.bfloat16)
    ref = rag.run(q, k, v)
    row = {"ragged_run": round(time_device_us([lambda: rag.run(q, k, v)], warmup=3, reps=20), 1)}
    P = 2 * torch.cuda.get_device_properties(0).multi_processor_count
    page_ip = np.arange(0, n_pages + 1, l // page)
    work, cost = build_work(ind.numpy(), np.full(b, l), page_ip[:-1], np.zeros(b, np.int64), hq // hk, 64, True,
                            with_cost=True)
    deal = torch.from_numpy(deal_pairs(cost, work[:, 2] > 0, hk, P, 64).copy()).cuda()
    work_t = torch.from_numpy(work).cuda()
    idx = perm.to(torch.int32).cuda()
    kd = TensorDescriptor(k, [n, hk * d], [hk * d, 1], [64, d])
    vd_dense = TensorDescriptor(v, [n, hk * d], [hk * d, 1], [64, d])
    vd = TensorDescriptor(vc, list(vc.shape), list(vc.stride()), [1, page, 1, d])
    o = torch.full_like(q, float("nan"))
    for st in (2, 3, 4, 5):
        def go():
            vpaged_kernel[(P,)](q, o, work_t, deal, idx, kd, vd, q.stride(0), q.stride(1), work.shape[0], hq // hk,
                                d ** -0.5 * LOG2E, D=d, BLOCK_M=64, BLOCK_N=64, PAGE=page, num_warps=4, num_stages=st)
        try:
            go()
            row[f"vpaged_stages{st}"] = round(time_device_us([go], warmup=3, reps=20), 1)
            row[f"vpaged_stages{st}_diff"] = (o.float() - ref.float()).abs().max().item()
        except Exception as e:  # noqa: BLE001  (an experiment: record, go on)
            row[f"vpaged_stages{st}"] = repr(e)[:160]
    # the lean kernel on the same (dense) K / V, over a deal of the same 64-row schedule in rows
    work_r, cost_r = build_work(ind.numpy(), np.full(b, l), ind.numpy()[:-1], np.zeros(b, np.int64), hq // hk, 64,
                                True, with_cost=True)
    deal_r = torch.from_numpy(deal_pairs(cost_r, work_r[:, 2] > 0, hk, P, 64).copy()).cuda()
    work_rt = torch.from_numpy(work_r).cuda()
    o2 = torch.full_like(q, float("nan"))

    def lean():
        prefill_persistent_kernel[(P,)](
            q, k, v, o2, o2, work_rt, deal_r, kd, vd_dense, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            v.stride(0), v.stride(1), o2.stride(0), o2.stride(1), 0, 0, work_r.shape[0], hq // hk, 1, 1,
            d ** -0.5 * LOG2E, 1.0, 0, d, 0, d, HEAD_DIM_QK=d, HEAD_DIM_VO=d, BLOCK_M=64, BLOCK_N=64,
            num_warps=4, num_stages=3)
    lean()
    row["lean_dense"] = round(time_device_us([lean], warmup=3, reps=20), 1)
    row["lean_dense_diff"] = (o2.float() - ref.float()).abs().max().item()
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
