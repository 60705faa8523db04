"""Experiment: does a persistent prefill grid whose K / V loop runs across work items (one flat
software-pipelined loop per program, so the next item's first K / V tiles are in flight while the
current item finishes) beat the one-item-a-program grid at short causal sequences?

Stand-alone lean kernels (dense NHD K / V through tensor descriptors, causal, GQA rows packed as
prefill_kernel packs them, no other features) timed against the ragged wrapper's run() on the same
inputs: nested loops (items, then their tiles), one flat loop over a program's tiles (tile words
loaded per tile), and flat2 (coordinates carried in registers); each on 2 programs an SM with the
items assigned by a finish-time heap or dealt statically ("snake"), and one item a program (the
control: same code, no persistence). Outputs are compared with the wrapper's.

    python scripts/persistent_ab.py [--shapes 16x1024,4x4096,1x8192] [--stages 3] [--nested-only]
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import sys

import numpy as np
import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

HQ, HKV, D = 32, 8, 128
LOG2E = 1.4426950408889634

FIRST, LAST, DIAG = 1, 2, 4


@triton.jit
def flat_prefill_kernel(q_ptr, o_ptr, tiles_ptr, prog_ptr, items_ptr, k_desc, v_desc,
                        stride_qn, stride_qh, stride_on, stride_oh, group, qk_scale,
                        D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program p runs tiles [prog[p], prog[p + 1]) of the flat tile list: tile t = (K / V row,
    column, flags | start_n << 8, item). An item's first tile loads its Q rows and resets the
    softmax state, its last tile writes O."""
    pid = tl.program_id(0)
    t_beg = tl.load(prog_ptr + pid)
    t_end = tl.load(prog_ptr + pid + 1)
    offs_d = tl.arange(0, D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BLOCK_M)
    q = tl.zeros([BLOCK_M, D], dtype=q_ptr.dtype.element_ty)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    # tile words: K / V row, column, flags | start_n << 8, qo row of the item's query 0
    # (qo_start), tile_row0, qo_len, kv head, kv_len - qo_len. The first three are loaded one
    # tile ahead (loop-carried), so the K / V copies' coordinates do not wait on a load.
    # (the tile list ends with one zero row, so reading row t_end is safe)
    k_row_n = tl.load(tiles_ptr + t_beg * 8)
    k_col_n = tl.load(tiles_ptr + t_beg * 8 + 1)
    flags_n = tl.load(tiles_ptr + t_beg * 8 + 2)
    for t in tl.range(t_beg, t_end):
        e = tiles_ptr + t * 8
        k_row = k_row_n
        k_col = k_col_n
        flags = flags_n
        k_row_n = tl.load(e + 8)
        k_col_n = tl.load(e + 9)
        flags_n = tl.load(e + 10)
        first = (flags & 1) != 0
        if first:
            qm = tl.load(e + 4) + offs_b
            qi = qm // group
            hq = tl.load(e + 6) * group + qm % group
            q_rows = (tl.load(e + 3) + qi).to(tl.int64) * stride_qn + hq.to(tl.int64) * stride_qh
            q = tl.load(q_ptr + q_rows[:, None] + offs_d[None, :], mask=(qi < tl.load(e + 5))[:, None], other=0)
        # a new item: the running max restarts, so alpha below is 0 and the old acc drops out
        m_i = tl.where(first, float("-inf"), m_i)
        l_i = tl.where(first, 0.0, l_i)
        k = k_desc.load([k_row, k_col])
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if (flags & 4) != 0:
            cols = (flags >> 8) + offs_n
            row_pos = (tl.load(e + 4) + offs_b) // group + tl.load(e + 7)
            s = tl.where(cols[None, :] <= row_pos[:, None], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = v_desc.load([k_row, k_col])
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
        if (flags & 2) != 0:
            om = tl.load(e + 4) + offs_b
            oqi = om // group
            ohq = tl.load(e + 6) * group + om % group
            o_rows = (tl.load(e + 3) + oqi).to(tl.int64) * stride_on + ohq.to(tl.int64) * stride_oh
            o = acc / l_i[:, None]
            tl.store(o_ptr + o_rows[:, None] + offs_d[None, :], o.to(o_ptr.dtype.element_ty),
                     mask=(oqi < tl.load(e + 5))[:, None])


@triton.jit
def nested_prefill_kernel(q_ptr, o_ptr, pitems_ptr, pbeg_ptr, k_desc, v_desc,
                          stride_qn, stride_qh, stride_on, stride_oh, group, qk_scale,
                          D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program p runs items [pbeg[p], pbeg[p + 1]) of the per-program item list (words: K / V
    row of token 0, column, tile count, first diagonal column, qo_start, tile_row0, qo_len,
    kv_len - qo_len), each with prefill_kernel's inner loop (Q loop-invariant)."""
    pid = tl.program_id(0)
    i_beg = tl.load(pbeg_ptr + pid)
    i_end = tl.load(pbeg_ptr + pid + 1)
    offs_d = tl.arange(0, D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BLOCK_M)
    for i in range(i_beg, i_end):
        w = pitems_ptr + i * 8
        k_row0 = tl.load(w)
        k_col = tl.load(w + 1)
        n_t = tl.load(w + 2)
        diag_from = tl.load(w + 3)
        qo_start = tl.load(w + 4)
        qm = tl.load(w + 5) + offs_b
        qi = qm // group
        hq = (k_col // D) * group + qm % group
        row_ok = qi < tl.load(w + 6)
        row_pos = qi + tl.load(w + 7)
        q_rows = (qo_start + qi).to(tl.int64) * stride_qn + hq.to(tl.int64) * stride_qh
        q = tl.load(q_ptr + q_rows[:, None] + offs_d[None, :], mask=row_ok[:, None], other=0)
        acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        for start_n in tl.range(0, n_t * BLOCK_N, BLOCK_N):
            k = k_desc.load([k_row0 + start_n, k_col])
            s = tl.dot(q, tl.trans(k)) * qk_scale
            if start_n >= diag_from:
                s = tl.where((start_n + offs_n)[None, :] <= row_pos[:, None], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.exp2(s - m_new[:, None])
            alpha = tl.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = v_desc.load([k_row0 + start_n, k_col])
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        o_rows = (qo_start + qi).to(tl.int64) * stride_on + hq.to(tl.int64) * stride_oh
        o = acc / l_i[:, None]
        tl.store(o_ptr + o_rows[:, None] + offs_d[None, :], o.to(o_ptr.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def flat2_prefill_kernel(q_ptr, o_ptr, pitems_ptr, pbeg_ptr, ptiles_ptr, k_desc, v_desc,
                         stride_qn, stride_qh, stride_on, stride_oh, group, qk_scale,
                         D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """flat_prefill_kernel without per-tile loads: program p runs the items [pbeg[p], pbeg[p + 1])
    of nested_schedule's list as one loop of ptiles[p + 1] - ptiles[p] tiles; the K / V
    coordinates are loop-carried integers (the item's row / column plus j * BLOCK_N), and the
    next item's words are read only on an item's last tile."""
    pid = tl.program_id(0)
    i = tl.load(pbeg_ptr + pid)
    t_beg = tl.load(ptiles_ptr + pid)
    t_end = tl.load(ptiles_ptr + pid + 1)
    offs_d = tl.arange(0, D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BLOCK_M)
    w = pitems_ptr + i * 8
    k_row0 = tl.load(w)
    k_col = tl.load(w + 1)
    n_t = tl.load(w + 2)
    diag_from = tl.load(w + 3)
    j = t_beg * 0
    q = tl.zeros([BLOCK_M, D], dtype=q_ptr.dtype.element_ty)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    row_pos = tl.zeros([BLOCK_M], dtype=tl.int32)
    for t in tl.range(t_beg, t_end):
        first = j == 0
        last = j == n_t - 1
        start_n = j * BLOCK_N
        if first:
            wi = pitems_ptr + i * 8
            qm = tl.load(wi + 5) + offs_b
            qi = qm // group
            hq = (k_col // D) * group + qm % group
            q_rows = (tl.load(wi + 4) + qi).to(tl.int64) * stride_qn + hq.to(tl.int64) * stride_qh
            q = tl.load(q_ptr + q_rows[:, None] + offs_d[None, :], mask=(qi < tl.load(wi + 6))[:, None], other=0)
            row_pos = qi + tl.load(wi + 7)
        m_i = tl.where(first, float("-inf"), m_i)
        l_i = tl.where(first, 0.0, l_i)
        k = k_desc.load([k_row0 + start_n, k_col])
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if start_n >= diag_from:
            s = tl.where((start_n + offs_n)[None, :] <= row_pos[:, None], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = v_desc.load([k_row0 + start_n, k_col])
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
        if last:
            wo = pitems_ptr + i * 8
            om = tl.load(wo + 5) + offs_b
            oqi = om // group
            ohq = (k_col // D) * group + om % group
            o_rows = (tl.load(wo + 4) + oqi).to(tl.int64) * stride_on + ohq.to(tl.int64) * stride_oh
            o = acc / l_i[:, None]
            tl.store(o_ptr + o_rows[:, None] + offs_d[None, :], o.to(o_ptr.dtype.element_ty),
                     mask=(oqi < tl.load(wo + 6))[:, None])
        # next tile: same item at j + 1, or the next item's first (its words: masked loads that
        # only touch memory on a last tile; the list ends with a zero row)
        wn = pitems_ptr + (i + 1) * 8
        k_row0 = tl.where(last, tl.load(wn, mask=last, other=0), k_row0)
        k_col = tl.where(last, tl.load(wn + 1, mask=last, other=0), k_col)
        n_t = tl.where(last, tl.load(wn + 2, mask=last, other=0), n_t)
        diag_from = tl.where(last, tl.load(wn + 3, mask=last, other=0), diag_from)
        i = tl.where(last, i + 1, i)
        j = tl.where(last, 0, j + 1)


def nested_schedule(items, owned, n_t, diag_from, d):
    """(pitems int32 [n + 1, 8] (a zero row last), pbeg int32 [P + 1], ptiles int32 [P + 1]: tile
    count prefix) for nested_prefill_kernel / flat2_prefill_kernel from flat_schedule's assignment."""
    rows, pbeg = [], [0]
    for lst in owned:
        for it in lst:
            w = items[it]
            rows.append((w[3], int(w[6]) * d, n_t[it], diag_from[it], w[1], w[0], w[2], w[4] - w[2]))
        pbeg.append(len(rows))
    rows.append((0,) * 8)
    pitems = np.asarray(rows, dtype=np.int32)
    ptiles = np.concatenate([[0], np.cumsum([sum(int(n_t[it]) for it in lst) for lst in owned])]).astype(np.int32)
    return pitems, np.asarray(pbeg, dtype=np.int32), ptiles


def flat_schedule(work: np.ndarray, n_programs: int, block_m: int, block_n: int, group: int, d: int,
                  assign: str = "heap"):
    """(tiles int32 [T + 1, 8] (flat_prefill_kernel's tile words, a zero row last), prog int32
    [P + 1], items int32 [n, 8], owned (each program's item indices), n_t / diag_from (each item's
    tile count and first diagonal column)) for the ragged schedule `work` (build_work rows, most
    expensive first) over all kv heads, taken in the order the 2-D grid dispatches (kv head outer,
    items inner). assign "heap": each to the program that frees first (LPT on tile count + 1);
    "snake": dealt in rounds of P, every other round reversed."""
    n_w = work.shape[0]
    items = np.repeat(work[None], HKV, axis=0).reshape(HKV * n_w, -1).copy()
    items[:, 6] = np.repeat(np.arange(HKV, dtype=np.int32), n_w)
    row0, qo_len, kv_start, kv_len = items[:, 0], items[:, 2], items[:, 3], items[:, 4]
    i_min = row0 // group
    i_max = np.minimum((row0 + block_m - 1) // group, qo_len - 1)
    off = kv_len - qo_len
    hi = np.minimum(kv_len, np.maximum(i_max + off + 1, 0))
    n_t = -(-hi // block_n)
    diag_from = (np.minimum(kv_len, np.maximum(i_min + off + 1, 0)) // block_n) * block_n
    heap = [(0.0, p) for p in range(n_programs)]
    owned = [[] for _ in range(n_programs)]
    for it in range(items.shape[0]):
        if assign == "snake":  # prefill_kernel PERSISTENT's dealing: rounds of P, every other reversed
            r, c = divmod(it, n_programs)
            owned[c if r % 2 == 0 else n_programs - 1 - c].append(it)
            continue
        f, p = heapq.heappop(heap)
        owned[p].append(it)
        heapq.heappush(heap, (f + float(n_t[it]) + 1.0, p))
    rows, prog = [], [0]
    for p in range(n_programs):
        for it in owned[p]:
            n = int(n_t[it])
            for c in range(n):
                start = c * block_n
                fl = (FIRST if c == 0 else 0) | (LAST if c == n - 1 else 0) | (DIAG if start >= diag_from[it] else 0)
                rows.append((kv_start[it] + start, int(items[it, 6]) * d, fl | (start << 8), items[it, 1],
                             row0[it], qo_len[it], items[it, 6], off[it]))
        prog.append(len(rows))
    rows.append((0,) * 8)
    return np.asarray(rows, dtype=np.int32), np.asarray(prog, dtype=np.int32), items, owned, n_t, diag_from


def main() -> int:
    import flashinfer
    from benchmarks.common import time_device_us
    from flashinfer_ops.launch.attention.prefill import build_work
    from triton.tools.tensor_descriptor import TensorDescriptor

    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="16x1024,4x4096,1x8192")
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("--nested-only", action="store_true", help="time only the nested kernel")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    a = ap.parse_args()
    torch.manual_seed(0)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bm, bn, group = 64, 64, HQ // HKV
    results = []
    for shape in a.shapes.split(","):
        b, l = (int(x) for x in shape.split("x"))
        n = b * l
        q = torch.randn(n, HQ, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(n, HKV, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(n, HKV, D, device="cuda", dtype=torch.bfloat16)
        indptr = torch.arange(0, n + 1, l, dtype=torch.int32, device="cuda")
        ws = torch.empty(128 << 20, dtype=torch.uint8, device="cuda")
        wrap = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(ws, "NHD")
        wrap.plan(indptr, indptr, HQ, HKV, D, causal=True, q_data_type=torch.bfloat16)
        ref = wrap.run(q, k, v)
        us_main = time_device_us([lambda: wrap.run(q, k, v)], warmup=3, reps=20)
        flops = 4.0 * b * HQ * l * l * D / 2
        row = {"shape": shape, "main_us": round(us_main, 1)}
        work = build_work(np.arange(0, n + 1, l), [l] * b, list(range(0, n, l)), [0] * b, group, bm, True)
        kd = TensorDescriptor(k, [n, HKV * D], [HKV * D, 1], [bn, D])
        vd = TensorDescriptor(v, [n, HKV * D], [HKV * D, 1], [bn, D])
        launch = dict(D=D, BLOCK_M=bm, BLOCK_N=bn, num_warps=4, num_stages=a.stages)
        common = (kd, vd, q.stride(0), q.stride(1), q.stride(0), q.stride(1), group, D ** -0.5 * LOG2E)
        for label, n_prog, assign in (("heap", 2 * sms, "heap"), ("snake", 2 * sms, "snake"),
                                      ("one_item", HKV * work.shape[0], "heap")):
            tiles, prog, items, owned, n_t, diag_from = flat_schedule(work, n_prog, bm, bn, group, D, assign)
            tiles_t, prog_t, items_t = (torch.from_numpy(x).cuda() for x in (tiles, prog, items))
            pitems, pbeg, ptiles = nested_schedule(items, owned, n_t, diag_from, D)
            pitems_t, pbeg_t, ptiles_t = (torch.from_numpy(x).cuda() for x in (pitems, pbeg, ptiles))
            grid = (n_prog,)
            kernels = {"nested": lambda o: nested_prefill_kernel[grid](q, o, pitems_t, pbeg_t, *common, **launch)}
            if not a.nested_only:
                kernels["flat2"] = lambda o: flat2_prefill_kernel[grid](q, o, pitems_t, pbeg_t, ptiles_t, *common,
                                                                        **launch)
                kernels["flat"] = lambda o: flat_prefill_kernel[grid](q, o, tiles_t, prog_t, items_t, *common,
                                                                      **launch)
            for kname, kern in kernels.items():
                o = torch.full_like(q, float("nan"))
                kern(o)
                torch.cuda.synchronize()
                us = time_device_us([lambda: kern(o)], warmup=3, reps=20)
                row[f"{kname}_{label}"] = {"us": round(us, 1), "max_err": (o.float() - ref.float()).abs().max().item(),
                                           "x_main": round(us_main / us, 3), "tflops": round(flops / us / 1e6, 1)}
        print(json.dumps(row), flush=True)
        results.append(row)
    with open(os.path.join(a.out, "persistent_ab.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
