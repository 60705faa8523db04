"""Facade behaviour of flashinfer.prefill: signatures, plan/run, layouts, masks, routing, errors,
torch.compile, CUDA graphs, torch.export. On CPU the ops run the reference kernels; on a GPU the
Triton kernel (numerics of the kernel itself: tests/kernels/test_attention_prefill.py)."""
import math

import numpy as np
import pytest
import torch

import flashinfer
from flashinfer.prefill import _resolve_backend
from flashinfer_ops.reference.attention import gather_paged_kv, single_attention
from helpers import HAS_GPU

DEV = "cuda" if HAS_GPU else "cpu"
FP8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e4m3fnuz") if hasattr(torch, n)]


def _ws(device=DEV):
    return torch.empty(1 << 20, dtype=torch.uint8, device=device)


def _close(a, b, dtype, atol=None):
    tol = atol or (3e-3 if dtype == torch.float16 else 2.5e-2)
    torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol)


def _paged_batch(qo, kv, page, hq, hk, d, dtype=torch.float16, kv_dtype=None, layout="NHD", device=DEV,
                 five_d=True):
    kv_dtype = kv_dtype or dtype
    qo_indptr = torch.tensor(np.concatenate([[0], np.cumsum(qo)]), dtype=torch.int32)
    pages = [-(-x // page) for x in kv]
    kv_indptr = torch.tensor(np.concatenate([[0], np.cumsum(pages)]), dtype=torch.int32)
    n_pages = sum(pages) + 2
    indices = torch.randperm(n_pages)[: sum(pages)].to(torch.int32)
    last = torch.tensor([x - (p - 1) * page if p else 1 for x, p in zip(kv, pages)], dtype=torch.int32)
    shp = (page, hk, d) if layout == "NHD" else (hk, page, d)
    if five_d:
        cache = torch.randn(n_pages, 2, *shp, device=device).to(kv_dtype)
        kc, vc = cache[:, 0], cache[:, 1]
    else:
        kc, vc = (torch.randn(n_pages, *shp, device=device).to(kv_dtype) for _ in range(2))
        cache = (kc, vc)
    q = torch.randn(int(qo_indptr[-1]), hq, d, device=device).to(dtype)
    return q, cache, kc, vc, qo_indptr, kv_indptr, indices, last


def _paged_ref(q, kc, vc, qo_indptr, kv_indptr, indices, last, layout, **kw):
    kvs = gather_paged_kv(kc, vc, kv_indptr, indices.to(kc.device), last, layout)
    outs, lses = [], []
    for i, (k, v) in enumerate(kvs):
        s, e = int(qo_indptr[i]), int(qo_indptr[i + 1])
        o, l = single_attention(q[s:e], k, v, **kw)
        outs.append(o)
        lses.append(l)
    return torch.cat(outs), torch.cat(lses)


# ---- single prefill ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("causal", [False, True])
def test_single_prefill_layouts_and_lse(layout, causal):
    q = torch.randn(7, 4, 64, device=DEV).half()
    k = torch.randn(11, 2, 64, device=DEV).half()
    v = torch.randn(11, 2, 64, device=DEV).half()
    kk, vv = (k, v) if layout == "NHD" else (k.transpose(0, 1).contiguous(), v.transpose(0, 1).contiguous())
    o, lse = flashinfer.single_prefill_with_kv_cache(q, kk, vv, causal=causal, kv_layout=layout, return_lse=True)
    o2 = flashinfer.single_prefill_with_kv_cache_return_lse(q, kk, vv, causal=causal, kv_layout=layout)[0]
    ro, rl = single_attention(q, k, v, causal=causal)
    _close(o, ro, torch.float16)
    torch.testing.assert_close(lse, rl, rtol=2e-3, atol=2e-3)
    assert o.shape == (7, 4, 64) and o.dtype == torch.float16 and lse.shape == (7, 4) and lse.dtype == torch.float32
    torch.testing.assert_close(o, o2)


def test_single_prefill_custom_mask_bool_equals_packed():
    q = torch.randn(5, 2, 64, device=DEV).half()
    k = torch.randn(13, 2, 64, device=DEV).half()
    v = torch.randn(13, 2, 64, device=DEV).half()
    mask = torch.rand(5, 13, device=DEV) > 0.5
    o1 = flashinfer.single_prefill_with_kv_cache(q, k, v, custom_mask=mask, causal=True)
    packed = flashinfer.packbits(mask.flatten(), "little")
    o2 = flashinfer.single_prefill_with_kv_cache(q, k, v, packed_custom_mask=packed)
    torch.testing.assert_close(o1, o2)
    _close(o1, single_attention(q, k, v, custom_mask=mask)[0], torch.float16)


def test_single_prefill_features_reach_the_op():
    q = torch.randn(6, 4, 64, device=DEV).half()
    k = torch.randn(9, 4, 64, device=DEV).half()
    v = torch.randn(9, 4, 64, device=DEV).half()
    o = flashinfer.single_prefill_with_kv_cache(q, k, v, causal=True, pos_encoding_mode="ROPE_LLAMA", rope_theta=5e5,
                                                window_left=4, logits_soft_cap=20.0, sm_scale=0.1)
    ro, _ = single_attention(q, k, v, causal=True, rope=True, rope_theta=5e5, window_left=4, logits_soft_cap=20.0,
                             sm_scale=0.1)
    _close(o, ro, torch.float16, atol=1e-2)
    o = flashinfer.single_prefill_with_kv_cache(q, k, v, pos_encoding_mode="ALIBI")
    _close(o, single_attention(q, k, v, alibi=True)[0], torch.float16)


def test_single_prefill_errors_write_nothing():
    q = torch.randn(9, 4, 64, device=DEV).half()
    k = torch.randn(5, 2, 64, device=DEV).half()
    with pytest.raises(ValueError, match="qo_len"):
        flashinfer.single_prefill_with_kv_cache(q, k, k, causal=True)
    with pytest.raises(KeyError, match="kv_layout"):
        flashinfer.single_prefill_with_kv_cache(q, k, k, kv_layout="NDH")
    with pytest.raises(KeyError, match="pos_encoding_mode"):
        flashinfer.single_prefill_with_kv_cache(q, k, k, pos_encoding_mode="ROPE")
    with pytest.raises(ValueError, match="aiter"):
        flashinfer.single_prefill_with_kv_cache(q, k, k, backend="aiter")
    with pytest.raises(ValueError, match="num_qo_heads"):
        flashinfer.single_prefill_with_kv_cache(q, torch.randn(5, 3, 64, device=DEV).half(),
                                                torch.randn(5, 3, 64, device=DEV).half())
    with pytest.raises(ValueError, match="k: expected dtype"):
        flashinfer.single_prefill_with_kv_cache(q, k.float(), k.float())
    with pytest.raises(ValueError, match="head_dim"):
        flashinfer.single_prefill_with_kv_cache(q[..., :48], k[..., :48], k[..., :48])


def test_backend_rule():
    for b in ("auto", "fa2", "triton", "native"):
        assert _resolve_backend(b) == "triton"
    with pytest.raises(ValueError, match="no AITER prefill adapter"):
        _resolve_backend("aiter")
    with pytest.raises(ValueError, match="backend"):
        _resolve_backend("cutlass")
    assert _resolve_backend("fa3", unknown="warn") == "triton"


# ---- paged wrapper ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("five_d", [True, False])
@pytest.mark.parametrize("page", [1, 5, 16])
def test_paged_wrapper_matches_reference(layout, five_d, page):
    qo, kv = [3, 0, 9, 4], [7, 4, 20, 0]
    qo[3] = 0  # kv_len 0 request must be empty under causal
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, page, 8, 2, 64, layout=layout, five_d=five_d)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws(), layout)
    w.plan(qo_ip, kv_ip, idx, last, 8, 2, 64, page, causal=True, fixed_split_size=64, disable_split_kv=True)
    out = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:2], float("nan"), device=DEV)
    o, l = w.run(q, cache, out=out, lse=lse, return_lse=True)
    assert o is out and l is lse
    ro, rl = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, layout, causal=True)
    _close(o, ro, torch.float16)
    torch.testing.assert_close(l, rl, rtol=2e-3, atol=2e-3)
    o2, _ = w.run_return_lse(q, cache)
    torch.testing.assert_close(o2, o)


def test_paged_wrapper_fp8_scales_and_forward():
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch([4, 6], [9, 30], 16, 4, 4, 128, dtype=torch.bfloat16,
                                                             kv_dtype=FP8[0])
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws())
    w.begin_forward(qo_ip, kv_ip, idx, last, 4, 4, 128, 16, causal=True, q_data_type="bfloat16",
                    kv_data_type=FP8[0])
    o = w.run(q, cache, k_scale=0.5, v_scale=2.0)
    ro, _ = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, "NHD", causal=True, k_scale=0.5, v_scale=2.0)
    _close(o, ro, torch.bfloat16)
    # deprecated forward(): overrides the planned scalars (non-causal, soft cap)
    o, lse = w.forward_return_lse(q, cache, causal=False, logits_soft_cap=10.0)
    ro, rl = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, "NHD", logits_soft_cap=10.0)
    _close(o, ro, torch.bfloat16)
    w.end_forward()


def test_paged_wrapper_custom_mask_bool_and_packed():
    qo, kv = [3, 5], [6, 11]
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, 4, 4, 2, 64)
    masks = [torch.rand(a, b, device=DEV) > 0.5 for a, b in zip(qo, kv)]
    flat = torch.cat([m.flatten() for m in masks])
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws())
    w.plan(qo_ip, kv_ip, idx, last, 4, 2, 64, 4, custom_mask=flat)
    o1 = w.run(q, cache)
    seg = torch.tensor([0, qo[0] * kv[0], qo[0] * kv[0] + qo[1] * kv[1]], dtype=torch.int32, device=DEV)
    packed, _ = flashinfer.segment_packbits(flat, seg, "little")
    w.plan(qo_ip, kv_ip, idx, last, 4, 2, 64, 4, packed_custom_mask=packed)
    o2 = w.run(q, cache)
    torch.testing.assert_close(o1, o2)
    kvs = gather_paged_kv(kc, vc, kv_ip, idx.to(kc.device), last)
    for i, (k, v) in enumerate(kvs):
        s, e = int(qo_ip[i]), int(qo_ip[i + 1])
        _close(o1[s:e], single_attention(q[s:e], k, v, custom_mask=masks[i])[0], torch.float16)


def test_paged_wrapper_errors_write_nothing():
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch([3, 4], [5, 9], 4, 4, 2, 64)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws())
    with pytest.raises(ValueError, match="num_qo_heads"):
        w.plan(qo_ip, kv_ip, idx, last, 4, 3, 64, 4)
    with pytest.raises(ValueError, match="qo_len"):
        w.plan(torch.tensor([0, 9, 10], dtype=torch.int32), kv_ip, idx, last, 4, 2, 64, 4, causal=True)
    bad_last = last.clone()
    bad_last[0] = 5
    with pytest.raises(ValueError, match="paged_kv_last_page_len"):
        w.plan(qo_ip, kv_ip, idx, bad_last, 4, 2, 64, 4)
    bad_idx = idx.clone()
    bad_idx[1] = -1
    with pytest.raises(ValueError, match="paged_kv_indices"):
        w.plan(qo_ip, kv_ip, bad_idx, last, 4, 2, 64, 4)
    with pytest.raises(ValueError, match="paged_kv_indptr"):
        w.plan(qo_ip, torch.tensor([0, 3, 2], dtype=torch.int32), idx, last, 4, 2, 64, 4)
    with pytest.raises(KeyError, match="kv_layout"):
        flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws(), "NDH")
    with pytest.raises(ValueError, match="aiter"):
        flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws(), backend="aiter")
    w.plan(qo_ip, kv_ip, idx, last, 4, 2, 64, 4, q_data_type=torch.float16)
    out = torch.zeros_like(q)
    with pytest.raises(ValueError, match="q: expected dtype"):
        w.run(q.bfloat16(), cache, out=out)
    with pytest.raises(ValueError, match="kv: expected dtype"):
        w.run(q, cache.bfloat16(), out=out)
    big = idx.clone()
    big[0] = 1000
    w.plan(qo_ip, kv_ip, big, last, 4, 2, 64, 4)
    with pytest.raises(ValueError, match="out of range"):
        w.run(q, cache, out=out)
    with pytest.raises(ValueError, match="window_left"):
        w.run(q, cache, out=out, window_left=3)
    assert not out.any(), "a rejected run wrote into out"


def test_graph_mode_buffers_checked():
    """Graph-mode buffers: present, 1-D int32 on the workspace's device, lengths agreeing."""
    i32 = dict(dtype=torch.int32, device=DEV)
    good = dict(qo_indptr_buf=torch.zeros(4, **i32), paged_kv_indptr_buf=torch.zeros(4, **i32),
                paged_kv_indices_buf=torch.zeros(10, **i32), paged_kv_last_page_len_buf=torch.zeros(3, **i32))
    flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws(), use_cuda_graph=True, **good)
    with pytest.raises(ValueError, match="qo_indptr_buf"):
        flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws(), use_cuda_graph=True)
    bad_cases = [("paged_kv_indices_buf", torch.zeros(10, dtype=torch.int64, device=DEV), "int32"),
                 ("paged_kv_last_page_len_buf", torch.zeros(4, **i32), "expected length 3"),
                 ("paged_kv_indptr_buf", torch.zeros(4, 1, **i32), "1-D"),
                 ("qo_indptr_buf", torch.zeros(4, dtype=torch.int32, device="meta"), "on ")]
    for name, buf, msg in bad_cases:
        with pytest.raises(ValueError, match=f"{name}: .*{msg}"):
            flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws(), use_cuda_graph=True, **{**good, name: buf})
    flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws(), use_cuda_graph=True, qo_indptr_buf=good["qo_indptr_buf"],
                                                    kv_indptr_buf=torch.zeros(4, **i32))
    with pytest.raises(ValueError, match="kv_indptr_buf: expected length 4"):
        flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws(), use_cuda_graph=True, qo_indptr_buf=good["qo_indptr_buf"],
                                                        kv_indptr_buf=torch.zeros(5, **i32))
    with pytest.raises(ValueError, match="kv_indptr_buf: expected a 1-D int32"):
        flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws(), use_cuda_graph=True, qo_indptr_buf=good["qo_indptr_buf"],
                                                        kv_indptr_buf=torch.zeros(4, dtype=torch.int64, device=DEV))


# ---- ragged wrapper ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHD", "HND"])
def test_ragged_wrapper_192_128_and_masks(layout):
    qo, kv = [4, 0, 6], [9, 3, 6]
    qo_ip = torch.tensor(np.concatenate([[0], np.cumsum(qo)]), dtype=torch.int32)
    kv_ip = torch.tensor(np.concatenate([[0], np.cumsum(kv)]), dtype=torch.int32)
    q = torch.randn(10, 8, 192, device=DEV).half()
    k = torch.randn(18, 2, 192, device=DEV).half()
    v = torch.randn(18, 2, 128, device=DEV).half()
    kk, vv = (k, v) if layout == "NHD" else (k.transpose(0, 1), v.transpose(0, 1))
    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws(), layout)
    w.plan(qo_ip, kv_ip, 8, 2, 192, 128, causal=True)
    o, lse = w.run(q, kk, vv, return_lse=True)
    assert o.shape == (10, 8, 128)
    for i in range(3):
        s, e, ks, ke = qo_ip[i], qo_ip[i + 1], kv_ip[i], kv_ip[i + 1]
        ro, rl = single_attention(q[s:e], k[ks:ke], v[ks:ke], causal=True)
        _close(o[s:e], ro, torch.float16)
    o2 = w.forward(q, kk, vv, causal=True)
    torch.testing.assert_close(o2, o)
    o3, l3 = w.forward_return_lse(q, kk, vv, causal=True)
    torch.testing.assert_close(l3, lse)
    w.end_forward()


def test_ragged_wrapper_errors():
    with pytest.raises(ValueError, match="backend"):
        flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws(), backend="cutlass")
    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws())
    with pytest.raises(ValueError, match="kv_indptr"):
        w.plan(torch.tensor([0, 2, 4], dtype=torch.int32), torch.tensor([0, 3], dtype=torch.int32), 4, 4, 64)
    with pytest.raises(ValueError, match="head_dim"):
        w.plan(torch.tensor([0, 2], dtype=torch.int32), torch.tensor([0, 3], dtype=torch.int32), 4, 4, 96)


# ---- torch.compile, CUDA graphs, torch.export --------------------------------------------------

def _compile_two_plans(device, backend, staged=False):
    """torch.compile(fullgraph) over run(); a re-plan with another composition (same query rows)
    does not recompile. staged: long prompts with staging allowed, so both plans lend the
    workspace to the op (its kv_staging argument traced as a mutated view of the workspace)."""
    torch._dynamo.reset()
    page = 4
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(8 << 20, dtype=torch.uint8, device=device))
    (qo, kv), qo2 = (([150, 130], [160, 140]), [140, 140]) if staged else (([3, 5], [7, 9]), [6, 2])
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, page, 4, 2, 64, device=device)

    @torch.compile(fullgraph=True, backend=backend)
    def f(q, cache):
        return w.run(q, cache) * 2

    w.plan(qo_ip, kv_ip, idx, last, 4, 2, 64, page, causal=True)
    assert bool(w._staging_bytes) == staged
    o1 = f(q, cache)
    ro, _ = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, "NHD", causal=True)
    _close(o1 / 2, ro, torch.float16)
    # a different batch composition with the same number of query rows: no recompile
    qo_ip2 = torch.tensor(np.concatenate([[0], np.cumsum(qo2)]), dtype=torch.int32)
    with torch._dynamo.config.patch(error_on_recompile=True):
        w.plan(qo_ip2, kv_ip, idx, last, 4, 2, 64, page, causal=True)
        assert bool(w._staging_bytes) == staged
        o2 = f(q, cache)
    ro2, _ = _paged_ref(q, kc, vc, qo_ip2, kv_ip, idx, last, "NHD", causal=True)
    _close(o2 / 2, ro2, torch.float16)


@pytest.mark.parametrize("staged", [False, True], ids=["paged", "staged"])
def test_torch_compile_fullgraph_no_recompile_cpu(staged, monkeypatch):
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "always" if staged else "0")
    _compile_two_plans("cpu", "aot_eager", staged)


@pytest.mark.gpu
@pytest.mark.parametrize("staged", [False, True], ids=["paged", "staged"])
def test_torch_compile_fullgraph_no_recompile_gpu(staged, monkeypatch):
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "always" if staged else "0")
    _compile_two_plans("cuda", "inductor", staged)


@pytest.mark.gpu
@pytest.mark.parametrize("staged", [False, True], ids=["paged", "staged"])
def test_cuda_graph_replay_after_replan(staged, monkeypatch):
    """A captured run() replays correctly after a re-plan with another batch composition; staged:
    long prompts and a workspace that holds the K / V copy, so the first plan chooses staging (and
    the captured graph keeps it)."""
    page, hq, hk, d, b = 16, 8, 2, 128, 3
    dev = "cuda"
    max_pages = 64
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "always" if staged else "0")
    bufs = dict(qo_indptr_buf=torch.zeros(b + 1, dtype=torch.int32, device=dev),
                paged_kv_indptr_buf=torch.zeros(b + 1, dtype=torch.int32, device=dev),
                paged_kv_indices_buf=torch.zeros(max_pages, dtype=torch.int32, device=dev),
                paged_kv_last_page_len_buf=torch.zeros(b, dtype=torch.int32, device=dev))
    ws = torch.empty(8 << 20, dtype=torch.uint8, device=dev)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws, use_cuda_graph=True, **bufs)
    cache = torch.randn(max_pages, 2, page, hk, d, device=dev).half()
    kc, vc = cache[:, 0], cache[:, 1]

    def table(qo, kv):
        pages = [-(-x // page) for x in kv]
        qo_ip = torch.tensor(np.concatenate([[0], np.cumsum(qo)]), dtype=torch.int32)
        kv_ip = torch.tensor(np.concatenate([[0], np.cumsum(pages)]), dtype=torch.int32)
        idx = torch.randperm(max_pages)[: sum(pages)].to(torch.int32)
        last = torch.tensor([x - (p - 1) * page for x, p in zip(kv, pages)], dtype=torch.int32)
        return qo_ip, kv_ip, idx, last

    if staged:
        (qo1, kv1), (qo2, kv2), qo3 = ([256, 200, 60], [300, 250, 400]), ([16, 400, 100], [20, 500, 300]), [20, 400, 300]
    else:
        (qo1, kv1), (qo2, kv2), qo3 = ([20, 40, 4], [100, 60, 200]), ([30, 2, 32], [31, 300, 90]), [30] * 3
    w.plan(*table(qo1, kv1), hq, hk, d, page, causal=True)
    assert bool(w._staging_bytes) == staged
    q = torch.randn(sum(qo1), hq, d, device=dev).half()
    out = torch.empty_like(q)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        w.run(q, cache, out=out)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        w.run(q, cache, out=out)
    t2 = table(qo2, kv2)  # same total rows, different composition
    w.plan(*t2, hq, hk, d, page, causal=True)
    out.fill_(float("nan"))
    g.replay()
    torch.cuda.synchronize()
    ro, _ = _paged_ref(q, kc, vc, *t2, "NHD", causal=True)
    _close(out, ro, torch.float16)
    with pytest.raises(ValueError, match="query rows"):
        w.plan(*table(qo3, kv2), hq, hk, d, page, causal=True)


@pytest.mark.gpu
@pytest.mark.parametrize("deal", ["0", "1"], ids=["grid2d", "persistent"])
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_staged_dependent_launch_matches_serial(deal, graph, monkeypatch):
    """FLASHINFER_PREFILL_STAGE_PDL=1: the dense kernel starts as a programmatic dependent of the
    staged copy and waits in-kernel for it; its output (into a NaN-poisoned buffer, eager and
    replayed from a CUDA graph) equals the serial copy-then-dense launch's bit for bit and matches
    the oracle. Odd lengths, so the copy's last chunks and the causal edge tiles are partial."""
    page, hq, hk, d = 16, 8, 2, 128
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "always")
    monkeypatch.setenv("FLASHINFER_PREFILL_DEAL", deal)
    qo, kv = [989, 19, 1, 300], [989, 99, 40, 301]
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, page, hq, hk, d, dtype=torch.bfloat16)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(32 << 20, dtype=torch.uint8, device=DEV))
    w.plan(qo_ip, kv_ip, idx, last, hq, hk, d, page, causal=True, q_data_type=torch.bfloat16)
    assert w._staging_bytes and (w._deal is not None) == (deal == "1")
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE_PDL", "0")
    serial = w.run(q, cache)
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE_PDL", "1")
    out = torch.full_like(q, float("nan"))
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            w.run(q, cache, out=out)
        out.fill_(float("nan"))
        g.replay()
    else:
        w.run(q, cache, out=out)
    torch.cuda.synchronize()
    assert torch.equal(out, serial)
    ro, _ = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, "NHD", causal=True)
    _close(out, ro, torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["ragged", "paged"])
def test_short_prompts_take_the_dealt_persistent_grid(kind, monkeypatch):
    """sm90 default: plan() deals short causal pairs (here ~5 K / V tiles each, 32/8 heads D128)
    to the persistent grid (paged on staged K / V), and run() matches the 2-D grid's output
    (FLASHINFER_PREFILL_DEAL=0) and the oracle, into NaN-poisoned buffers, lse too. Odd lengths,
    so requests end mid-tile; one request without queries."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("the deal is on by default on sm90 only")
    page, hq, hk, d = 16, 32, 8, 128
    qo, kv = [511, 300, 0, 256, 389, 512, 77, 400, 333, 512], [511, 333, 40, 256, 389, 600, 77, 400, 333, 512]
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, page, hq, hk, d, dtype=torch.bfloat16)
    ws = torch.empty(64 << 20, dtype=torch.uint8, device=DEV)
    if kind == "ragged":
        kvs = gather_paged_kv(kc, vc, kv_ip, idx.to(kc.device), last, "NHD")
        k, v = torch.cat([a for a, _ in kvs]), torch.cat([b for _, b in kvs])
        kv_rows = torch.tensor(np.concatenate([[0], np.cumsum(kv)]), dtype=torch.int32)
        monkeypatch.delenv("FLASHINFER_PREFILL_DEAL", raising=False)
        w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(ws)
        plan = lambda: w.plan(qo_ip, kv_rows, hq, hk, d, causal=True, q_data_type=torch.bfloat16)  # noqa: E731
        call = lambda o, l: w.run(q, k, v, out=o, lse=l)  # noqa: E731
    else:
        monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "always")
        w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws)
        plan = lambda: w.plan(qo_ip, kv_ip, idx, last, hq, hk, d, page, causal=True,  # noqa: E731
                              q_data_type=torch.bfloat16)
        call = lambda o, l: w.run(q, cache, out=o, lse=l)  # noqa: E731
    results = {}
    for deal in ("", "0"):
        if deal:
            monkeypatch.setenv("FLASHINFER_PREFILL_DEAL", deal)
        else:
            monkeypatch.delenv("FLASHINFER_PREFILL_DEAL", raising=False)
        plan()
        assert (w._deal is not None) == (deal == "")
        out = torch.full_like(q, float("nan"))
        lse = torch.full(q.shape[:2], float("nan"), device=DEV)
        call(out, lse)
        results[deal] = (out, lse)
    (o1, l1), (o0, l0) = results[""], results["0"]
    assert not o1.isnan().any() and not l1.isnan().any()
    _close(o1, o0, torch.bfloat16, atol=2e-2)
    assert (l1 - l0).abs().max().item() < 1e-2
    ro, _ = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, "NHD", causal=True)
    _close(o1, ro, torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.parametrize("page", [16, 32, 64])
@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("form", ["1", "ws", "ws_overlap"])
def test_paged_prefill_reads_pages_in_place(page, layout, causal, form, monkeypatch):
    """Each in-place paged kernel form against the oracle and the default path
    (_check_paged_in_place)."""
    _check_paged_in_place(page, layout, causal, monkeypatch, form=form)


@pytest.mark.gpu
def test_paged_prefill_in_place_plan_with_an_unaligned_cache(monkeypatch):
    """A cache the copy engine cannot address (head stride of 130 elements: 260 bytes) under a plan
    for the in-place pages: run() falls back to the paged kernel at the plan's tile height, with
    the same results."""
    _check_paged_in_place(16, "NHD", True, monkeypatch, pad=2)


def _check_paged_in_place(page, layout, causal, monkeypatch, pad=0, form="1"):
    """sm90 with Gluon, FLASHINFER_PREFILL_INPLACE=form (opt-in: paged_inplace): plan() picks the
    in-place paged kernel (no staging, a deal) for 16-bit D128 K / V at pages 16 / 32 / 64, and
    run() matches the oracle and the default path (FLASHINFER_PREFILL_INPLACE=0), into
    NaN-poisoned out / lse, with NaN in every cache slot no request owns (the partly filled last
    pages' tails, spare pages). Odd lengths (1, 19, 99, 989), a request without queries and one
    with qo_len < kv_len."""
    from flashinfer_ops.configs.attention.prefill import gluon_hopper

    if torch.cuda.get_device_capability() < (9, 0) or not gluon_hopper():
        pytest.skip("the in-place paged kernel is sm90 Gluon")
    for var in ("FLASHINFER_PREFILL_STAGE", "FLASHINFER_PREFILL_DEAL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLASHINFER_PREFILL_INPLACE", form)
    hq, hk, d = 32, 8, 128
    qo, kv = [1, 19, 99, 0, 989, 64, 17], [1, 19, 120, 33, 989, 64, 40]
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, page, hq, hk, d + pad, dtype=torch.bfloat16,
                                                             layout=layout)
    cache, kc, vc, q = cache[..., :d], kc[..., :d], vc[..., :d], q[..., :d].contiguous()
    for r, n in enumerate(kv):  # NaN past each request's tokens and in the spare pages
        pages = idx[int(kv_ip[r]):int(kv_ip[r + 1])].tolist()
        for j in range(n, len(pages) * page):
            sl = (slice(None), j % page) if layout == "NHD" else (slice(None), slice(None), j % page)
            cache[(pages[j // page],) + sl] = float("nan")
    spare = sorted(set(range(cache.shape[0])) - set(idx.tolist()))
    cache[spare] = float("nan")
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(128 << 20, dtype=torch.uint8, device=DEV),
                                                       kv_layout=layout)
    plan = lambda: w.plan(qo_ip, kv_ip, idx, last, hq, hk, d, page, causal=causal,  # noqa: E731
                          q_data_type=torch.bfloat16)
    plan()
    assert w._inplace and not w._staging_bytes and w._deal is not None
    out = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:2], float("nan"), device=DEV)
    w.run(q, cache, out=out, lse=lse)
    monkeypatch.setenv("FLASHINFER_PREFILL_INPLACE", "0")
    plan()
    assert not w._inplace
    o0, l0 = w.run(q, cache, return_lse=True)
    torch.cuda.synchronize()
    assert not out.isnan().any() and not lse.isnan().any()
    ro, rl = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, layout, causal=causal)
    _close(out, ro, torch.bfloat16)
    _close(out, o0, torch.bfloat16, atol=2e-2)
    assert (lse - l0).abs().max().item() < 1e-2
    assert (lse - rl.to(lse.device)).abs().max().item() < 2e-2


def test_paged_wrapper_stages_long_prompts(monkeypatch):
    """plan() lends the workspace as K / V staging only for long prompts (each K / V row read >=
    STAGE_MIN_REUSE times) and when it fits; the result matches the oracle either way (on a GPU
    the staged path runs the copy and the dense kernel; on the CPU the reference)."""
    from flashinfer_ops.configs.attention import prefill as pcfg

    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "1")
    monkeypatch.setattr(pcfg, "STAGE_MIN_REUSE", 4)  # prompts short enough for the interpreter
    qo, kv = [300, 1, 0, 130], [301, 40, 17, 700]
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, 16, 8, 2, 64)
    from flashinfer_ops.fake.attention.prefill import staging_bytes
    need = staging_bytes(int(kv_ip[-1]), 16, 2, 64, 64, torch.float16)
    for ws_bytes, long_q, want in ((need, True, True), (need - 1, True, False), (need, False, False)):
        w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(ws_bytes, dtype=torch.uint8, device=DEV))
        qo_use = qo if long_q else [1, 1, 0, 1]
        qi = torch.tensor(np.concatenate([[0], np.cumsum(qo_use)]), dtype=torch.int32)
        w.plan(qi, kv_ip, idx, last, 8, 2, 64, 16, causal=True)
        assert bool(w._staging_bytes) == want, (ws_bytes, long_q)
        qq = q[: int(qi[-1])]
        o, lse = w.run(qq, cache, return_lse=True)
        ro, rl = _paged_ref(qq, kc, vc, qi, kv_ip, idx, last, "NHD", causal=True)
        _close(o, ro, torch.float16)
        torch.testing.assert_close(lse, rl, rtol=2e-3, atol=2e-3)
        if want:  # a workspace swapped for a smaller one is refused by the op, not overrun
            w.reset_workspace_buffer(torch.empty(need - 16, dtype=torch.uint8, device=DEV))
            with pytest.raises(ValueError, match="kv_staging"):
                w.run(qq, cache)
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "0")
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(need, dtype=torch.uint8, device=DEV))
    w.plan(qo_ip, kv_ip, idx, last, 8, 2, 64, 16, causal=True)
    assert not w._staging_bytes
    # the op itself: a staging buffer one byte short is refused, nothing written
    out = torch.full_like(q, 7.0)
    bad = [(torch.empty(need - 1, dtype=torch.uint8, device=DEV), "needs"),
           (torch.empty(need, dtype=torch.int8, device=DEV), "kv_staging"),
           (torch.empty(2, need, dtype=torch.uint8, device=DEV)[:, 0], "kv_staging")]
    for staging, msg in bad:
        with pytest.raises(ValueError, match=msg):
            torch.ops.flashinfer.batch_prefill_paged(out, None, q, kc, vc, w._work, idx.to(DEV), None, w._block_m, 1,
                                                     0, 0, 0.125, -1, 0.0, 1.0, 1e4, 1.0, staging)
        assert bool((out == 7.0).all())


class _SinglePrefill(torch.nn.Module):
    def forward(self, q, k, v):
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[0], q.shape[1], dtype=torch.float32, device=q.device)
        torch.ops.flashinfer.single_prefill.default(out, lse, q, k, v, None, 1, 0, 0, 0.125, -1, 0.0, 1.0, 1e4, 1.0)
        return out, lse


def test_torch_export_round_trip(tmp_path):
    q = torch.randn(5, 4, 64, device=DEV).half()
    k = torch.randn(8, 2, 64, device=DEV).half()
    v = torch.randn(8, 2, 64, device=DEV).half()
    ep = torch.export.export(_SinglePrefill(), (q, k, v))
    path = tmp_path / "prefill.pt2"
    torch.export.save(ep, str(path))
    loaded = torch.export.load(str(path))
    o1, l1 = loaded.module()(q, k, v)
    o2, l2 = _SinglePrefill()(q, k, v)
    torch.testing.assert_close(o1, o2)
    torch.testing.assert_close(l1, l2)
    assert "flashinfer.single_prefill" in str(ep.graph)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_wrappers_on_gpu_large(dtype):
    """The facade's schedule with the real tile size: GQA 32/8, D128, causal, odd lengths, page 16."""
    qo, kv = [1, 300, 0, 1000, 77], [1, 301, 50, 4000, 77]
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, 16, 32, 8, 128, dtype=dtype)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(_ws())
    w.plan(qo_ip, kv_ip, idx, last, 32, 8, 128, 16, causal=True, q_data_type=dtype)
    o, lse = w.run(q, cache, return_lse=True)
    ro, rl = _paged_ref(q, kc, vc, qo_ip, kv_ip, idx, last, "NHD", causal=True)
    _close(o, ro, dtype)
    torch.testing.assert_close(lse, rl, rtol=1e-2, atol=1e-2)


def test_ragged_graph_mode_fixed_schedule_replans():
    """Graph mode: fixed batch, persistent schedule sized at the first plan; a later plan with a
    different composition (same rows) reuses the same buffers."""
    b = 3
    qo_buf = torch.zeros(b + 1, dtype=torch.int32, device=DEV)
    kv_buf = torch.zeros(b + 1, dtype=torch.int32, device=DEV)
    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(_ws(), use_cuda_graph=True, qo_indptr_buf=qo_buf,
                                                        kv_indptr_buf=kv_buf)
    q = torch.randn(12, 4, 64, device=DEV).half()
    k = torch.randn(40, 2, 64, device=DEV).half()
    v = torch.randn(40, 2, 64, device=DEV).half()
    work = None
    for qo, kv in (([2, 4, 6], [9, 4, 27]), ([10, 1, 1], [12, 1, 20])):
        qo_ip = torch.tensor(np.concatenate([[0], np.cumsum(qo)]), dtype=torch.int32)
        kv_ip = torch.tensor(np.concatenate([[0], np.cumsum(kv)]), dtype=torch.int32)
        w.plan(qo_ip, kv_ip, 4, 2, 64, causal=True)
        assert work is None or w._work is work, "graph mode must keep the schedule buffer"
        work = w._work
        assert torch.equal(qo_buf.cpu(), qo_ip)
        o = w.run(q, k, v)
        for i in range(b):
            s, e, ks, ke = qo_ip[i], qo_ip[i + 1], kv_ip[i], kv_ip[i + 1]
            _close(o[s:e], single_attention(q[s:e], k[ks:ke], v[ks:ke], causal=True)[0], torch.float16)
    with pytest.raises(ValueError, match="batch size"):
        w.plan(torch.tensor([0, 12], dtype=torch.int32), torch.tensor([0, 40], dtype=torch.int32), 4, 2, 64)


def test_staging_threshold_counts_reads_to_the_diagonal(monkeypatch):
    """Chunked prefill (few new queries on a long cache): each query tile reads the K / V rows up to
    its causal diagonal, i.e. almost all of them; staging starts at STAGE_MIN_REUSE reads a row,
    and FLASHINFER_PREFILL_STAGE=always drops the threshold."""
    from flashinfer_ops.configs.attention.prefill import STAGE_MIN_REUSE
    from flashinfer_ops.launch.attention.prefill import block_m_for, tile_kv_reads

    page, hq, hk, d = 4, 8, 2, 64
    bm = block_m_for(torch.device(DEV), d, d)
    rows_per_read = bm // (hq // hk)  # queries a tile holds
    kv = 32 * (STAGE_MIN_REUSE + 1) * rows_per_read  # every tile reads >= 98% of the rows
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "1")
    for tiles in (STAGE_MIN_REUSE - 1, STAGE_MIN_REUSE + 1):
        qo = [tiles * rows_per_read] * 2
        _, _, reads = tile_kv_reads(np.array(qo), np.array([kv, kv]), hq // hk, bm, True)
        q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, [kv, kv], page, hq, hk, d)
        w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(64 << 20, dtype=torch.uint8, device=DEV))
        w.plan(qo_ip, kv_ip, idx, last, hq, hk, d, page, causal=True)
        assert bool(w._staging_bytes) == (int(reads.sum()) >= STAGE_MIN_REUSE * 2 * kv)
        assert bool(w._staging_bytes) == (tiles > STAGE_MIN_REUSE)
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "always")
    w.plan(*_paged_batch([1, 1], [kv, kv], page, hq, hk, d)[4:], hq, hk, d, page, causal=True)
    assert w._staging_bytes


def test_inplace_setting_reads_the_switch(monkeypatch):
    """FLASHINFER_PREFILL_INPLACE: unset -> the default form, plan() deciding where; 0 -> off; 1 or a
    form name -> that form forced; anything else a ValueError naming the variable."""
    from flashinfer_ops.configs.attention.prefill import INPLACE_DEFAULT_FORM, INPLACE_FORMS, inplace_setting

    monkeypatch.delenv("FLASHINFER_PREFILL_INPLACE", raising=False)
    assert inplace_setting() == (INPLACE_DEFAULT_FORM, False)
    monkeypatch.setenv("FLASHINFER_PREFILL_INPLACE", "0")
    assert inplace_setting() == (None, False)
    monkeypatch.setenv("FLASHINFER_PREFILL_INPLACE", "1")
    assert inplace_setting() == ("plain", True)
    for form in INPLACE_FORMS:
        monkeypatch.setenv("FLASHINFER_PREFILL_INPLACE", form)
        assert inplace_setting() == (form, True)
    monkeypatch.setenv("FLASHINFER_PREFILL_INPLACE", "fast")
    with pytest.raises(ValueError, match="FLASHINFER_PREFILL_INPLACE"):
        inplace_setting()


def test_short_pairs_pick_the_in_place_pages(monkeypatch):
    """The paged wrapper's default rule on sm90 (short_pairs, as plan() computes it for 132 SMs x 2
    programs), bf16 32/8 heads D128 causal: 16 prompts of 1024 tokens have short pairs (in place);
    4 of 4096, one of 8192 and chunked prefill (64 new queries on 4096 cached) do not (staged or
    the paged kernel); graph mode never; FLASHINFER_PREFILL_DEAL=0 / 1 switch the rule off / on."""
    from flashinfer_ops.configs.attention.prefill import prefill_config
    from flashinfer_ops.launch.attention.prefill import short_pairs, tile_kv_reads

    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the sm90 table, as on a GPU
    monkeypatch.delenv("FLASHINFER_PREFILL_DEAL", raising=False)
    n_prog = 2 * 132

    def short(qo, kv, graph=False):
        bm = prefill_config("sm90", 128, 128).block_m
        _, _, reads = tile_kv_reads(np.array(qo), np.array(kv), 4, bm, True)
        return short_pairs("sm90", n_prog, reads, 8, (128, 128), graph)

    assert short([1024] * 16, [1024] * 16)
    assert not short([4096] * 4, [4096] * 4)
    assert not short([8192], [8192])
    assert not short([64] * 8, [4096] * 8)
    assert not short([1024] * 16, [1024] * 16, graph=True)
    assert not short([1] * 4, [1] * 4)  # too few pairs to fill the grid twice
    monkeypatch.setenv("FLASHINFER_PREFILL_DEAL", "0")
    assert not short([1024] * 16, [1024] * 16)
    monkeypatch.setenv("FLASHINFER_PREFILL_DEAL", "1")
    assert short([4096] * 4, [4096] * 4)


def test_default_switches_per_family(monkeypatch):
    """The sm90 defaults of 2026-12-06 (NOTES.md): staging only where the dense kernel would read
    K / V through descriptors (sm90 with a copy engine, 16-bit K / V, no extras, exact head dims),
    the diagonal loop only on the descriptor path, the in-kernel merge only on sm90; AMD keeps all
    three off; the switches override the rule both ways."""
    from flashinfer_ops.configs.attention.decode import fused_merge
    from flashinfer_ops.configs.attention.prefill import diag_in_loop, stage_enabled

    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the rule as on a GPU (the interpreter has no descriptors)
    for name in ("FLASHINFER_PREFILL_STAGE", "FLASHINFER_PREFILL_DIAG_LOOP", "FLASHINFER_DECODE_FUSED_MERGE",
                 "FLASHINFER_PREFILL_TMA"):
        monkeypatch.delenv(name, raising=False)
    assert stage_enabled("sm90", False, False, 128, 128, True)
    assert not stage_enabled("sm90", False, False, 128, 128, False)  # no copy engine (CPU, pre-Hopper)
    assert not stage_enabled("sm90", True, False, 128, 128, True)  # fp8 K / V
    assert not stage_enabled("sm90", False, True, 128, 128, True)  # mask / RoPE / ALiBi / soft cap
    for fam in ("gfx942", "gfx950"):
        assert not stage_enabled(fam, False, False, 128, 128, True)
        assert not fused_merge(fam)
    assert fused_merge("sm90")
    assert diag_in_loop(True) and not diag_in_loop(False)
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "0")
    assert not stage_enabled("sm90", False, False, 128, 128, True)
    monkeypatch.setenv("FLASHINFER_PREFILL_STAGE", "1")
    assert stage_enabled("gfx942", True, True, 128, 128, False)
    monkeypatch.setenv("FLASHINFER_PREFILL_DIAG_LOOP", "0")
    monkeypatch.setenv("FLASHINFER_DECODE_FUSED_MERGE", "0")
    assert not diag_in_loop(True) and not fused_merge("sm90")
    monkeypatch.setenv("FLASHINFER_PREFILL_DIAG_LOOP", "1")
    monkeypatch.setenv("FLASHINFER_DECODE_FUSED_MERGE", "1")
    assert diag_in_loop(False) and fused_merge("gfx942")


@pytest.mark.gpu
def test_sm90_defaults_choose_staging_and_fused_merge(monkeypatch):
    """On an sm90 GPU with no switch set, plan() takes the paths the benchmark rows measure: the
    pages read in place for short causal pairs (16 x 1024, bf16, D128: ~9.5 K / V tiles a pair;
    with Gluon), staging for long square prompts (4 x 4096: 130 reads a row, ~33 tiles a pair),
    neither for fp8 K / V or chunked prefill (64 new queries on 4096 cached tokens), and the
    in-kernel merge for decode 16 x 4096; every result still matches the oracle (the in-place and
    staged ones are checked here)."""
    from flashinfer_ops.configs import arch_family, has_tensor_copy_engine
    from flashinfer_ops.configs.attention.prefill import gluon_hopper

    dev = torch.device("cuda")
    if arch_family(dev) != "sm90" or not has_tensor_copy_engine(dev):
        pytest.skip("the sm90 defaults apply to Hopper-class NVIDIA GPUs")
    for name in ("FLASHINFER_PREFILL_STAGE", "FLASHINFER_PREFILL_DIAG_LOOP", "FLASHINFER_DECODE_FUSED_MERGE",
                 "FLASHINFER_PREFILL_INPLACE", "FLASHINFER_PREFILL_DEAL"):
        monkeypatch.delenv(name, raising=False)
    ws = torch.empty(128 << 20, dtype=torch.uint8, device=dev)
    hq, hk, d, page = 32, 8, 128, 16
    short = gluon_hopper()
    cases = (([1024] * 16, [1024] * 16, torch.bfloat16, (short, not short)),
             ([4096] * 4, [4096] * 4, torch.bfloat16, (False, True)),
             ([64] * 8, [4096] * 8, torch.bfloat16, (False, False)))
    for qo, kv, kv_dtype, (want_inplace, want_staged) in cases:
        q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch(qo, kv, page, hq, hk, d, dtype=torch.bfloat16,
                                                                 kv_dtype=kv_dtype, device="cuda")
        w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws)
        w.plan(qo_ip, kv_ip, idx, last, hq, hk, d, page, causal=True, q_data_type=torch.bfloat16,
               kv_data_type=kv_dtype)
        assert (w._inplace, bool(w._staging_bytes)) == (want_inplace, want_staged), (qo[:1], kv[:1])
        if want_inplace or want_staged:
            out = w.run(q, cache)
            ro, _ = _paged_ref(q.float(), kc.float(), vc.float(), qo_ip, kv_ip, idx, last, "NHD", causal=True)
            _close(out, ro, torch.bfloat16)
    fp8 = torch.float8_e4m3fn
    q, cache, kc, vc, qo_ip, kv_ip, idx, last = _paged_batch([1024] * 4, [1024] * 4, page, hq, hk, d,
                                                             dtype=torch.bfloat16, kv_dtype=fp8, device="cuda")
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws)
    w.plan(qo_ip, kv_ip, idx, last, hq, hk, d, page, causal=True, q_data_type=torch.bfloat16, kv_data_type=fp8)
    assert not w._staging_bytes
    pages = 4096 // page
    dw = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, "NHD")
    dw.plan(torch.arange(17, dtype=torch.int32) * pages, torch.randperm(16 * pages, dtype=torch.int32).cuda(),
            torch.full((16,), page, dtype=torch.int32), hq, hk, d, page, q_data_type=torch.bfloat16)
    assert dw._merge_counters is not None
