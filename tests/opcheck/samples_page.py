import torch

from helpers import strided


def _rows(shape, dtype, device):
    """Random rows; uint8 stands for fp8 bytes (fp8 caches reach the ops as byte views)."""
    if dtype == torch.uint8:
        return torch.randn(shape, device=device).to(torch.float8_e4m3fn).view(torch.uint8)
    return torch.randn(shape, device=device).to(dtype)


def _table(device, lens, page_size):
    """Page table for requests of `lens` tokens (pages shuffled), and every token appended."""
    npages = [-(-n // page_size) for n in lens]
    total = sum(npages)
    indices = torch.randperm(total + 2, device=device)[:total].to(torch.int32)
    indptr = torch.tensor([0] + list(torch.tensor(npages).cumsum(0).tolist()), dtype=torch.int32, device=device)
    last = torch.tensor([n - (p - 1) * page_size for n, p in zip(lens, npages)], dtype=torch.int32, device=device)
    b = torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(lens)]).to(device)
    p = torch.cat([torch.arange(n, dtype=torch.int32) for n in lens]).to(device)
    return total + 2, indices, indptr, last, b, p


def _append(device):
    out = []
    cases = ((torch.float16, (3, 5), 4, 0, False, False), (torch.bfloat16, (1, 6), 4, 1, True, True),
             (torch.uint8, (4,), 2, 0, False, True), (torch.uint8, (2, 2), 1, 1, False, False),
             (torch.float16, (0,), 4, 0, False, False))
    for dtype, lens, ps, layout, five_d, strided_in in cases:
        num_pages, indices, indptr, last, b, p = _table(device, lens, ps)
        if sum(lens) == 0:
            b = p = torch.zeros(0, dtype=torch.int32, device=device)
        h, d = 2, 16
        shape = (num_pages, ps, h, d) if layout == 0 else (num_pages, h, ps, d)
        if five_d:
            kv = torch.zeros(num_pages, 2, *shape[1:], dtype=dtype, device=device)
            kc, vc = kv.unbind(1)
        else:
            kc = torch.zeros(shape, dtype=dtype, device=device)
            vc = torch.zeros(shape, dtype=dtype, device=device)
        k = _rows((sum(lens), h, d), dtype, device)
        v = _rows((sum(lens), h, d), dtype, device)
        if strided_in:
            k = strided(k)
        out.append((kc, vc, k, v, b, p, indices, indptr, last, layout))
    return out


def _append_aiter(device):
    return [s for s in _append(device) if s[-1] == 0 and s[0].dtype in (torch.float16, torch.bfloat16)]


def _mla(device):
    out = []
    for dtype, lens in ((torch.bfloat16, (3, 4)), (torch.float16, (0,)), (torch.uint8, (5,))):
        num_pages, indices, indptr, last, b, p = _table(device, lens, 4)
        n = sum(lens)
        ckv = torch.zeros(num_pages, 4, 32, dtype=dtype, device=device)
        kpe = torch.zeros(num_pages, 4, 16, dtype=dtype, device=device)
        a_ckv = strided(_rows((n, 32), dtype, device))
        a_kpe = _rows((n, 16), dtype, device)
        out.append((ckv, kpe, a_ckv, a_kpe, b, p, indices, indptr, last))
    return out


SAMPLES = {
    "append_paged_kv_cache.default": _append,
    "append_paged_kv_cache.aiter": _append_aiter,
    "append_paged_mla_kv_cache.default": _mla,
}
