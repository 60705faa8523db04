"""Triton decode kernels (split-KV decode + merge) against flashinfer_ops/reference/attention.py.

The paged tests plan with the real BatchDecodeWithPagedKVCacheWrapper (host planner) and then run
the CUDA-key implementation (Triton; on CPU under TRITON_INTERPRET=1). The oracle is the float32
reference (single_attention / batch_decode_paged), never another of our kernels.
"""
import math
import random

import pytest
import torch

import flashinfer
from flashinfer_ops.reference import attention as ref
from helpers import KERNEL_DEVICE, KERNEL_MODE, needs_kernels, poison, run_kernel, shapes

pytestmark = needs_kernels

FP8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")]
# (rtol, atol) of the kernel (fp16/bf16 products, fp32 accumulation) against the fp32 oracle.
TOL = {torch.float16: (5e-3, 5e-3), torch.bfloat16: (2e-2, 2e-2)}
POS = {"NONE": 0, "ROPE_LLAMA": 1, "ALIBI": 2}


def _close(out, lse, want_o, want_lse, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out.float(), want_o.float(), rtol=rtol, atol=atol)
    if lse is not None:
        torch.testing.assert_close(lse, want_lse, rtol=1e-3, atol=2e-2)


def _paged_batch(kv_lens, page, h_kv, d, kv_dtype, layout, spare_pages=3):
    """Random page table (shuffled page ids, unused pages in between) and a 5-D cache."""
    pages = [max(0, -(-n // page)) for n in kv_lens]
    total = sum(pages) + spare_pages
    ids = torch.randperm(total).tolist()
    indices, indptr, last = [], [0], []
    for n, p in zip(kv_lens, pages):
        indices += ids[:p]
        ids = ids[p:]
        indptr.append(indptr[-1] + p)
        last.append(n - (p - 1) * page if p else 0)
    shape = (total, 2, page, h_kv, d) if layout == "NHD" else (total, 2, h_kv, page, d)
    cache = torch.randn(shape, device=KERNEL_DEVICE).to(kv_dtype)
    i32 = dict(dtype=torch.int32, device=KERNEL_DEVICE)
    return cache, torch.tensor(indptr, **i32), torch.tensor(indices, **i32), torch.tensor(last, **i32)


def _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, layout, kv_dtype, return_lse=True,
               tuple_cache=False, k_scale=None, v_scale=None, **plan_kw):
    ws = torch.zeros(16 << 20, dtype=torch.uint8, device=KERNEL_DEVICE)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, layout)
    w.plan(indptr, indices, last, h_qo, h_kv, d, page, q_data_type=q.dtype, kv_data_type=kv_dtype, **plan_kw)
    kv = cache.unbind(1) if tuple_cache else cache
    out = poison(torch.empty(q.shape, dtype=q.dtype, device=q.device))
    lse = poison(torch.empty(q.shape[:2], dtype=torch.float32, device=q.device)) if return_lse else None
    _, _, args = w._op_args(q, kv, out=out, lse=lse, k_scale=k_scale, v_scale=v_scale)
    run_kernel("batch_decode_with_paged_kv_cache", *args)
    return out, lse, w


def _oracle(q, cache, indptr, indices, last, layout, sm_scale=None, pos="NONE", **kw):
    k, v = cache.unbind(1)
    return ref.batch_decode_paged(q, k, v, indptr, indices, last, layout, sm_scale=sm_scale,
                                  rope=pos == "ROPE_LLAMA", alibi=pos == "ALIBI", **kw)


def _lens(batch, max_len, with_empty=False):
    lens = [random.randint(1, max_len) for _ in range(batch)]
    lens[0] = max_len
    if batch > 2:
        lens[1] = 1
    if with_empty and batch > 2:
        lens[2] = 0
    return lens


BATCHES = shapes([1, 7, 64], [1, 3])
PAGES = shapes([1, 16], [1, 5])
HEADS = shapes([(32, 8), (8, 8), (16, 1)], [(4, 2)])
DIMS = shapes([64, 128, 256], [64])
MAXLEN = shapes(4096, 40)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("h_qo,h_kv", HEADS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["NHD", "HND"])
def test_batch_decode(batch, page, h_qo, h_kv, d, dtype, layout):
    max_len = MAXLEN if batch < 64 else shapes(1500, 40)
    lens = _lens(batch, max_len, with_empty=True)
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, dtype, layout)
    q = torch.randn(batch, h_qo, d, device=KERNEL_DEVICE).to(dtype)
    out, lse, _ = _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, layout, dtype,
                             tuple_cache=(batch + page) % 2 == 0)
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, layout)
    _close(out, lse, want_o, want_lse, dtype)


FEATURES = [
    dict(pos="NONE"), dict(pos="ROPE_LLAMA", rope_scale=2.0, rope_theta=5e5), dict(pos="ALIBI"),
    dict(logits_soft_cap=30.0), dict(window_left=15), dict(window_left=300, logits_soft_cap=5.0, pos="ALIBI"),
    dict(sm_scale=0.3),
]


def _feature_grid(kv_kinds, dtypes):
    full = [(f, kv, dt) for f in FEATURES for kv in kv_kinds for dt in dtypes]
    # interpreter: every feature with 16-bit KV, every fp8 format with the plain feature set
    small = [(f, "same", dt) for f in FEATURES for dt in dtypes[:1]] + [(FEATURES[0], kv, dtypes[-1]) for kv in kv_kinds]
    return shapes(full, small)


def _feat_id(f):
    return "-".join(f"{k}={v}" for k, v in f.items())


@pytest.mark.parametrize("feat,kv_kind,dtype", _feature_grid(["same"] + [str(t).replace("torch.", "") for t in FP8],
                                                              [torch.float16, torch.bfloat16]),
                         ids=lambda x: _feat_id(x) if isinstance(x, dict) else str(x))
def test_batch_decode_features(feat, kv_kind, dtype):
    kv_dtype = dtype if kv_kind == "same" else getattr(torch, kv_kind)
    batch, page, h_qo, h_kv, d = shapes((7, 16, 32, 8, 128), (3, 4, 4, 2, 64))
    lens = _lens(batch, shapes(2000, 37), with_empty=True)
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, kv_dtype, "NHD")
    q = torch.randn(batch, h_qo, d, device=KERNEL_DEVICE).to(dtype)
    pos = feat.get("pos", "NONE")
    plan_kw = {k: v for k, v in feat.items() if k != "pos"}
    scales = dict(k_scale=0.7, v_scale=1.3) if kv_kind != "same" else {}
    out, lse, _ = _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, "NHD", kv_dtype,
                             pos_encoding_mode=pos, **scales, **plan_kw)
    sm_scale = feat.get("sm_scale", 1 / math.sqrt(d))
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD", sm_scale=sm_scale, pos=pos,
                               logits_soft_cap=feat.get("logits_soft_cap", 0.0), window_left=feat.get("window_left", -1),
                               rope_scale=feat.get("rope_scale", 1.0), rope_theta=feat.get("rope_theta", 1e4),
                               k_scale=scales.get("k_scale", 1.0), v_scale=scales.get("v_scale", 1.0))
    rtol, atol = TOL[dtype]
    if pos == "ROPE_LLAMA":  # rotated q/k are rounded to the q dtype before the product
        atol *= 2
    torch.testing.assert_close(out.float(), want_o.float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(lse, want_lse, rtol=1e-3, atol=3e-2)


@pytest.mark.parametrize("split", ["fixed1", "disabled", "auto"])
def test_split_kv_and_merge(split):
    """Forced splits (one page a chunk) and no split give the oracle's result: the merge is exact."""
    batch, page, h_qo, h_kv, d = shapes((5, 16, 8, 2, 128), (2, 4, 4, 2, 64))
    lens = _lens(batch, shapes(3000, 30))
    dtype = torch.bfloat16
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, dtype, "NHD")
    q = torch.randn(batch, h_qo, d, device=KERNEL_DEVICE).to(dtype)
    kw = {"fixed1": dict(fixed_split_size=1), "disabled": dict(disable_split_kv=True), "auto": {}}[split]
    out, lse, w = _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, "NHD", dtype, **kw)
    n_items = int((w._work_info[:, 0] >= 0).sum())
    if split == "fixed1":
        assert n_items == sum(-(-n // page) for n in lens)
    if split == "disabled":
        assert n_items == batch
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
    _close(out, lse, want_o, want_lse, dtype)


def test_merge_more_chunks_than_one_merge_step():
    """A request split in more chunks than the merge reads per step (MERGE_BLOCK_C), next to
    a one-chunk request: the blockwise merge still equals the oracle."""
    from flashinfer_ops.configs.attention.decode import MERGE_BLOCK_C

    page, h_qo, h_kv, d = 1, 4, 2, 64
    lens = [2 * MERGE_BLOCK_C + 7, 1, MERGE_BLOCK_C + 1]
    dtype = torch.bfloat16
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, dtype, "NHD")
    q = torch.randn(len(lens), h_qo, d, device=KERNEL_DEVICE).to(dtype)
    out, lse, w = _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, "NHD", dtype,
                             fixed_split_size=1)
    assert int((w._work_info[:, 0] >= 0).sum()) == sum(lens)
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
    _close(out, lse, want_o, want_lse, dtype)


@pytest.mark.parametrize("chunk_pages", [1, 3, 1000], ids=["many-chunks", "few-chunks", "unsplit"])
def test_fused_merge_in_kernel(chunk_pages):
    """FUSED_MERGE: the last program of each split request merges its partial states (ticket
    counters). Counters are handed in directly, so every chunk count runs (many, a few, none: the
    merge walks them one a step, the next prefetched), next to a one-chunk and an empty request; two launches
    in a row check that the kernel leaves the counters at zero."""
    page, h_qo, h_kv, d = shapes((16, 32, 8, 128), (1, 4, 2, 64))
    lens = [shapes(3000, 23), 1, 0, shapes(1200, 9)]
    dtype = torch.bfloat16
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, dtype, "NHD")
    q = torch.randn(len(lens), h_qo, d, device=KERNEL_DEVICE).to(dtype)
    ws = torch.zeros(16 << 20, dtype=torch.uint8, device=KERNEL_DEVICE)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, "NHD")
    w.plan(indptr, indices, last, h_qo, h_kv, d, page, q_data_type=dtype, fixed_split_size=chunk_pages)
    counters = torch.zeros(len(lens) * h_qo, dtype=torch.int32, device=KERNEL_DEVICE)
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
    for _ in range(2):
        out = poison(torch.empty(q.shape, dtype=dtype, device=q.device))
        lse = poison(torch.empty(q.shape[:2], dtype=torch.float32, device=q.device))
        _, _, args = w._op_args(q, cache, out=out, lse=lse)
        run_kernel("batch_decode_with_paged_kv_cache", *args[:-1], counters)
        _close(out, lse, want_o, want_lse, dtype)
        assert int(counters.abs().sum()) == 0, "the merging programs must reset their counters"


@pytest.mark.gpu
def test_plan_fuses_the_merge_for_few_chunks(monkeypatch):
    """With the in-kernel merge allowed, batch 16 x 4096 (4 chunks a request) plans it; batch 1 x
    32768 (dozens of chunks) keeps the merge kernel; both match the oracle."""
    monkeypatch.setenv("FLASHINFER_DECODE_FUSED_MERGE", "1")
    for lens, fused in (([4096] * 16, True), ([32768], False)):
        cache, indptr, indices, last = _paged_batch(lens, 16, 8, 128, torch.bfloat16, "NHD")
        q = torch.randn(len(lens), 32, 128, device=KERNEL_DEVICE).to(torch.bfloat16)
        out, lse, w = _run_paged(q, cache, indptr, indices, last, 32, 8, 128, 16, "NHD", torch.bfloat16)
        assert (w._merge_counters is not None) == fused
        want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
        _close(out, lse, want_o, want_lse, torch.bfloat16)


@pytest.mark.gpu
def test_small_batch_long_kv_is_split():
    """One request with a long KV is cut into many chunks so the grid fills the GPU."""
    lens = [32768]
    cache, indptr, indices, last = _paged_batch(lens, 16, 8, 128, torch.bfloat16, "NHD")
    q = torch.randn(1, 32, 128, device=KERNEL_DEVICE).to(torch.bfloat16)
    out, lse, w = _run_paged(q, cache, indptr, indices, last, 32, 8, 128, 16, "NHD", torch.bfloat16)
    n_items = int((w._work_info[:, 0] >= 0).sum())
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    assert n_items * 8 >= 2 * sms
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
    _close(out, lse, want_o, want_lse, torch.bfloat16)


def test_non_contiguous_q_and_kv():
    """q sliced out of a packed qkv tensor; K/V as strided slices of wider caches."""
    batch, page, h_qo, h_kv, d = shapes((9, 16, 8, 4, 128), (2, 3, 4, 2, 64))
    dtype = torch.float16
    lens = _lens(batch, shapes(700, 20))
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, dtype, "NHD")
    wide = torch.randn(cache.shape[0], 2, page, h_kv + 3, d, device=KERNEL_DEVICE).to(dtype)
    wide[:, :, :, 1:1 + h_kv] = cache
    strided_cache = wide[:, :, :, 1:1 + h_kv]
    qkv = torch.randn(batch, h_qo + 2 * h_kv, d, device=KERNEL_DEVICE).to(dtype)
    q = qkv[:, :h_qo]
    out, lse, _ = _run_paged(q, strided_cache, indptr, indices, last, h_qo, h_kv, d, page, "NHD", dtype,
                             tuple_cache=True)
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
    _close(out, lse, want_o, want_lse, dtype)


def test_page_size_one_4d_cache():
    """A 4-D single tensor [pages, 2, H, D] means page size 1 (SGLang's token-level paging)."""
    batch, h_qo, h_kv, d = shapes((6, 16, 4, 128), (2, 4, 2, 64))
    dtype = torch.bfloat16
    lens = _lens(batch, shapes(900, 17))
    cache, indptr, indices, last = _paged_batch(lens, 1, h_kv, d, dtype, "NHD")
    q = torch.randn(batch, h_qo, d, device=KERNEL_DEVICE).to(dtype)
    out, lse, _ = _run_paged(q, cache[:, :, 0], indptr, indices, last, h_qo, h_kv, d, 1, "NHD", dtype)
    want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
    _close(out, lse, want_o, want_lse, dtype)


SINGLE_LENS = shapes([1, 7, 99, 1999, 4096, 33001], [1, 19, 70])


@pytest.mark.parametrize("kv_len", SINGLE_LENS)
@pytest.mark.parametrize("h_qo,h_kv", shapes([(32, 8), (8, 8), (4, 1)], [(4, 2)]))
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("layout", ["NHD", "HND"])
def test_single_decode(kv_len, h_qo, h_kv, d, layout):
    dtype = torch.float16 if kv_len % 2 else torch.bfloat16
    q = torch.randn(h_qo, d, device=KERNEL_DEVICE).to(dtype)
    k = torch.randn(kv_len, h_kv, d, device=KERNEL_DEVICE).to(dtype)
    v = torch.randn(kv_len, h_kv, d, device=KERNEL_DEVICE).to(dtype)
    kk, vv = (k, v) if layout == "NHD" else (k.transpose(0, 1).contiguous().transpose(0, 1),
                                             v.transpose(0, 1).contiguous().transpose(0, 1))
    out = poison(torch.empty_like(q))
    lse = poison(torch.empty(h_qo, device=KERNEL_DEVICE))
    run_kernel("single_decode_with_kv_cache", out, lse, q, kk, vv, 1 / math.sqrt(d), 0.0, -1, 0, 1.0, 1e4, 1.0, 1.0)
    want_o, want_lse = ref.single_attention(q[None], k, v)
    _close(out, lse, want_o[0], want_lse[0], dtype)


@pytest.mark.parametrize("feat,kv_kind,dtype", _feature_grid(["same", "float8_e4m3fn", "float8_e4m3fnuz"],
                                                              [torch.float16]),
                         ids=lambda x: _feat_id(x) if isinstance(x, dict) else str(x))
def test_single_decode_features(feat, kv_kind, dtype):
    kv_dtype = dtype if kv_kind == "same" else getattr(torch, kv_kind)
    kv_len, h_qo, h_kv, d = shapes((3001, 32, 8, 128), (45, 4, 2, 64))
    q = torch.randn(h_qo, d, device=KERNEL_DEVICE).to(dtype)
    k = torch.randn(kv_len, h_kv, d, device=KERNEL_DEVICE).to(kv_dtype)
    v = torch.randn(kv_len, h_kv, d, device=KERNEL_DEVICE).to(kv_dtype)
    pos = feat.get("pos", "NONE")
    sm = feat.get("sm_scale", 1 / math.sqrt(d))
    cap, win = feat.get("logits_soft_cap", 0.0), feat.get("window_left", -1)
    rs, rt = feat.get("rope_scale", 1.0), feat.get("rope_theta", 1e4)
    ks, vs = (0.5, 2.0) if kv_kind != "same" else (1.0, 1.0)
    out = poison(torch.empty_like(q))
    lse = poison(torch.empty(h_qo, device=KERNEL_DEVICE))
    run_kernel("single_decode_with_kv_cache", out, lse, q, k, v, sm, cap, win, POS[pos], rs, rt, ks, vs)
    want_o, want_lse = ref.single_attention(q[None], k, v, sm_scale=sm, logits_soft_cap=cap, window_left=win,
                                            rope=pos == "ROPE_LLAMA", alibi=pos == "ALIBI", rope_scale=rs,
                                            rope_theta=rt, k_scale=ks, v_scale=vs)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out.float(), want_o[0], rtol=rtol, atol=atol * (2 if pos == "ROPE_LLAMA" else 1))
    torch.testing.assert_close(lse, want_lse[0], rtol=1e-3, atol=3e-2)


def test_single_decode_empty_kv():
    q = torch.randn(4, 64, device=KERNEL_DEVICE).half()
    k = torch.empty(0, 2, 64, device=KERNEL_DEVICE).half()
    out = poison(torch.empty_like(q))
    lse = poison(torch.empty(4, device=KERNEL_DEVICE))
    run_kernel("single_decode_with_kv_cache", out, lse, q, k, k, 0.125, 0.0, -1, 0, 1.0, 1e4, 1.0, 1.0)
    assert (out == 0).all() and torch.isneginf(lse).all()


@pytest.mark.parametrize("qdt", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fmt", FP8, ids=str)
def test_fp8_decoding_exact(fmt, qdt):
    """Every fp8 bit pattern decodes exactly as torch's conversion (v = one-hot picks a key's values),
    for both query dtypes (the products of an fp8 cache run in fp16 either way)."""
    bits = torch.arange(256, dtype=torch.uint8)
    vals = bits.view(fmt).float()
    finite = torch.isfinite(vals)
    n = int(finite.sum())
    k = torch.zeros(n, 1, 64)
    v = torch.zeros(n, 1, 64)
    v[:, 0, 0] = vals[finite]
    kv = v.to(fmt)
    assert torch.equal(kv.float(), v)
    # One query against a single key at a time would need n calls; instead give each key its own
    # huge score through k so the softmax is one-hot per request (batch of n single decodes).
    q = torch.zeros(1, 64, dtype=qdt, device=KERNEL_DEVICE)
    for i in range(0, n, max(1, n // shapes(32, 6))):
        out = poison(torch.empty_like(q))
        run_kernel("single_decode_with_kv_cache", out, None, q, k[i:i + 1].to(fmt).to(KERNEL_DEVICE),
                   kv[i:i + 1].to(KERNEL_DEVICE), 1.0, 0.0, -1, 0, 1.0, 1e4, 1.0, 1.0)
        want = v[i, 0, 0].to(qdt).float()
        assert out[0, 0].float().cpu() == want, (i, out[0, 0], want)


@pytest.mark.parametrize("batch,kv_len,per_sm", [(1, 32768, 4), (16, 4096, 4), (32, 4096, 4), (3, 100000, 4),
                                                 (64, 8192, 8), (5, 777, 4)])
def test_split_plan_fills_one_wave(batch, kv_len, per_sm):
    """When the planner splits, the grid (items x kv heads) fits one wave of resident programs and
    still uses at least half of it unless chunks are at their minimum (a second, partly filled wave
    cost 25% on the H100)."""
    from flashinfer_ops.configs.attention.decode import MIN_CHUNK_TOKENS
    from flashinfer_ops.launch.attention.decode import chunk_tokens

    sms, h_kv = 132, 8
    lens = torch.full((batch,), kv_len)
    c = chunk_tokens(lens, h_kv, sms, max_items=1 << 20, per_sm=per_sm)
    items = int(((lens + c - 1) // c).sum())
    slots = per_sm * sms
    assert c % 64 == 0 or c >= kv_len
    if items > batch:  # split
        assert items * h_kv <= slots
        assert items * h_kv >= slots // 2 or c == MIN_CHUNK_TOKENS  # short requests: the minimum chunk


@pytest.mark.parametrize("kv_dtype", [torch.bfloat16, torch.float8_e4m3fn])
def test_prefetch_path(monkeypatch, kv_dtype):
    """The register double-buffered loop (PREFETCH, used for natively converted fp8 on sm90) gives
    the oracle's result, forced here for any cache type: tile edges, split chunks, short requests."""
    from flashinfer_ops.configs.attention import decode as cfg

    monkeypatch.setattr(cfg, "prefetch", lambda native_fp8, rope: not rope)
    batch, page, h_qo, h_kv, d = shapes((7, 16, 8, 2, 128), (3, 4, 4, 2, 64))
    lens = _lens(batch, shapes(2000, 45))
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, torch.bfloat16, "NHD")
    cache = cache.to(kv_dtype)
    q = torch.randn(batch, h_qo, d, device=KERNEL_DEVICE).to(torch.bfloat16)
    for kw in ({}, dict(fixed_split_size=2)):
        out, lse, _ = _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, "NHD", kv_dtype, **kw)
        want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD")
        _close(out, lse, want_o, want_lse, torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.parametrize("kv_dtype", [torch.float8_e4m3fn, torch.float8_e5m2], ids=str)
def test_v_asm_path(monkeypatch, kv_dtype):
    """V converted in its loaded layout by inline asm (decode_kernel V_ASM, sm90, natively typed
    fp8): every fp8 bit pattern of V comes out exact (the asm's byte order), and a paged batch with
    tile edges and split chunks matches the oracle."""
    from flashinfer_ops.configs import arch_family
    from flashinfer_ops.configs.attention import decode as cfg
    from flashinfer_ops.launch.attention.decode import KV_FMT_NATIVE, kv_format

    if kv_format(kv_dtype, arch_family(torch.device(KERNEL_DEVICE))) != KV_FMT_NATIVE:
        pytest.skip("V_ASM needs the natively typed fp8 path (sm90)")
    for forced in (True, False):  # the shipped choice and the A/B alternative
        monkeypatch.setattr(cfg, "v_asm", lambda native_fp8, prefetch_on, f=forced: f and native_fp8 and not prefetch_on)
        _v_asm_case(kv_dtype)


def _v_asm_case(kv_dtype):
    test_fp8_decoding_exact(kv_dtype, torch.bfloat16)
    batch, page, h_qo, h_kv, d = 7, 16, 32, 8, 128
    lens = _lens(batch, 2000, with_empty=True)
    cache, indptr, indices, last = _paged_batch(lens, page, h_kv, d, kv_dtype, "NHD")
    q = torch.randn(batch, h_qo, d, device=KERNEL_DEVICE).to(torch.bfloat16)
    for kw in ({}, dict(fixed_split_size=2)):
        out, lse, _ = _run_paged(q, cache, indptr, indices, last, h_qo, h_kv, d, page, "NHD", kv_dtype,
                                 k_scale=0.7, v_scale=1.3, **kw)
        want_o, want_lse = _oracle(q, cache, indptr, indices, last, "NHD", k_scale=0.7, v_scale=1.3)
        _close(out, lse, want_o, want_lse, torch.bfloat16)
