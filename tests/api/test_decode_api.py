"""Decode facade: plan/run, layouts, deprecated entry points, errors, CUDA graphs, torch.compile,
torch.export. On CPU the ops dispatch to the reference kernels (this tests the facade plumbing and
the planner); on a GPU they run the Triton kernels."""
import math

import pytest
import torch

import flashinfer
from flashinfer.decode import fast_decode_plan
from flashinfer_ops.reference import attention as ref
from helpers import HAS_GPU, poison

DEV = "cuda" if HAS_GPU else "cpu"
TOL = dict(rtol=2e-2, atol=2e-2)


def _batch(lens, page, h_kv=2, d=64, dtype=torch.float16, layout="NHD", extra_pages=4):
    pages = [-(-n // page) for n in lens]
    total = sum(pages) + extra_pages
    perm = torch.randperm(total).tolist()
    indptr, indices, last = [0], [], []
    for n, p in zip(lens, pages):
        indices += perm[:p]
        perm = perm[p:]
        indptr.append(indptr[-1] + p)
        last.append(n - (p - 1) * page if p else 0)
    shape = (total, 2, page, h_kv, d) if layout == "NHD" else (total, 2, h_kv, page, d)
    cache = torch.randn(shape, device=DEV).to(dtype)
    i32 = dict(dtype=torch.int32, device=DEV)
    return cache, torch.tensor(indptr, **i32), torch.tensor(indices, **i32), torch.tensor(last, **i32)


def _want(q, cache, indptr, indices, last, layout="NHD", **kw):
    k, v = cache.unbind(1)
    return ref.batch_decode_paged(q, k, v, indptr, indices, last, layout, **kw)


def _ws():
    return torch.zeros(32 << 20, dtype=torch.uint8, device=DEV)


@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("tuple_cache", [False, True])
def test_plan_run_layouts_and_outputs(layout, tuple_cache):
    lens, page, h_qo, h_kv, d = [13, 0, 40, 1], 4, 8, 2, 64
    cache, indptr, indices, last = _batch(lens, page, h_kv, d, torch.bfloat16, layout)
    q = torch.randn(len(lens), h_qo, d, device=DEV).to(torch.bfloat16)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), layout)
    w.plan(indptr, indices, last, h_qo, h_kv, d, page, q_data_type="bfloat16")
    kv = cache.unbind(1) if tuple_cache else cache
    out, lse = w.run(q, kv, return_lse=True)
    want_o, want_lse = _want(q, cache, indptr, indices, last, layout)
    torch.testing.assert_close(out.float(), want_o, **TOL)
    torch.testing.assert_close(lse, want_lse, rtol=1e-3, atol=2e-2)
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    assert (out[1] == 0).all() and torch.isneginf(lse[1]).all()
    # out= / lse= destinations, run_return_lse, deprecated forward* and end_forward
    o2, l2 = poison(torch.empty_like(out)), poison(torch.empty_like(lse))
    r = w.run(q, kv, out=o2, lse=l2)
    assert r[0] is o2 and r[1] is l2
    torch.testing.assert_close(o2, out)
    torch.testing.assert_close(w.run_return_lse(q, kv)[1], lse)
    torch.testing.assert_close(w.forward(q, kv), out)
    torch.testing.assert_close(w.forward_return_lse(q, kv)[0], out)
    w.end_forward()


def test_scales_soft_cap_window_and_begin_forward():
    lens, page, h_qo, h_kv, d = [50, 7, 33], 16, 4, 4, 128
    cache, indptr, indices, last = _batch(lens, page, h_kv, d)
    q = torch.randn(3, h_qo, d, device=DEV).half()
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD", use_tensor_cores=True)
    assert w.use_tensor_cores and not w.is_cuda_graph_enabled
    w.begin_forward(indptr, indices, last, h_qo, h_kv, d, page, window_left=9, logits_soft_cap=20.0, sm_scale=0.05,
                    data_type=torch.float16)
    assert w._logits_soft_cap == 20.0 and w._window_left == 9 and w._sm_scale == 0.05
    out = w.run(q, cache, q_scale=2.0, k_scale=0.5, v_scale=3.0, window_left=9)
    want, _ = _want(q, cache, indptr, indices, last, sm_scale=0.05, logits_soft_cap=20.0, window_left=9, v_scale=3.0)
    torch.testing.assert_close(out.float(), want, **TOL)


def test_single_decode_facade():
    h_qo, h_kv, d, n = 8, 2, 128, 77
    q = torch.randn(h_qo, d, device=DEV).half()
    k = torch.randn(n, h_kv, d, device=DEV).half()
    v = torch.randn(n, h_kv, d, device=DEV).half()
    out, lse = flashinfer.single_decode_with_kv_cache(q, k, v, return_lse=True, pos_encoding_mode="ALIBI",
                                                      logits_soft_cap=8.0, window_left=30)
    want_o, want_lse = ref.single_attention(q[None], k, v, alibi=True, logits_soft_cap=8.0, window_left=30)
    torch.testing.assert_close(out.float(), want_o[0], **TOL)
    torch.testing.assert_close(lse, want_lse[0], rtol=1e-3, atol=2e-2)
    hnd = flashinfer.single_decode_with_kv_cache(q, k.transpose(0, 1).contiguous(), v.transpose(0, 1).contiguous(),
                                                 kv_layout="HND", pos_encoding_mode="ROPE_LLAMA", rope_theta=1e5)
    want_r, _ = ref.single_attention(q[None], k, v, rope=True, rope_theta=1e5)
    torch.testing.assert_close(hnd.float(), want_r[0], **TOL)
    assert out.shape == (h_qo, d) and lse.shape == (h_qo,)


# ---- bad input --------------------------------------------------------------------------------

def _planned(lens=(9, 4), page=4, h_qo=4, h_kv=2, d=64):
    cache, indptr, indices, last = _batch(list(lens), page, h_kv, d)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD")
    w.plan(indptr, indices, last, h_qo, h_kv, d, page)
    return w, cache, indptr, indices, last


def test_run_rejects_dtype_and_window_mismatch_without_writing():
    w, cache, *_ = _planned()
    q = torch.randn(2, 4, 64, device=DEV).bfloat16()
    out = poison(torch.empty(2, 4, 64, device=DEV).bfloat16())
    with pytest.raises(ValueError, match="q: planned dtype"):
        w.run(q, cache, out=out)
    assert out.isnan().all()
    with pytest.raises(ValueError, match="paged_kv_cache: planned dtype"):
        w.run(q.half(), cache.bfloat16())
    with pytest.raises(ValueError, match="window_left"):
        w.run(q.half(), cache, window_left=5)
    with pytest.raises(ValueError, match="expected shape"):
        w.run(q.half()[:1], cache)
    with pytest.raises(ValueError, match="out: expected dtype"):
        w.run(q.half(), cache, out=out)
    assert out.isnan().all()
    with pytest.raises(ValueError, match="sinks"):
        w.run(q.half(), cache, sinks=torch.zeros(4, device=DEV))


def test_plan_rejects_bad_arguments_and_page_tables():
    cache, indptr, indices, last = _batch([9, 4], 4)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD")
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        w.plan(indptr, indices, last, 6, 4, 64, 4)
    with pytest.raises(ValueError, match="head_dim"):
        w.plan(indptr, indices, last, 4, 2, 96, 4)
    bad = indptr.clone()
    bad[1] = 5
    bad[2] = 4
    with pytest.raises(ValueError, match="non-decreasing"):
        w.plan(bad, indices, last, 4, 2, 64, 4)
    with pytest.raises(ValueError, match="last_page_len"):
        w.plan(indptr, indices, torch.tensor([5, 1], dtype=torch.int32, device=DEV), 4, 2, 64, 4)
    with pytest.raises(ValueError, match="last_page_len"):
        w.plan(indptr, indices, torch.tensor([0, 1], dtype=torch.int32, device=DEV), 4, 2, 64, 4)
    neg = indices.clone()
    neg[0] = -3
    with pytest.raises(ValueError, match="indices"):
        w.plan(indptr, neg, last, 4, 2, 64, 4)
    with pytest.raises(ValueError, match="indices"):
        w.plan(indptr, indices[:1], last, 4, 2, 64, 4)
    with pytest.raises(ValueError, match="kv_data_type"):
        w.plan(indptr, indices, last, 4, 2, 64, 4, q_data_type=torch.float16, kv_data_type=torch.bfloat16)
    with pytest.raises(KeyError):
        w.plan(indptr, indices, last, 4, 2, 64, 4, pos_encoding_mode="ROPE")
    assert not w._planned  # nothing was planned by the rejected calls
    with pytest.raises(RuntimeError, match="before plan"):
        w.run(torch.randn(2, 4, 64, device=DEV).half(), cache)


def test_constructor_errors():
    with pytest.raises(KeyError):
        flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NDH")
    with pytest.raises(ValueError, match="aiter"):
        flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD", backend="aiter")
    with pytest.raises(ValueError, match="backend"):
        flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD", backend="cudnn")
    with pytest.raises(ValueError, match="paged_kv_indptr_buffer"):
        flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD", use_cuda_graph=True)
    i32 = dict(dtype=torch.int32, device=DEV)
    with pytest.raises(ValueError, match="paged_kv_last_page_len_buffer: expected length 2"):
        flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD", use_cuda_graph=True,
                                                      paged_kv_indptr_buffer=torch.zeros(3, **i32),
                                                      paged_kv_indices_buffer=torch.zeros(10, **i32),
                                                      paged_kv_last_page_len_buffer=torch.zeros(3, **i32))
    for name in ("auto", "fa2", "triton", "native"):
        flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD", backend=name)


# ---- graph mode: fixed buffers, re-plan, fast_decode_plan ------------------------------------------

def _graph_wrapper(batch, max_pages):
    i32 = dict(dtype=torch.int32, device=DEV)
    bufs = torch.zeros(batch + 1, **i32), torch.zeros(max_pages, **i32), torch.zeros(batch, **i32)
    w = flashinfer.CUDAGraphBatchDecodeWithPagedKVCacheWrapper(_ws(), *bufs, "NHD")
    return w, bufs


def test_graph_mode_replan_keeps_buffers_and_fast_plan_matches():
    batch, page, h_qo, h_kv, d = 3, 4, 4, 2, 64
    w, (ip_buf, idx_buf, last_buf) = _graph_wrapper(batch, 64)
    assert w.is_cuda_graph_enabled and w._fixed_batch_size == batch
    cache, indptr, indices, last = _batch([30, 5, 17], page, h_kv, d, extra_pages=20)
    w.plan(indptr, indices, last, h_qo, h_kv, d, page)
    ptrs = [t.data_ptr() for t in (w._work_info, w._request_info, w._tmp_o, w._tmp_lse, w._paged_kv_indices_buf)]
    shapes = [tuple(t.shape) for t in (w._work_info, w._request_info, w._tmp_o, w._tmp_lse)]
    assert torch.equal(ip_buf.cpu(), indptr.cpu()) and torch.equal(last_buf.cpu(), last.cpu())
    q = torch.randn(batch, h_qo, d, device=DEV).half()
    torch.testing.assert_close(w.run(q, cache).float(), _want(q, cache, indptr, indices, last)[0], **TOL)
    _, indptr2, indices2, last2 = _batch([1, 60, 0], page, h_kv, d, extra_pages=0)
    indices2 = indices2 % cache.shape[0]
    w.plan(indptr2, indices2, last2, h_qo, h_kv, d, page)
    assert [t.data_ptr() for t in (w._work_info, w._request_info, w._tmp_o, w._tmp_lse,
                                   w._paged_kv_indices_buf)] == ptrs
    assert [tuple(t.shape) for t in (w._work_info, w._request_info, w._tmp_o, w._tmp_lse)] == shapes
    want2 = _want(q, cache, indptr2, indices2, last2)[0]
    torch.testing.assert_close(w.run(q, cache).float(), want2, **TOL)
    # SGLang's fast re-plan: indices written into the wrapper's buffer, host indptr given
    idx_buf[: indices.numel()].copy_(indices)
    fast_decode_plan(w, indptr, idx_buf, last, h_qo, h_kv, d, page, global_override_indptr_cpu=indptr.cpu())
    torch.testing.assert_close(w.run(q, cache).float(), _want(q, cache, indptr, indices, last)[0], **TOL)
    with pytest.raises(ValueError, match="batch size"):
        w.plan(indptr[:2], indices, last[:1], h_qo, h_kv, d, page)
    with pytest.raises(ValueError, match="paged_kv_indices_buffer"):
        w.plan(indptr * 10, torch.zeros(500, dtype=torch.int32, device=DEV), last, h_qo, h_kv, d, page)


@pytest.mark.gpu
def test_cuda_graph_capture_replay_after_replan():
    batch, page, h_qo, h_kv, d = 7, 16, 32, 8, 128
    w, _ = _graph_wrapper(batch, 4096)
    lens1 = [3000, 17, 1, 900, 4096, 64, 255]
    cache, indptr, indices, last = _batch(lens1, page, h_kv, d, torch.bfloat16, extra_pages=400)
    w.plan(indptr, indices, last, h_qo, h_kv, d, page, q_data_type=torch.bfloat16)
    q = torch.randn(batch, h_qo, d, device=DEV).bfloat16()
    out = torch.empty_like(q)
    lse = torch.empty(batch, h_qo, device=DEV)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            w.run(q, cache, out=out, lse=lse)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        w.run(q, cache, out=out, lse=lse)
    g.replay()
    torch.cuda.synchronize()
    want_o, want_lse = _want(q, cache, indptr, indices, last)
    torch.testing.assert_close(out.float(), want_o, **TOL)
    # a different composition (long single request + empties) through the same captured graph
    lens2 = [0, 8000, 5, 1, 0, 333, 2048]
    _, indptr2, indices2, last2 = _batch(lens2, page, h_kv, d, extra_pages=0)
    indices2 = indices2 % cache.shape[0]
    w.plan(indptr2, indices2, last2, h_qo, h_kv, d, page, q_data_type=torch.bfloat16)
    q.copy_(torch.randn_like(q))
    poison(out)
    g.replay()
    torch.cuda.synchronize()
    want_o, want_lse = _want(q, cache, indptr2, indices2, last2)
    torch.testing.assert_close(out.float(), want_o, **TOL)
    torch.testing.assert_close(lse, want_lse, rtol=1e-3, atol=2e-2)


# ---- torch.compile / torch.export -----------------------------------------------------------------

@pytest.mark.parametrize("backend", ["aot_eager"] + (["inductor"] if HAS_GPU else []))
def test_compile_fullgraph_no_recompile_across_plans(backend):
    from torch._dynamo.utils import counters

    batch, page, h_qo, h_kv, d = 4, 4, 4, 2, 64
    cache, indptr, indices, last = _batch([10, 3, 7, 1], page, h_kv, d, extra_pages=30)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws(), "NHD")

    def f(q, kv):
        return w.run(q, kv) * 2

    torch._dynamo.reset()
    counters.clear()
    cf = torch.compile(f, fullgraph=True, backend=backend)
    q = torch.randn(batch, h_qo, d, device=DEV).half()
    w.plan(indptr, indices, last, h_qo, h_kv, d, page)
    torch.testing.assert_close(cf(q, cache).float(), 2 * _want(q, cache, indptr, indices, last)[0], **TOL)
    _, indptr2, indices2, last2 = _batch([2, 30, 0, 13], page, h_kv, d, extra_pages=0)
    indices2 = indices2 % cache.shape[0]
    w.plan(indptr2, indices2, last2, h_qo, h_kv, d, page)
    torch.testing.assert_close(cf(q, cache).float(), 2 * _want(q, cache, indptr2, indices2, last2)[0], **TOL)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def test_export_single_decode_round_trip(tmp_path):
    class M(torch.nn.Module):
        def forward(self, q, k, v):
            return flashinfer.single_decode_with_kv_cache(q, k, v, logits_soft_cap=10.0, return_lse=True)

    q = torch.randn(4, 64, device=DEV).half()
    k = torch.randn(33, 2, 64, device=DEV).half()
    v = torch.randn(33, 2, 64, device=DEV).half()
    ep = torch.export.export(M(), (q, k, v))
    path = tmp_path / "decode.pt2"
    torch.export.save(ep, path)
    loaded = torch.export.load(path)
    got_o, got_lse = loaded.module()(q, k, v)
    want_o, want_lse = M()(q, k, v)
    torch.testing.assert_close(got_o, want_o)
    torch.testing.assert_close(got_lse, want_lse)
    assert "flashinfer.single_decode_with_kv_cache" in str(ep.graph)


# ---- cascade state merge facade ------------------------------------------------------------------

def test_cascade_merge_facade():
    seq, h, d = 5, 4, 64
    va, vb = torch.randn(seq, h, d, device=DEV).half(), torch.randn(seq, h, d, device=DEV).half()
    sa, sb = torch.randn(seq, h, device=DEV), torch.randn(seq, h, device=DEV)
    v, s = flashinfer.merge_state(va, sa.half(), vb, sb)
    rv, rs = ref.merge_states(torch.stack([va, vb], 1), torch.stack([sa.half().float(), sb], 1))
    torch.testing.assert_close(v.float(), rv, rtol=2e-3, atol=2e-3)
    assert s.dtype == torch.float32 and v.dtype == torch.float16
    vm, sm = flashinfer.merge_states(torch.stack([va, vb], 1), torch.stack([sa, sb], 1))
    v2, s2 = va.clone(), sa.clone()
    flashinfer.merge_state_in_place(v2, s2, vb, sb)
    torch.testing.assert_close(v2, vm)
    torch.testing.assert_close(s2, sm)
    with pytest.raises(ValueError, match="float32"):
        flashinfer.merge_state_in_place(va.clone(), sa.half(), vb, sb)
    with pytest.raises(ValueError, match="v_b"):
        flashinfer.merge_state(va, sa, vb[:, :2], sb)


def test_merge_counters_checked_by_the_op():
    """The in-kernel merge's ticket counters: int32, 1-D, contiguous, >= batch x num_qo_heads;
    anything else is refused before a write."""
    lens, page, h_qo, h_kv, d = [30, 7], 4, 8, 2, 64
    cache, indptr, indices, last = _batch(lens, page, h_kv, d)
    q = torch.randn(len(lens), h_qo, d, device=DEV).half()
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_ws())
    w.plan(indptr, indices, last, h_qo, h_kv, d, page, fixed_split_size=2)
    out = torch.full_like(q, 3.0)
    _, _, args = w._op_args(q, cache, out=out)
    bad = [torch.zeros(len(lens) * h_qo - 1, dtype=torch.int32, device=DEV),
           torch.zeros(len(lens) * h_qo, dtype=torch.int64, device=DEV),
           torch.zeros(2, len(lens) * h_qo, dtype=torch.int32, device=DEV)[:, 0]]
    for counters in bad:
        with pytest.raises(ValueError, match="merge_counters"):
            torch.ops.flashinfer.batch_decode_with_paged_kv_cache(*args[:-1], counters)
        assert bool((out == 3.0).all())
