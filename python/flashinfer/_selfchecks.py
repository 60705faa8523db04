"""Self-checks through the public API for the attention, RoPE / paged-KV and sampling ops (the norm,
activation and packbits ones are op-level, in flashinfer_ops.selfcheck).

Each check builds small odd-sized random inputs on the CPU and runs the same facade call twice:
once on the kernels (the GPU, or without one the Triton interpreter through
flashinfer_ops._library.KERNELS_ON_CPU) and once on the CPU reference kernels, and returns the
largest difference with its tolerance. Samplers are random, so their checks return the number of
samples outside the filter's support (tolerance 0).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch

import flashinfer
from flashinfer_ops._library import KERNELS_ON_CPU
from flashinfer_ops.selfcheck import selfcheck


@contextlib.contextmanager
def _kernels_on_cpu():
    KERNELS_ON_CPU[0] = True
    try:
        yield
    finally:
        KERNELS_ON_CPU[0] = False


def _to(xs, device):
    return [x.to(device) if isinstance(x, torch.Tensor) else x for x in xs]


def _clone(xs):
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in xs]


def _compare(device: str, inputs: Sequence, fn: Callable, tol: float):
    """max over fn's tensor outputs of |kernels - reference| / max(1, max |reference|) (fn may
    mutate its inputs and return them); bf16 outputs carry ~2^-8 relative rounding."""
    ref = fn(*_clone(inputs))
    if device == "cuda":
        got = fn(*_to(inputs, "cuda"))
    else:
        with _kernels_on_cpu():
            got = fn(*_clone(inputs))
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    err = 0.0
    for a, b in zip(got, ref):
        if a is None:
            continue
        diff = (a.float().cpu() - b.float().cpu()).abs()
        if diff.numel():
            scale = max(1.0, b.float().abs().nan_to_num(0.0).max().item())
            err = max(err, diff.nan_to_num(float("inf")).max().item() / scale)
    return err, tol


def _page_table(lens, page):
    pages = [(n + page - 1) // page for n in lens]
    indptr = torch.tensor([0] + list(torch.tensor(pages).cumsum(0).tolist()), dtype=torch.int32)
    indices = torch.randperm(int(indptr[-1]) + 3)[: int(indptr[-1])].to(torch.int32)
    last = torch.tensor([(n - 1) % page + 1 for n in lens], dtype=torch.int32)
    return indptr, indices, last, int(indptr[-1]) + 3


@selfcheck("apply_rope_pos_ids", "apply_rope_pos_ids_inplace", "apply_rope_with_cos_sin_cache",
           "apply_rope_with_cos_sin_cache_inplace")
def _rope(device):
    n, hq, hk, d = 19, 4, 2, 64
    q = torch.randn(n, hq, d, dtype=torch.bfloat16)
    k = torch.randn(n, hk, d, dtype=torch.bfloat16)
    pos = torch.randint(0, 500, (n,), dtype=torch.int32)
    indptr = torch.tensor([0, 7, 19], dtype=torch.int32)
    offsets = torch.tensor([3, 40], dtype=torch.int32)
    ang = torch.arange(512, dtype=torch.float32)[:, None] / (1e4 ** (torch.arange(0, 48, 2) / 48.0))[None]
    cos_sin = torch.cat([ang.cos(), ang.sin()], -1)

    def fn(q, k, pos, indptr, offsets, cos_sin):
        a = flashinfer.apply_rope_pos_ids(q, k, pos, rotary_dim=32, interleave=True)
        b = flashinfer.apply_rope(q, k, indptr, offsets)
        q2, k2 = q.clone(), k.clone()
        flashinfer.apply_llama31_rope_pos_ids_inplace(q2, k2, pos)
        c = flashinfer.apply_rope_with_cos_sin_cache(pos.long(), q.reshape(n, -1), k.reshape(n, -1), d, cos_sin, True)
        q3, k3 = q.reshape(n, -1).clone(), k.reshape(n, -1).clone()
        flashinfer.apply_rope_with_cos_sin_cache_inplace(pos.long(), q3, k3, d, cos_sin, False)
        return (*a, *b, q2, k2, *c, q3, k3)

    return _compare(device, [q, k, pos, indptr, offsets, cos_sin], fn, 2e-2)


@selfcheck("rope_quantize_fp8", "rope_quantize_fp8_append_paged_kv_cache")
def _rope_fp8(device):
    n, hq, hk, rd, nd, page = 13, 4, 2, 64, 64, 16
    qr, qn = torch.randn(n, hq, rd, dtype=torch.bfloat16), torch.randn(n, hq, nd, dtype=torch.bfloat16)
    kr, kn = torch.randn(n, hk, rd, dtype=torch.bfloat16), torch.randn(n, hk, nd, dtype=torch.bfloat16)
    v = torch.randn(n, hk, rd + nd, dtype=torch.bfloat16)
    ang = torch.arange(64, dtype=torch.float32)[:, None] / (1e4 ** (torch.arange(0, rd, 2) / rd))[None]
    cos_sin = torch.cat([ang.cos(), ang.sin()], -1)
    pos = torch.arange(n, dtype=torch.int32)
    indptr, indices, last, npages = _page_table([n], page)
    bidx = torch.zeros(n, dtype=torch.int32)
    fp8 = torch.float8_e4m3fn

    def fn(qr, kr, qn, kn, v, cos_sin, pos, indptr, indices, bidx):
        outs = flashinfer.rope.rope_quantize_fp8(qr, kr, qn, kn, cos_sin, pos, quantize_dtype=fp8)
        kc = torch.zeros(npages, page, hk, rd + nd, dtype=fp8, device=qr.device)
        vc = torch.zeros_like(kc)
        q_outs = flashinfer.rope.rope_quantize_fp8_append_paged_kv_cache(
            qr, kr, qn, kn, v, cos_sin, pos, (kc, vc), indices, indptr, bidx, pos, quantize_dtype=fp8, page_size=page)
        return (*outs, *q_outs, kc, vc)

    # fp8 e4m3 has 3 mantissa bits: one rounding flip moves a value by up to 1/8 of its magnitude.
    return _compare(device, [qr, kr, qn, kn, v, cos_sin, pos, indptr, indices, bidx], fn, 0.13)


@selfcheck("append_paged_kv_cache", "append_paged_mla_kv_cache")
def _append(device):
    lens, page, h, d = [5, 19, 1], 16, 2, 64
    indptr, indices, last, npages = _page_table(lens, page)
    nnz = sum(lens)
    k, v = torch.randn(nnz, h, d, dtype=torch.bfloat16), torch.randn(nnz, h, d, dtype=torch.bfloat16)
    seq = torch.tensor(lens, dtype=torch.int32)
    append_indptr = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32)
    ckv, kpe = torch.randn(nnz, 128, dtype=torch.bfloat16), torch.randn(nnz, 32, dtype=torch.bfloat16)

    def fn(k, v, indptr, indices, last, seq, append_indptr, ckv, kpe):
        dev = k.device
        bidx, pos = flashinfer.get_batch_indices_positions(append_indptr, seq, nnz)
        cache5 = torch.zeros(npages, 2, page, h, d, dtype=k.dtype, device=dev)
        flashinfer.append_paged_kv_cache(k, v, bidx, pos, cache5, indices, indptr, last)
        hk = torch.zeros(npages, h, page, d, dtype=k.dtype, device=dev)
        hv = torch.zeros_like(hk)
        flashinfer.append_paged_kv_cache(k, v, bidx, pos, (hk, hv), indices, indptr, last, kv_layout="HND")
        cc = torch.zeros(npages, page, 128, dtype=k.dtype, device=dev)
        pc = torch.zeros(npages, page, 32, dtype=k.dtype, device=dev)
        flashinfer.page.append_paged_mla_kv_cache(ckv, kpe, bidx, pos, cc, pc, indices, indptr, last)
        return cache5, hk, hv, cc, pc, bidx, pos

    return _compare(device, [k, v, indptr, indices, last, seq, append_indptr, ckv, kpe], fn, 0.0)


@selfcheck("single_decode_with_kv_cache", "batch_decode_with_paged_kv_cache")
def _decode(device):
    hq, hk, d, page = 8, 2, 128, 16
    lens = [1, 99, 37]
    indptr, indices, last, npages = _page_table(lens, page)
    q1 = torch.randn(hq, d, dtype=torch.bfloat16)
    k1, v1 = torch.randn(989, hk, d, dtype=torch.bfloat16), torch.randn(989, hk, d, dtype=torch.bfloat16)
    qb = torch.randn(len(lens), hq, d, dtype=torch.bfloat16)
    cache = torch.randn(npages, 2, page, hk, d, dtype=torch.bfloat16)

    def fn(q1, k1, v1, qb, cache, indptr, indices, last):
        o1, l1 = flashinfer.single_decode_with_kv_cache(q1, k1, v1, logits_soft_cap=30.0, return_lse=True)
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(torch.empty(8 << 20, dtype=torch.uint8, device=q1.device))
        w.plan(indptr, indices, last, hq, hk, d, page, q_data_type=torch.bfloat16, window_left=50)
        ob, lb = w.run(qb, cache, return_lse=True)
        return o1, l1, ob, lb

    return _compare(device, [q1, k1, v1, qb, cache, indptr, indices, last], fn, 2e-2)


@selfcheck("merge_state", "merge_state_in_place", "merge_states")
def _merge(device):
    seq, n, h, d = 19, 3, 4, 64
    v = torch.randn(seq, n, h, d, dtype=torch.bfloat16)
    s = torch.randn(seq, n, h) * 4

    def fn(v, s):
        a = flashinfer.merge_state(v[:, 0], s[:, 0], v[:, 1], s[:, 1])
        vi, si = v[:, 0].clone(), s[:, 0].clone().float()
        flashinfer.merge_state_in_place(vi, si, v[:, 2], s[:, 2].float())
        b = flashinfer.merge_states(v, s)
        return (*a, vi, si, *b)

    return _compare(device, [v, s], fn, 2e-2)


@selfcheck("single_prefill", "batch_prefill_ragged", "batch_prefill_paged")
def _prefill(device):
    # fp16: Triton's interpreter computes bf16 tl.dot wrongly (the GPU tests cover bf16).
    hq, hk, d, page = 8, 2, 64, 16
    q1 = torch.randn(37, hq, d, dtype=torch.float16)
    k1, v1 = torch.randn(99, hk, d, dtype=torch.float16), torch.randn(99, hk, d, dtype=torch.float16)
    qo, kv = [7, 19], [19, 40]
    qo_indptr = torch.tensor([0, 7, 26], dtype=torch.int32)
    kv_indptr_r = torch.tensor([0, 19, 59], dtype=torch.int32)
    qr = torch.randn(26, hq, d, dtype=torch.float16)
    kr, vr = torch.randn(59, hk, d, dtype=torch.float16), torch.randn(59, hk, d, dtype=torch.float16)
    indptr, indices, last, npages = _page_table(kv, page)
    cache = torch.randn(npages, 2, page, hk, d, dtype=torch.float16)

    def fn(q1, k1, v1, qr, kr, vr, qo_indptr, kv_indptr_r, cache, indptr, indices, last):
        ws = torch.empty(8 << 20, dtype=torch.uint8, device=q1.device)
        o1, l1 = flashinfer.single_prefill_with_kv_cache(q1, k1, v1, causal=True, return_lse=True)
        r = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(ws)
        r.plan(qo_indptr, kv_indptr_r, hq, hk, d, causal=True, q_data_type=torch.float16)
        orr = r.run(qr, kr, vr)
        p = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws)
        p.plan(qo_indptr, indptr, indices, last, hq, hk, d, page, causal=True, q_data_type=torch.float16)
        op = p.run(qr, cache)
        return o1, l1, orr, op

    return _compare(device, [q1, k1, v1, qr, kr, vr, qo_indptr, kv_indptr_r, cache, indptr, indices, last], fn, 5e-3)


@selfcheck("softmax", "top_p_renorm_probs", "top_k_renorm_probs", "top_k_mask_logits")
def _filters(device):
    logits = torch.randn(5, 989) * 3
    probs = torch.softmax(torch.randn(5, 989) * 3, -1)

    def fn(logits, probs):
        return (flashinfer.softmax(logits, temperature=0.7), flashinfer.top_k_renorm_probs(probs, 19),
                flashinfer.top_k_mask_logits(logits, 19).clamp(min=-1e4), flashinfer.top_p_renorm_probs(probs, 0.5))

    return _compare(device, [logits, probs], fn, 1e-4)


@selfcheck("sampling_from_probs", "sampling_from_logits", "top_p_sampling_from_probs", "top_k_sampling_from_probs",
           "min_p_sampling_from_probs", "top_k_top_p_sampling_from_probs", "top_k_top_p_sampling_from_logits",
           "chain_speculative_sampling")
def _samplers(device):
    """Samples must lie in each filter's support: returns the number that do not (tolerance 0)."""
    b, vocab, k, p, mp = 7, 989, 10, 0.5, 0.2
    logits = torch.randn(b, vocab) * 3
    probs = torch.softmax(logits, -1)
    sorted_p, order = probs.sort(-1, descending=True)
    topk = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, order[:, :k], True)
    cum = sorted_p.cumsum(-1)
    nucleus = torch.zeros_like(topk).scatter_(1, order, (cum - sorted_p) < p)
    minp = probs >= mp * probs.max(-1, keepdim=True).values
    renorm = torch.where(topk, probs, torch.zeros_like(probs))
    renorm = renorm / renorm.sum(-1, keepdim=True)
    sorted_r, order_r = renorm.sort(-1, descending=True)
    nucleus_of_topk = torch.zeros_like(topk).scatter_(1, order_r, (sorted_r.cumsum(-1) - sorted_r) < p)
    draft = torch.softmax(torch.randn(b, 3, vocab), -1)
    draft_ids = torch.randint(0, vocab, (b, 3), dtype=torch.int32)
    target = torch.softmax(torch.randn(b, 4, vocab), -1)
    dev = "cuda" if device == "cuda" else "cpu"
    ctx = contextlib.nullcontext() if dev == "cuda" else _kernels_on_cpu()
    bad = 0
    with ctx:
        P, L = probs.to(dev), logits.to(dev)
        cases = [
            (flashinfer.sampling_from_probs(P), probs > 0),
            (flashinfer.sampling_from_logits(L), torch.ones_like(topk)),
            (flashinfer.top_p_sampling_from_probs(P, p), nucleus),
            (flashinfer.top_k_sampling_from_probs(P, k), topk),
            (flashinfer.min_p_sampling_from_probs(P, mp), minp),
            (flashinfer.top_k_top_p_sampling_from_probs(P, k, p, filter_apply_order="joint"), topk),
            (flashinfer.top_k_top_p_sampling_from_logits(L, k, p), topk & nucleus_of_topk),
        ]
        for ids, support in cases:
            ids = ids.long().cpu()
            bad += int((~support.gather(1, ids[:, None])).sum()) + int(((ids < 0) | (ids >= vocab)).sum())
        out, acc, emitted = flashinfer.chain_speculative_sampling(draft.to(dev), draft_ids.to(dev), target.to(dev))
        out = out.cpu()
        valid = out >= 0
        bad += int((valid.sum(-1) != emitted.cpu() + 1).sum())  # emitted drafts + one bonus token
        bad += int((out[valid] >= vocab).sum())
    return float(bad), 0.0

