"""Triton paged-append kernels against reference/page.py (exact: appending is a copy), the fused
RoPE + fp8 + paged append kernel against independent oracles, and the no-stray-write guarantee."""
import itertools

import pytest
import torch

from flashinfer_ops.reference import page as ref
from helpers import KERNEL_DEVICE, needs_kernels, run_kernel, shapes, strided
from kernels.test_rope import FP8, check_fp8, make_cache, quant_inputs, vllm_forward_native

pytestmark = needs_kernels
DEV = KERNEL_DEVICE
SENTINEL = 0x5A


def page_table(lens, page_size, spare=3):
    """Shuffled pages for requests of `lens` tokens plus `spare` unused pages; every token appended
    at its position (batch_indices, positions as get_batch_indices_positions gives them)."""
    npages = [max(1, -(-n // page_size)) for n in lens]
    total = sum(npages) + spare
    perm = torch.randperm(total)[: sum(npages)].to(torch.int32)
    indptr = torch.tensor([0] + torch.tensor(npages).cumsum(0).tolist(), dtype=torch.int32)
    last = torch.tensor([n - (p - 1) * page_size for n, p in zip(lens, npages)], dtype=torch.int32)
    b = torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(lens)])
    p = torch.cat([torch.arange(n, dtype=torch.int32) for n in lens])
    return total, perm.to(DEV), indptr.to(DEV), last.to(DEV), b.to(DEV), p.to(DEV)


def sentinel_cache(shape, dtype):
    size = torch.empty(0, dtype=dtype).element_size()
    c = torch.empty(*shape[:-1], shape[-1] * size, dtype=torch.uint8, device=DEV).fill_(SENTINEL)
    return c.view(dtype)


def rows(shape, dtype):
    if dtype == torch.uint8:  # fp8 bytes
        return torch.randn(shape, device=DEV).to(torch.float8_e4m3fnuz).view(torch.uint8)
    return torch.randn(shape, device=DEV).to(dtype)


def expected(cache, x, b, p, indices, indptr, ps, layout):
    want = cache.clone()
    page, slot = ref.page_slots(b, p, indices, indptr, ps)
    ref.append_paged(want, x, page, slot, layout)
    return want


APPEND_GRID = shapes(
    list(itertools.product([(37, 100, 5, 64, 23), (1, 1, 1), (129,)], [1, 16, 32], [(4, 64), (8, 128), (2, 256)])),
    [((3, 5), 4, (2, 16)), ((2,), 1, (1, 32))],
)


@pytest.mark.parametrize("lens,ps,hd", APPEND_GRID)
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("form", ["tuple", "5d"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.uint8])
def test_append_paged_kv_cache(lens, ps, hd, layout, form, dtype):
    h, d = hd
    num_pages, indices, indptr, last, b, p = page_table(lens, ps)
    shape = (num_pages, ps, h, d) if layout == 0 else (num_pages, h, ps, d)
    if form == "5d":
        kv = sentinel_cache((num_pages, 2) + shape[1:], dtype)
        kc, vc = kv.unbind(1)
    else:
        kc, vc = sentinel_cache(shape, dtype), sentinel_cache(shape, dtype)
    nnz = sum(lens)
    k = strided(rows((nnz, h, d), dtype))
    v = rows((nnz, h, d), dtype)
    want_k = expected(kc, k, b, p, indices, indptr, ps, layout)
    want_v = expected(vc, v, b, p, indices, indptr, ps, layout)
    run_kernel("append_paged_kv_cache", kc, vc, k, v, b, p, indices, indptr, last, layout)
    assert torch.equal(kc.view(torch.uint8), want_k.view(torch.uint8))
    assert torch.equal(vc.view(torch.uint8), want_v.view(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.uint8])
def test_append_paged_mla_kv_cache(dtype):
    lens = shapes((7, 33, 1), (3, 2))
    num_pages, indices, indptr, last, b, p = page_table(lens, 16)
    ckv, kpe = sentinel_cache((num_pages, 16, 512), dtype), sentinel_cache((num_pages, 16, 64), dtype)
    a_ckv, a_kpe = strided(rows((sum(lens), 512), dtype)), rows((sum(lens), 64), dtype)
    want_c = expected(ckv, a_ckv, b, p, indices, indptr, 16, 0)
    want_p = expected(kpe, a_kpe, b, p, indices, indptr, 16, 0)
    run_kernel("append_paged_mla_kv_cache", ckv, kpe, a_ckv, a_kpe, b, p, indices, indptr, last)
    assert torch.equal(ckv.view(torch.uint8), want_c.view(torch.uint8))
    assert torch.equal(kpe.view(torch.uint8), want_p.view(torch.uint8))


def test_kernel_never_writes_outside_named_slots(monkeypatch):
    """Bad indices straight into the kernel (no host validation): positions past the request's
    pages, page ids >= num_pages or negative, batch index out of range — none of them may write."""
    from flashinfer_ops.fake import page as contract

    monkeypatch.setenv("FLASHINFER_CHECK_INPUTS", "0")
    monkeypatch.setattr(contract, "contents_checkable", lambda *t: False)  # CPU tensors would be validated
    ps, h, d, num_pages = 4, 2, 16, 6
    indices = torch.tensor([0, 1, 7, -1], dtype=torch.int32, device=DEV)  # request 1: pages 7 and -1 (bad)
    indptr = torch.tensor([0, 2, 4], dtype=torch.int32, device=DEV)
    last = torch.tensor([4, 4], dtype=torch.int32, device=DEV)
    b = torch.tensor([0, 0, 0, 1, 1, 2, -1], dtype=torch.int32, device=DEV)
    p = torch.tensor([3, 8, -1, 0, 5, 0, 0], dtype=torch.int32, device=DEV)  # only token 0 is valid
    kc = sentinel_cache((num_pages, ps, h, d), torch.float16)
    vc = sentinel_cache((num_pages, ps, h, d), torch.float16)
    k = torch.randn(7, h, d, dtype=torch.float16, device=DEV)
    run_kernel("append_paged_kv_cache", kc, vc, k, k, b, p, indices, indptr, last, 0)
    want = sentinel_cache((num_pages, ps, h, d), torch.float16)
    want[0, 3] = k[0]
    assert torch.equal(kc.view(torch.uint8), want.view(torch.uint8))
    assert torch.equal(vc.view(torch.uint8), want.view(torch.uint8))


FUSED = shapes(
    [("mla", 128, 1, 64, 512), ("mla", 64, 1, 64, 128), ("gqa", 32, 8, 64, 64), ("gqa", 32, 8, 128, 0),
     ("mha", 16, 16, 128, 128), ("mha", 8, 8, 32, 96)],
    [("mla", 2, 1, 16, 32), ("gqa", 3, 1, 32, 16)],
)


@pytest.mark.parametrize("kind,hq,hk,rd,nd", FUSED)
@pytest.mark.parametrize("lens", shapes([(1,), (64, 7, 13)], [(5, 2)]))
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("fp8", FP8)
def test_rope_quantize_fp8_append_paged_kv_cache(kind, hq, hk, rd, nd, lens, layout, fp8):
    if kind == "mla" and layout == 1:
        pytest.skip("MLA caches have no layout")
    dtype = torch.float16 if sum(lens) % 2 else torch.bfloat16
    ps = 16
    nnz = sum(lens)
    num_pages, indices, indptr, _, b, p = page_table(lens, ps)
    q_rope, k_rope, q_nope, k_nope = quant_inputs(kind, nnz, hq, hk, rd, nd, dtype)
    cache = make_cache(4096, rd, 10000)
    pos = torch.randint(0, 4096, (nnz,), dtype=torch.int32, device=DEV)
    is_neox = kind != "gqa"
    if kind == "mla":
        kc, vc, v = sentinel_cache((num_pages, ps, nd), torch.uint8), sentinel_cache((num_pages, ps, rd), torch.uint8), None
    else:
        shape = (num_pages, ps, hk, rd + nd) if layout == 0 else (num_pages, hk, ps, rd + nd)
        kc = sentinel_cache(shape, torch.uint8)
        vc = sentinel_cache(shape[:3] + (80,), torch.uint8)
        v = torch.randn(nnz, hk, 80, dtype=dtype, device=DEV)
    kc0, vc0 = kc.clone(), vc.clone()
    qro = torch.empty(q_rope.shape, dtype=torch.uint8, device=DEV)
    qno = torch.empty(q_nope.shape, dtype=torch.uint8, device=DEV)
    sq, sk = 1.25, 0.5
    run_kernel("rope_quantize_fp8_append_paged_kv_cache", qro, qno, kc, vc, q_rope, k_rope, q_nope, k_nope, v, cache,
               pos, indices, indptr, b, p, is_neox, sq, sk, layout, fp8)
    k3 = k_rope if k_rope.dim() == 3 else k_rope[:, None]
    wq, wk = vllm_forward_native(pos, q_rope.reshape(nnz, -1), k3.reshape(nnz, -1), rd, cache, is_neox)
    check_fp8(qro, wq.reshape(q_rope.shape), fp8, sq)
    check_fp8(qno, q_nope, fp8, sq)
    page, slot = ref.page_slots(b, p, indices, indptr, ps)
    lay = layout if kind != "mla" else 0

    def read(c):
        return c[page, slot] if lay == 0 else c[page, :, slot]

    if kind == "mla":
        check_fp8(read(vc), wk.reshape(nnz, rd), fp8, sk)
        check_fp8(read(kc), k_nope, fp8, sk)
    else:
        got_k = read(kc)
        check_fp8(got_k[..., :rd], wk.reshape(nnz, hk, rd), fp8, sk)
        check_fp8(got_k[..., rd:], k_nope, fp8, sk)
        check_fp8(read(vc), v, fp8, sk)
    # every slot not named by the indices is untouched
    written = torch.zeros(num_pages, ps, dtype=torch.bool)
    written[page.cpu(), slot.cpu()] = True
    for c, c0 in ((kc, kc0), (vc, vc0)):
        cc, cc0 = (c, c0) if lay == 0 else (c.transpose(1, 2), c0.transpose(1, 2))
        assert torch.equal(cc.cpu()[~written], cc0.cpu()[~written])
