"""Batch decode benchmarks: BatchDecodeWithPagedKVCacheWrapper (bf16 and fp8 KV) vs torch SDPA
(cuDNN backend) on the same shapes as dense tensors.

Shapes: 32 query heads, 8 KV heads, head dim 128, page size 16, one query token per request.
bytes = K + V bytes read (+ q and out). The peer runs q [B, 32, 1, 128] against dense
k/v [B, 8, L, 128] with enable_gqa=True; if cuDNN refuses GQA, k/v are expanded to 32 heads
(contiguous, so the peer then reads 4x the KV bytes) and the row says so.
"""
import time

import torch

import flashinfer

from .common import graph_replay_us, host_us_eager, row, steady_us, time_device_us

H_QO, H_KV, D, PAGE = 32, 8, 128, 16
SHAPES = [(1, 32768), (16, 4096), (64, 4096), (64, 8192), (128, 4096)]
QUICK_SHAPES = [(1, 32768), (64, 4096)]
WS = {}


def _workspace():
    if "ws" not in WS:
        WS["ws"] = torch.zeros(128 << 20, dtype=torch.uint8, device="cuda")
    return WS["ws"]


def _paged(batch, kv_len, kv_dtype):
    pages_per = -(-kv_len // PAGE)
    total = batch * pages_per
    cache = torch.randn(total, 2, PAGE, H_KV, D, device="cuda", dtype=torch.bfloat16).to(kv_dtype)
    indptr = torch.arange(0, total + 1, pages_per, dtype=torch.int32)
    indices = torch.randperm(total, device="cuda").to(torch.int32)
    last = torch.full((batch,), kv_len - (pages_per - 1) * PAGE, dtype=torch.int32)
    return cache, indptr, indices, last


def _wrapper(batch, kv_len, kv_dtype):
    cache, indptr, indices, last = _paged(batch, kv_len, kv_dtype)
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
    w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16, kv_data_type=kv_dtype)
    q = torch.randn(batch, H_QO, D, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(q)
    return w, cache, q, out, (indptr, indices, last)


def _sdpa_cudnn(batch, kv_len):
    """(closure, label) for SDPA's cuDNN backend on dense tensors, or (None, reason)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(batch, H_QO, 1, D, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, H_KV, kv_len, D, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    F = torch.nn.functional.scaled_dot_product_attention

    def gqa():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F(q, k, v, enable_gqa=True)

    try:
        gqa()
        torch.cuda.synchronize()
        return gqa, "sdpa_cudnn(enable_gqa)"
    except Exception as e:  # cuDNN may refuse GQA: expand the heads
        reason = f"{type(e).__name__}"
    ke = k.repeat_interleave(H_QO // H_KV, dim=1)
    ve = v.repeat_interleave(H_QO // H_KV, dim=1)
    del k, v

    def expanded():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F(q, ke, ve)

    try:
        expanded()
        torch.cuda.synchronize()
        return expanded, f"sdpa_cudnn(kv expanded to {H_QO} heads; gqa refused: {reason})"
    except Exception as e:
        return None, f"sdpa_cudnn unavailable: {type(e).__name__}: {str(e)[:80]}"


def _bytes(batch, kv_len, kv_dtype):
    elem = torch.empty(0, dtype=kv_dtype).element_size()
    return 2 * batch * kv_len * H_KV * D * elem + 2 * batch * H_QO * D * 2


def run(quick: bool):
    rows = []
    bf16_us = {}
    bf16_st = {}
    for batch, kv_len in QUICK_SHAPES if quick else SHAPES:
        w, cache, q, out, _ = _wrapper(batch, kv_len, torch.bfloat16)
        fn = lambda: w.run(q, cache, out=out)  # noqa: E731
        us = time_device_us([fn])
        bf16_us[(batch, kv_len)] = us
        items = int((w._work_info[:, 0] >= 0).sum())
        small = batch * kv_len <= 64 * 4096
        host = host_us_eager(fn) if small else None
        graph = graph_replay_us(fn, calls_per_graph=5) if small else None
        cache2 = cache.clone()  # two caches alternate: each call reads a cache that is not in L2
        st = steady_us([fn, lambda: w.run(q, cache2, out=out)])
        bf16_st[(batch, kv_len)] = st
        del w, cache, cache2
        torch.cuda.empty_cache()
        peer_fn, label = _sdpa_cudnn(batch, kv_len)
        peer_us = time_device_us([peer_fn]) if peer_fn is not None else None
        peer_fn2, _ = _sdpa_cudnn(batch, kv_len) if peer_fn is not None else (None, None)
        peer_st = steady_us([peer_fn, peer_fn2]) if peer_fn2 is not None else None
        del peer_fn, peer_fn2
        torch.cuda.empty_cache()
        rows.append(row("batch_decode", (batch, kv_len, H_QO, H_KV, D, PAGE), torch.bfloat16, us,
                        _bytes(batch, kv_len, torch.bfloat16), peer=label, peer_us=peer_us, host_us=host,
                        graph_us=graph, us_steady=st, peer_us_steady=peer_st, work_items=items,
                        kv_dtype="bfloat16"))
    # fp8 (e4m3fn) KV at batch 64, kv 8192 vs the bf16 row
    batch, kv_len = 64, 8192
    w, cache, q, out, _ = _wrapper(batch, kv_len, torch.float8_e4m3fn)
    fn = lambda: w.run(q, cache, out=out, k_scale=1.0, v_scale=1.0)  # noqa: E731
    us = time_device_us([fn])
    ref_us = bf16_us.get((batch, kv_len))
    if ref_us is None:
        w16, c16, q16, o16, _ = _wrapper(batch, kv_len, torch.bfloat16)
        ref_us = time_device_us([lambda: w16.run(q16, c16, out=o16)])
        del w16, c16
    cache2 = cache.clone()
    st = steady_us([fn, lambda: w.run(q, cache2, out=out, k_scale=1.0, v_scale=1.0)])
    del cache2
    ref_st = bf16_st.get((batch, kv_len))
    rows.append(row("batch_decode", (batch, kv_len, H_QO, H_KV, D, PAGE), torch.bfloat16, us,
                    _bytes(batch, kv_len, torch.float8_e4m3fn), kv_dtype="float8_e4m3fn",
                    speedup_vs_bf16_kv=round(ref_us / us, 3), bf16_kv_us=round(ref_us, 2), us_steady=st,
                    speedup_vs_bf16_kv_steady=round(ref_st / st, 3) if st and ref_st else None))
    del w, cache
    torch.cuda.empty_cache()
    # plan() host cost at batch 256 (indptr / last_page_len on the host, indices on the device)
    batch, kv_len = 256, 4096
    cache, indptr, indices, last = _paged(batch, kv_len, torch.bfloat16)
    del cache
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(_workspace(), "NHD")
    plan = lambda: w.plan(indptr, indices, last, H_QO, H_KV, D, PAGE, q_data_type=torch.bfloat16)  # noqa: E731
    plan()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        plan()
    torch.cuda.synchronize()
    plan_ms = (time.perf_counter() - t0) / 20 * 1e3
    rows.append(row("batch_decode.plan", (batch, kv_len, H_QO, H_KV, D, PAGE), torch.bfloat16, plan_ms * 1e3, 0,
                    plan_host_ms=round(plan_ms, 3)))
    return rows


if __name__ == "__main__":
    for r in run(quick=False):
        print(r)
