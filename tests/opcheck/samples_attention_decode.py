"""opcheck samples for the decode ops: each q dtype, HND (strided) caches, non-contiguous q, an
empty batch and an empty request.

No fp8 KV here: opcheck's schema check compares every input before/after with torch.allclose,
which torch does not implement for float8 tensors ("mul_cpu_reduced_float" not implemented);
fp8 KV is covered by tests/kernels/test_attention_decode.py and the fakes are dtype-agnostic."""
import math

import torch

import flashinfer


def _single(device):
    out = []
    for dtype, kv_dtype, length, mode in ((torch.float16, torch.float16, 37, 0), (torch.bfloat16, torch.bfloat16, 5, 1),
                                          (torch.float16, torch.float16, 20, 2),
                                          (torch.bfloat16, torch.bfloat16, 0, 0)):
        q = torch.randn(4, 64, device=device).to(dtype)
        k = torch.randn(length, 2, 64, device=device).to(kv_dtype)
        v = torch.randn(length, 2, 64, device=device).to(kv_dtype)
        lse = torch.empty(4, device=device) if length % 2 else None
        out.append((torch.empty_like(q), lse, q, k, v, 0.125, 0.0, -1, mode, 1.0, 1e4, 1.0, 1.0))
    # HND seen as a transposed view; q sliced from a wider tensor; window + soft cap
    qw = torch.randn(4, 80, device=device).half()
    k = torch.randn(2, 33, 64, device=device).half().transpose(0, 1)
    v = torch.randn(2, 33, 64, device=device).half().transpose(0, 1)
    out.append((torch.empty(4, 64, device=device).half(), torch.empty(4, device=device), qw[:, :64], k, v,
                0.1, 20.0, 7, 0, 1.0, 1e4, 0.5, 2.0))
    return out


def _batch(device):
    out = []
    ws = torch.zeros(4 << 20, dtype=torch.uint8, device=device)
    cases = ((torch.float16, torch.float16, [5, 0, 17], 4, "NHD"), (torch.bfloat16, torch.bfloat16, [9], 1, "HND"),
             (torch.bfloat16, torch.bfloat16, [3, 30], 16, "NHD"), (torch.float16, torch.float16, [], 4, "NHD"))
    for dtype, kv_dtype, lens, page, layout in cases:
        pages = [-(-n // page) for n in lens]
        total = sum(pages) + 1
        indptr = torch.tensor([0] + list(torch.tensor(pages, dtype=torch.int64).cumsum(0).tolist()), dtype=torch.int32)
        indices = torch.randperm(total)[: sum(pages)].to(torch.int32)
        last = torch.tensor([n - (p - 1) * page if p else 0 for n, p in zip(lens, pages)], dtype=torch.int32)
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, layout)
        w.plan(indptr.to(device), indices.to(device), last.to(device), 4, 2, 64, page, q_data_type=dtype,
               kv_data_type=kv_dtype, window_left=-1 if page != 16 else 8, logits_soft_cap=None if page != 1 else 10.0)
        shape = (total, 2, page, 2, 64) if layout == "NHD" else (total, 2, 2, page, 64)
        cache = torch.randn(shape, device=device).to(kv_dtype)
        qw = torch.randn(len(lens), 6, 64, device=device).to(dtype)
        q = qw[:, 1:5] if lens == [9] else torch.randn(len(lens), 4, 64, device=device).to(dtype)
        lse = torch.empty(len(lens), 4, device=device)
        o, l, args = w._op_args(q, cache, out=torch.empty(q.shape, dtype=dtype, device=device),
                                lse=lse if page != 4 else None, k_scale=0.5 if kv_dtype != dtype else None)
        out.append(args)
        if lens == [3, 30]:  # split requests merged in the decode kernel: zeroed ticket counters
            out.append(args[:-1] + (torch.zeros(len(lens) * 4, dtype=torch.int32, device=device),))
    return out


def _merge2(device, in_place=False):
    out = []
    for dtype, (seq, h, d) in ((torch.float16, (3, 2, 64)), (torch.bfloat16, (1, 4, 128)), (torch.float32, (0, 2, 16)),
                               (torch.bfloat16, (2, 3, 40))):
        va, vb = (torch.randn(seq, h, d, device=device).to(dtype) for _ in range(2))
        sa, sb = (torch.randn(seq, h, device=device) for _ in range(2))
        if d == 40:
            va = torch.randn(seq, h, 48, device=device).to(dtype)[..., :40]  # non-contiguous rows
        if in_place:
            mask = (torch.arange(seq, device=device) % 2 == 0) if seq > 1 else None
            out.append((va, sa, vb, sb, mask))
        else:
            out.append((torch.empty_like(vb), torch.empty_like(sa), va, sa, vb, sb))
    return out


def _merge_n(device):
    out = []
    for dtype, (seq, n, h, d) in ((torch.float16, (3, 4, 2, 64)), (torch.bfloat16, (2, 1, 2, 128)),
                                  (torch.float32, (0, 2, 2, 32))):
        v = torch.randn(seq, n, h, d, device=device).to(dtype)
        s = torch.randn(seq, n, h, device=device)
        out.append((torch.empty(seq, h, d, device=device).to(dtype), torch.empty(seq, h, device=device), v, s))
    return out


SAMPLES = {
    "merge_state.default": _merge2,
    "merge_state_in_place.default": lambda device: _merge2(device, in_place=True),
    "merge_states.default": _merge_n,
    "single_decode_with_kv_cache.default": _single,
    "batch_decode_with_paged_kv_cache.default": _batch,
}
