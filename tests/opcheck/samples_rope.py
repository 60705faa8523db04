"""fp8 outputs and caches are passed as uint8 views of their bytes (the ops' contract)."""
import torch

from helpers import strided

FP8 = (torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz)
L31 = (1.0, 4.0, 8192.0)


def _qk(device, dtype, nnz, hq, hk, d, packed=False):
    if packed:  # q and k are strided views of one qkv tensor
        qkv = torch.randn(nnz, hq + 2 * hk, d, dtype=dtype, device=device)
        return qkv[:, :hq], qkv[:, hq:hq + hk]
    return torch.randn(nnz, hq, d, dtype=dtype, device=device), torch.randn(nnz, hk, d, dtype=dtype, device=device)


def _pos_cases(device):
    out = []
    for dtype, pdt, nnz, rd, packed, il, llama31 in (
        (torch.float16, torch.int32, 5, 32, False, False, False),
        (torch.bfloat16, torch.int64, 3, 16, True, True, True),
        (torch.bfloat16, torch.int32, 0, 32, False, False, False),
    ):
        q, k = _qk(device, dtype, nnz, 3, 2, 32, packed)
        pos = torch.randint(0, 100, (nnz,), dtype=pdt, device=device)
        out.append((q, k, pos, rd, il, 2.0, 1e4, llama31) + L31)
    return out


def _pos(device):
    return [(torch.empty_like(c[0]), torch.empty_like(c[1])) + c for c in _pos_cases(device)]


def _cache_cases(device):
    out = []
    for dtype, nnz, rd, packed, neox in ((torch.float16, 4, 32, False, True), (torch.bfloat16, 3, 16, True, False),
                                         (torch.bfloat16, 0, 32, False, True)):
        q, k = _qk(device, dtype, nnz, 2, 1, 32, packed)
        cache = torch.randn(50, rd, device=device)
        out.append((q, k, cache, torch.randint(0, 50, (nnz,), device=device), neox))
    return out


def _cache(device):
    return [(torch.empty_like(c[0]), torch.empty_like(c[1])) + c for c in _cache_cases(device)]


def _quant_inputs(device, dtype, nnz, hq, hk, rd, nd, mla):
    q_rope = torch.randn(nnz, hq, rd, dtype=dtype, device=device)
    q_nope = torch.randn(nnz, hq, nd, dtype=dtype, device=device)
    kshape = (nnz,) if mla else (nnz, hk)
    k_rope = torch.randn(*kshape, rd, dtype=dtype, device=device)
    k_nope = strided(torch.randn(*kshape, nd, dtype=dtype, device=device)) if nd else torch.randn(*kshape, 0, dtype=dtype, device=device)
    cache = torch.randn(64, rd, device=device)
    pos = torch.randint(0, 64, (nnz,), dtype=torch.int32, device=device)
    return q_rope, k_rope, q_nope, k_nope, cache, pos


def _quant(device):
    out = []
    for i, (dtype, nnz, mla, nd) in enumerate(((torch.float16, 3, False, 16), (torch.bfloat16, 2, True, 32),
                                               (torch.bfloat16, 0, False, 0), (torch.float16, 1, False, 0))):
        fp8 = FP8[i]
        ins = _quant_inputs(device, dtype, nnz, 2, 1, 16, nd, mla)
        outs = tuple(torch.empty(t.shape, dtype=torch.uint8, device=device) for t in ins[:4])
        out.append(outs + ins + (i % 2 == 0, 0.5, 2.0, fp8))
    return out


def _page_table(device, nnz, page_size, num_pages):
    # one request holding every page; tokens at positions 0..nnz-1
    pages = torch.randperm(num_pages, device=device).to(torch.int32)
    indptr = torch.tensor([0, num_pages], dtype=torch.int32, device=device)
    b = torch.zeros(nnz, dtype=torch.int32, device=device)
    p = torch.arange(nnz, dtype=torch.int32, device=device)
    return pages, indptr, b, p


def _quant_append(device):
    out = []
    for i, (dtype, nnz, mla, nd, layout) in enumerate(((torch.float16, 5, False, 16, 0), (torch.bfloat16, 3, True, 32, 0),
                                                       (torch.bfloat16, 0, False, 0, 1), (torch.float16, 4, False, 0, 1))):
        fp8 = FP8[i]
        q_rope, k_rope, q_nope, k_nope, cache, pos = _quant_inputs(device, dtype, nnz, 2, 2, 16, nd, mla)
        ps, npages = 4, 3
        if mla:
            kc = torch.zeros(npages, ps, nd, dtype=torch.uint8, device=device)
            vc = torch.zeros(npages, ps, 16, dtype=torch.uint8, device=device)
            v = None
        else:
            shape = (npages, ps, 2, 16 + nd) if layout == 0 else (npages, 2, ps, 16 + nd)
            kc = torch.zeros(shape, dtype=torch.uint8, device=device)
            vc = torch.zeros(shape[:3] + (24,), dtype=torch.uint8, device=device)
            v = torch.randn(nnz, 2, 24, dtype=dtype, device=device)
        ind, indptr, b, p = _page_table(device, nnz, ps, npages)
        qro = torch.empty(q_rope.shape, dtype=torch.uint8, device=device)
        qno = torch.empty(q_nope.shape, dtype=torch.uint8, device=device)
        out.append((qro, qno, kc, vc, q_rope, k_rope, q_nope, k_nope, v, cache, pos, ind, indptr, b, p, i % 2 == 1,
                    1.5, 0.5, layout, fp8))
    return out


SAMPLES = {
    "apply_rope_pos_ids.default": _pos,
    "apply_rope_pos_ids_inplace.default": _pos_cases,
    "apply_rope_with_cos_sin_cache.default": _cache,
    "apply_rope_with_cos_sin_cache_inplace.default": _cache_cases,
    "rope_quantize_fp8.default": _quant,
    "rope_quantize_fp8_append_paged_kv_cache.default": _quant_append,
}
