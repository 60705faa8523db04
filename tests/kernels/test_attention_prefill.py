"""Prefill kernel (single, ragged, paged) against reference.attention.single_attention.

Tolerance (DESIGN.md §5): |ours - ref_fp32| <= 2 x |ref_lowp - ref_fp32| + rounding atol, where
ref_lowp is the same math in plain PyTorch at q's precision. In the interpreter only fp16 q runs:
Triton's interpreter computes bf16 tl.dot wrongly (triton 3.9: bf16 x bf16 -> garbage); bf16 runs
on the GPU grid.
"""
import math

import numpy as np
import pytest
import torch

from flashinfer_ops.fake.attention.prefill import staging_bytes
from flashinfer_ops.configs import sm_count
from flashinfer_ops.configs.attention.prefill import deal_grid, prefill_config
from flashinfer_ops.launch.attention.prefill import block_m_for, build_work, deal_pairs, group_staged_work
from flashinfer_ops.reference.attention import single_attention
from helpers import KERNEL_DEVICE, KERNEL_MODE, needs_kernels, poison, run_kernel, shapes

pytestmark = needs_kernels
DEV = KERNEL_DEVICE
GPU = KERNEL_MODE == "gpu"
FP8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
       if hasattr(torch, n)]
ROUND_ATOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _kv(shape, dtype):
    x = torch.randn(shape, device=DEV)
    if dtype in FP8:
        return (x * 2).to(dtype)
    return x.to(dtype)


def _ref(q, k, v, **kw):
    o32, l32 = single_attention(q, k, v, **kw)
    if q.shape[0] == 0 or k.shape[0] == 0:
        return o32, l32, 0.0
    olp, _ = single_attention(q, k, v, acc_dtype=q.dtype, **kw)
    return o32, l32, (olp.float() - o32).abs().max().item()


def _compare(o, lse, o32, l32, err_lp, dtype, rope=False):
    err = (o.float() - o32).abs().max().item() if o.numel() else 0.0
    bound = 2 * err_lp + ROUND_ATOL[dtype] * (3 if rope else 1)
    assert err <= bound, f"out error {err} > {bound}"
    if lse is not None and lse.numel():
        fin = torch.isfinite(l32)
        assert torch.equal(torch.isfinite(lse), fin), "lse -inf pattern differs"
        lerr = (lse[fin] - l32[fin]).abs().max().item() if fin.any() else 0.0
        assert lerr <= (3e-2 if (dtype == torch.bfloat16 or rope) else 3e-3), f"lse error {lerr}"


def _mask_for(qo, kv):
    return torch.rand(qo, kv, device=DEV) > 0.4


def _pack(mask_flat):
    bits = mask_flat.to(torch.uint8).reshape(-1)
    pad = (-bits.numel()) % 8
    bits = torch.cat([bits, torch.zeros(pad, dtype=torch.uint8, device=bits.device)]).reshape(-1, 8)
    return (bits.to(torch.int32) << torch.arange(8, device=bits.device, dtype=torch.int32)).sum(1).to(torch.uint8)


MODES = ["none", "causal", "custom"]

# (qo_len, kv_len, H_qo, H_kv, D, mode, layout, window, cap, pos, dtype, kv_dtype)
F16, B16 = torch.float16, torch.bfloat16
_FP8N = dict(zip(("e4m3fn", "e5m2", "e4m3fnuz", "e5m2fnuz"), FP8)) if len(FP8) == 4 else {}
# feature rows at D128 (layout, window, cap, pos, dtype, kv_dtype)
_FEATURES = [("HND", -1, 0.0, 0, B16, B16), ("NHD", 31, 0.0, 0, F16, F16), ("NHD", -1, 30.0, 0, B16, B16),
             ("NHD", -1, 0.0, 1, F16, F16), ("NHD", -1, 0.0, 2, B16, B16)] + \
            [(lay, -1, 0.0, 0, dt, _FP8N[n]) for lay, dt, n in (("NHD", F16, "e4m3fn"), ("NHD", B16, "e5m2"),
                                                                ("NHD", F16, "e4m3fnuz"), ("HND", B16, "e5m2fnuz"))
             if n in _FP8N]
SINGLE = shapes(
    [(qo, kv, hq, hk, d, mode, "NHD", -1, 0.0, 0, F16, F16)
     for (qo, kv) in ((1, 1), (17, 54), (127, 128), (577, 2048), (37, 4095))
     for (hq, hk) in ((4, 4), (32, 4))
     for d in (64, 128, 256)
     for mode in MODES
     if not (mode == "causal" and qo > kv)]
    + [(qo, kv, 32, 4, 128, mode, lay, w, cap, pos, dt, kvdt)
       for (qo, kv) in ((17, 54), (577, 2048), (127, 4095))
       for mode in MODES
       for (lay, w, cap, pos, dt, kvdt) in _FEATURES]
    + [(qo, kv, 8, 1, 128, "causal", "NHD", -1, 0.0, 0, B16, B16) for (qo, kv) in ((1, 7), (99, 1000))],
    [(5, 9, 4, 2, 64, "causal", "NHD", -1, 0.0, 0, torch.float16, torch.float16),
     (7, 7, 2, 2, 64, "none", "HND", 3, 0.0, 0, torch.float16, torch.float16),
     (3, 40, 4, 1, 64, "causal", "NHD", -1, 5.0, 2, torch.float16, torch.float16),
     (6, 33, 2, 1, 64, "custom", "NHD", -1, 0.0, 1, torch.float16, torch.float16),
     (9, 20, 2, 2, 64, "causal", "HND", 4, 0.0, 0, torch.float16, FP8[0]),
     (4, 19, 4, 2, 64, "none", "NHD", -1, 0.0, 0, torch.float16, FP8[-1]),
     (1, 1, 2, 1, 64, "causal", "NHD", -1, 0.0, 0, torch.float16, torch.float16),
     (3, 0, 2, 1, 64, "none", "NHD", -1, 0.0, 0, torch.float16, torch.float16)],
)


@pytest.mark.parametrize("qo,kv,hq,hk,d,mode,layout,window,cap,pos,dtype,kv_dtype", SINGLE)
def test_single_prefill(qo, kv, hq, hk, d, mode, layout, window, cap, pos, dtype, kv_dtype):
    q = torch.randn(qo, hq, d, device=DEV).to(dtype)
    k, v = _kv((kv, hk, d), kv_dtype), _kv((kv, hk, d), kv_dtype)
    mask = _mask_for(qo, kv) if mode == "custom" else None
    k_scale = 0.5 if kv_dtype in FP8 else 1.0
    kw = dict(causal=mode == "causal", window_left=window, logits_soft_cap=cap, alibi=pos == 2, rope=pos == 1,
              custom_mask=mask, k_scale=k_scale, v_scale=1.5)
    o32, l32, err_lp = _ref(q, k, v, **kw)
    kk = k if layout == "NHD" else k.transpose(0, 1).contiguous()
    vv = v if layout == "NHD" else v.transpose(0, 1).contiguous()
    out = poison(torch.empty(qo, hq, d, dtype=dtype, device=DEV))
    lse = poison(torch.empty(qo, hq, dtype=torch.float32, device=DEV))
    sm = 1.0 / math.sqrt(d)
    run_kernel("single_prefill", out, lse, q, kk, vv, _pack(mask) if mask is not None else None,
               MODES.index(mode), 0 if layout == "NHD" else 1, pos, sm * k_scale, window, cap, 1.0, 1e4, 1.5)
    _compare(out, lse, o32, l32, err_lp, dtype, rope=pos == 1)


def _batch_case(b, qo_max, kv_max, mode, empty):
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,)).item()))
    qo = rng.integers(1, qo_max + 1, b)
    kv = rng.integers(1, kv_max + 1, b)
    if mode == "causal":
        kv = np.maximum(kv, qo)
    if empty and b > 2:
        qo[1] = 0
        kv[2] = 0
        qo[2] = 0 if mode == "causal" else qo[2]
    return qo, kv


def _packed_masks(qo, kv):
    masks = [_mask_for(int(a), int(c)) for a, c in zip(qo, kv)]
    packed = [_pack(m) for m in masks]
    off = np.concatenate([[0], np.cumsum([p.numel() for p in packed])])
    flat = torch.cat(packed) if packed else torch.zeros(0, dtype=torch.uint8, device=DEV)
    return masks, (flat if flat.numel() else torch.zeros(1, dtype=torch.uint8, device=DEV)), off[:-1]


# (B, qo_max, kv_max, H_qo, H_kv, d_qk, d_vo, mode, layout, dtype, kv_dtype, window, pos)
RAGGED = shapes(
    [(b, qmax, kmax, 32, 4, dq, dv, mode, lay, dt, kvdt, w, pos)
     for (b, qmax, kmax) in ((1, 577, 4095), (7, 127, 1023), (64, 37, 300))
     for mode in MODES
     for (dq, dv, lay, dt, kvdt, w, pos) in ((128, 128, "NHD", F16, F16, -1, 0), (128, 128, "HND", B16, B16, 63, 0),
                                            (192, 128, "NHD", B16, B16, -1, 0), (64, 64, "NHD", F16, F16, -1, 2),
                                            (128, 128, "NHD", B16, FP8[0], -1, 0), (256, 256, "HND", F16, F16, -1, 0))]
    + [(7, 127, 1023, 4, 4, 128, 128, "causal", "NHD", B16, B16, -1, 0)],
    [(3, 6, 20, 4, 2, 64, 64, "causal", "NHD", torch.float16, torch.float16, -1, 0),
     (4, 5, 17, 2, 1, 64, 64, "custom", "HND", torch.float16, torch.float16, -1, 0),
     (3, 4, 9, 2, 2, 64, 64, "none", "NHD", torch.float16, FP8[1], 2, 2),
     (2, 3, 7, 2, 1, 192, 128, "causal", "NHD", torch.float16, torch.float16, -1, 0)],
)


@pytest.mark.parametrize("b,qmax,kmax,hq,hk,dq,dv,mode,layout,dtype,kv_dtype,window,pos", RAGGED)
def test_batch_prefill_ragged(b, qmax, kmax, hq, hk, dq, dv, mode, layout, dtype, kv_dtype, window, pos, deal=False):
    """deal: run the persistent form over a deal of the schedule's pairs (test_dealt_persistent_grid)."""
    qo, kv = _batch_case(b, qmax, kmax, mode, empty=True)
    qo_indptr = np.concatenate([[0], np.cumsum(qo)])
    kv_indptr = np.concatenate([[0], np.cumsum(kv)])
    # non-contiguous q/k/v: slices of wider tensors (last dim contiguous)
    q = torch.randn(int(qo_indptr[-1]), hq, dq + 16, device=DEV).to(dtype)[..., :dq]
    k = _kv((int(kv_indptr[-1]), hk, dq), kv_dtype)
    v = _kv((int(kv_indptr[-1]), hk, dv + 8), kv_dtype)[..., :dv]
    masks, flat, byte_off = _packed_masks(qo, kv) if mode == "custom" else (None, None, np.zeros(b, np.int64))
    bm = block_m_for(q.device, dq, dv)
    work, cost = build_work(qo_indptr, kv, kv_indptr[:-1], byte_off, hq // hk, bm, mode == "causal", window,
                            with_cost=True)
    dealt = _deal(work, cost, hk, dq, dv) if deal else None
    work = torch.from_numpy(work).to(DEV)
    out = poison(torch.empty(q.shape[0], hq, dv, dtype=dtype, device=DEV))
    lse = poison(torch.empty(q.shape[0], hq, dtype=torch.float32, device=DEV))
    kk = k if layout == "NHD" else k.transpose(0, 1).contiguous()
    vv = v if layout == "NHD" else v.transpose(0, 1)
    sm = 1.0 / math.sqrt(dq)
    run_kernel("batch_prefill_ragged", out, lse, q, kk, vv, work, flat, bm, MODES.index(mode),
               0 if layout == "NHD" else 1, pos, sm, window, 0.0, 1.0, 1e4, 1.0, dealt)
    for i in range(b):
        qs, qe, ks, ke = qo_indptr[i], qo_indptr[i + 1], kv_indptr[i], kv_indptr[i + 1]
        o32, l32, err_lp = _ref(q[qs:qe], k[ks:ke], v[ks:ke], causal=mode == "causal", window_left=window,
                                alibi=pos == 2, custom_mask=masks[i] if masks else None)
        _compare(out[qs:qe], lse[qs:qe], o32, l32, err_lp, dtype)


# (B, qo_max, kv_max, page, H_qo, H_kv, D, mode, layout, tuple_cache, dtype, kv_dtype)
PAGED = shapes(
    [(b, qmax, kmax, p, 32, 4, d, mode, lay, tup, dt, kvdt)
     for (b, qmax, kmax) in ((1, 257, 4095), (7, 127, 2047), (64, 17, 333))
     for p in (1, 16, 5)
     for mode in MODES
     for (d, lay, tup, dt, kvdt) in ((128, "NHD", False, B16, B16), (128, "HND", True, F16, F16),
                                     (64, "NHD", True, F16, FP8[-1]), (256, "NHD", False, B16, FP8[0]))]
    + [(7, 127, 2047, 16, 4, 4, 128, "causal", "NHD", False, B16, B16)],
    [(3, 5, 21, 4, 2, 1, 64, "causal", "NHD", False, torch.float16, torch.float16),
     (3, 4, 13, 1, 2, 2, 64, "custom", "HND", True, torch.float16, torch.float16),
     (4, 6, 30, 16, 4, 2, 64, "none", "NHD", True, torch.float16, FP8[0]),
     (2, 3, 11, 5, 2, 1, 64, "causal", "HND", False, torch.float16, FP8[-1])],
)


@pytest.mark.parametrize("staged", [False, True, "groups"], ids=["paged", "staged", "staged_groups"])
@pytest.mark.parametrize("b,qmax,kmax,page,hq,hk,d,mode,layout,tup,dtype,kv_dtype", PAGED)
def test_batch_prefill_paged(b, qmax, kmax, page, hq, hk, d, mode, layout, tup, dtype, kv_dtype, staged, deal=False):
    """staged: the op first copies the pages into a (NaN-poisoned) staging buffer and runs the
    dense kernel on it, with the dense kernel's schedule (what plan() picks for long prompts);
    "groups": the schedule split into up to 3 request groups (group_staged_work), which the op
    copies and attends group by group (on the GPU: copies on a side stream, attention on two)."""
    qo, kv = _batch_case(b, qmax, kmax, mode, empty=True)
    qo_indptr = np.concatenate([[0], np.cumsum(qo)])
    pages = -(-kv // page)
    page_indptr = np.concatenate([[0], np.cumsum(pages)])
    num_pages = int(page_indptr[-1]) + 3
    perm = torch.randperm(num_pages)[: int(page_indptr[-1])].to(torch.int32).to(DEV)
    shape = (num_pages, page, hk, d) if layout == "NHD" else (num_pages, hk, page, d)
    if tup:
        kc, vc = _kv(shape, kv_dtype), _kv(shape, kv_dtype)
    else:
        both = _kv((num_pages, 2) + shape[1:], kv_dtype)
        kc, vc = both.unbind(1)
    q = torch.randn(int(qo_indptr[-1]), hq, d, device=DEV).to(dtype)
    masks, flat, byte_off = _packed_masks(qo, kv) if mode == "custom" else (None, None, np.zeros(b, np.int64))
    bm = block_m_for(q.device, d, d, paged=not staged)
    work, cost = build_work(qo_indptr, kv, page_indptr[:-1], byte_off, hq // hk, bm, mode == "causal",
                            with_cost=True)
    if staged == "groups":
        work = group_staged_work(work, cost, 3)
        live = int((qo > 0).sum())
        assert min(2, max(1, live)) <= work.shape[0] <= max(1, min(3, live))  # empty share groups are dropped
    dealt = _deal(work, cost, hk, d, d) if deal else None
    work = torch.from_numpy(work).to(DEV)
    out = poison(torch.empty(q.shape[0], hq, d, dtype=dtype, device=DEV))
    lse = poison(torch.empty(q.shape[0], hq, dtype=torch.float32, device=DEV))
    sm = 1.0 / math.sqrt(d)
    staging = None
    if staged:
        need = staging_bytes(perm.shape[0], page, hk, d, d, kv_dtype)
        staging = torch.full((need,), 0xFF, dtype=torch.uint8, device=DEV)  # 0xFFFF: NaN in fp16 / bf16 / fp8
    run_kernel("batch_prefill_paged", out, lse, q, kc, vc, work, perm, flat, bm, MODES.index(mode),
               0 if layout == "NHD" else 1, 0, sm, -1, 0.0, 1.0, 1e4, 1.0, staging, dealt)
    kn, vn = (kc, vc) if layout == "NHD" else (kc.transpose(1, 2), vc.transpose(1, 2))
    for i in range(b):
        sel = perm[page_indptr[i]:page_indptr[i + 1]].long()
        k = kn[sel].reshape(-1, hk, d)[: kv[i]]
        v = vn[sel].reshape(-1, hk, d)[: kv[i]]
        qs, qe = qo_indptr[i], qo_indptr[i + 1]
        o32, l32, err_lp = _ref(q[qs:qe], k, v, causal=mode == "causal", custom_mask=masks[i] if masks else None)
        _compare(out[qs:qe], lse[qs:qe], o32, l32, err_lp, dtype)


def test_tma_view_rules():
    """The 2-D views the sm90 descriptor path reads K / V through: token-major (NHD, also a slice of
    a wider row), head-major (HND), and None where the copy engine's 16-byte rules fail."""
    from flashinfer_ops.launch.attention import prefill as P

    if P.TensorDescriptor is None:
        pytest.skip("this Triton has no host tensor descriptors")
    nhd = torch.empty(100, 4, 128, dtype=torch.bfloat16)
    assert P.tma_view(nhd, P._dense_strides(nhd, 0), 100, 128) == (0, 128, 100, 512)
    hnd = torch.empty(4, 100, 128, dtype=torch.bfloat16)
    assert P.tma_view(hnd, P._dense_strides(hnd, 1), 100, 128) == (100, 0, 400, 128)
    wide = torch.empty(100, 2, 4, 136, dtype=torch.bfloat16)[:, 0, :, :128]  # K of a fused [K|V] row, padded
    assert P.tma_view(wide, P._dense_strides(wide, 0), 100, 128) == (0, 136, 100, 3 * 136 + 128)
    odd = torch.empty(100, 4, 67, dtype=torch.bfloat16)[..., :64]  # row stride 268 elements: 536 bytes
    assert P.tma_view(odd, P._dense_strides(odd, 0), 100, 64) is None
    shifted = torch.empty(100 * 512 + 1, dtype=torch.bfloat16)[1:].view(100, 4, 128)  # base 2 bytes off
    assert P.tma_view(shifted, P._dense_strides(shifted, 0), 100, 128) is None
    assert P.tma_view(nhd, P._dense_strides(nhd, 0), 0, 128) is None  # nothing to read


@pytest.mark.gpu
def test_dense_prefill_takes_descriptors_on_sm90(monkeypatch):
    """On sm90+ the lean 16-bit single prefill builds K and V descriptors (the 4-5% path), and
    its result still matches the oracle; older GPUs keep pointer loads."""
    from flashinfer_ops.launch.attention import prefill as P

    if P.TensorDescriptor is None or torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("needs sm90+ and a Triton with host tensor descriptors")
    made = []
    real = P.TensorDescriptor
    monkeypatch.setattr(P, "TensorDescriptor", lambda *a, **kw: made.append(a[3]) or real(*a, **kw))
    q = torch.randn(300, 32, 128, device=DEV).to(torch.bfloat16)
    k, v = _kv((1000, 8, 128), torch.bfloat16), _kv((1000, 8, 128), torch.bfloat16)
    out = poison(torch.empty_like(q))
    run_kernel("single_prefill", out, None, q, k, v, None, 1, 0, 0, 1 / math.sqrt(128), -1, 0.0, 1.0, 1e4, 1.0)
    assert len(made) == 2, made
    o32, l32, err_lp = _ref(q, k, v, causal=True)
    _compare(out, None, o32, l32, err_lp, torch.bfloat16)


@pytest.mark.parametrize("case", ["ragged", "paged", "single"])
def test_diagonal_tiles_in_the_unmasked_loop(monkeypatch, case):
    """DIAG_IN_LOOP forced on every path (the sm90 descriptor path's default): causal-diagonal tiles
    that lie inside the request run in the unmasked loop with the causal mask applied there; the
    loop bounds are right for kv_len on and off the tile grid, qo_len < kv_len, and several tiles."""
    monkeypatch.setenv("FLASHINFER_PREFILL_DIAG_LOOP", "1")
    if case == "ragged":
        test_batch_prefill_ragged(4, shapes(300, 40), shapes(900, 70), 8, 2, 64, 64, "causal", "NHD",
                                  torch.float16, torch.float16, -1, 0)
        test_batch_prefill_ragged(2, shapes(64, 32), shapes(128, 64), 4, 4, 64, 64, "causal", "NHD",
                                  torch.float16, torch.float16, -1, 0)
    elif case == "paged":
        test_batch_prefill_paged(5, shapes(200, 40), shapes(700, 120), 16, 8, 2, 64, "causal", "NHD", False,
                                 torch.float16, torch.float16, staged=True)
    else:
        for qo, kv in ((48, 48), (37, 85), (1, 16)):
            test_single_prefill(qo, kv, 8, 2, 64, "causal", "NHD", -1, 0.0, 0, torch.float16, torch.float16)


def _deal(work, cost, hk, d_qk, d_vo):
    """The persistent schedule plan() would pass for this work list (deal_pairs on this device's grid)."""
    bn = prefill_config("sm90", d_qk, d_vo).block_n
    return torch.from_numpy(deal_pairs(cost, work[:, 2] > 0, hk, deal_grid(sm_count(torch.device(DEV))), bn).copy()).to(DEV)


@pytest.mark.parametrize("case", ["ragged", "ragged_none", "ragged_custom", "paged", "staged"])
def test_dealt_persistent_grid(case):
    """prefill_kernel PERSISTENT over plan()'s deal (deal_grid programs; the interpreter's 8, fewer
    than the pairs and more): every pair runs once, with empty requests, windows, custom masks, no
    mask with qo_len > kv_len and kv_len off the tile grid, HND, lse, and poisoned outputs (a pair
    no program takes leaves NaN); on sm90 the descriptor path too (D64 / D128, 16-bit)."""
    if case == "ragged":
        test_batch_prefill_ragged(5, shapes(300, 40), shapes(900, 70), 8, 2, 64, 64, "causal", "NHD",
                                  torch.float16, torch.float16, -1, 0, deal=True)
        test_batch_prefill_ragged(3, 9, 33, 4, 1, 64, 64, "none", "HND", torch.float16, torch.float16, 5, 2, deal=True)
        test_batch_prefill_ragged(7, shapes(989, 19), shapes(989, 40), 32, 8, 128, 128, "causal", "NHD",
                                  B16 if GPU else torch.float16, B16 if GPU else torch.float16, -1, 0, deal=True)
    elif case == "ragged_none":
        test_batch_prefill_ragged(4, shapes(99, 19), shapes(333, 45), 8, 2, 128, 128, "none", "HND",
                                  torch.float16, torch.float16, -1, 0, deal=True)
    elif case == "ragged_custom":
        test_batch_prefill_ragged(4, 5, 17, 2, 1, 64, 64, "custom", "HND", torch.float16, torch.float16, -1, 0,
                                  deal=True)
    else:
        test_batch_prefill_paged(5, shapes(200, 40), shapes(700, 120), 16, 8, 2, 64, "causal", "NHD", False,
                                 torch.float16, torch.float16, staged=case == "staged", deal=True)


@pytest.mark.parametrize("bad", ["short", "dtype", "groups"])
def test_bad_deal_is_rejected_before_any_write(bad):
    """A deal that cannot be this device's persistent schedule (too few entries for its
    deal_grid programs, not int32, or with several staged request groups) is a ValueError naming
    `deal`, and the poisoned output stays untouched."""
    qo, kv = np.array([5, 9]), np.array([7, 9])
    qo_indptr = np.concatenate([[0], np.cumsum(qo)])
    kv_indptr = np.concatenate([[0], np.cumsum(kv)])
    q = torch.randn(int(qo_indptr[-1]), 4, 64, device=DEV).to(torch.float16)
    k, v = (torch.randn(int(kv_indptr[-1]), 2, 64, device=DEV).to(torch.float16) for _ in range(2))
    bm = block_m_for(q.device, 64, 64)
    work, cost = build_work(qo_indptr, kv, kv_indptr[:-1], np.zeros(2, np.int64), 2, bm, True, with_cost=True)
    deal = _deal(work, cost, 2, 64, 64)
    work = torch.from_numpy(work).to(DEV)
    if bad == "short":
        deal = deal[:deal_grid(sm_count(torch.device(DEV)))]
    elif bad == "dtype":
        deal = deal.to(torch.int64)
    else:
        work = torch.stack([work, work])
    out = poison(torch.empty_like(q))
    with pytest.raises(ValueError, match="deal"):
        if bad == "groups":
            run_kernel("batch_prefill_paged", out, None, q, k.view(-1, 1, 2, 64), v.view(-1, 1, 2, 64), work,
                       torch.arange(k.shape[0], dtype=torch.int32, device=DEV), None, bm, 1, 0, 0, 0.125, -1, 0.0,
                       1.0, 1e4, 1.0, torch.empty(k.numel() * 4 + 16, dtype=torch.uint8, device=DEV), deal)
        else:
            run_kernel("batch_prefill_ragged", out, None, q, k, v, work, None, bm, 1, 0, 0, 0.125, -1, 0.0, 1.0,
                       1e4, 1.0, deal)
    assert out.isnan().all()


def test_deal_pairs_is_list_scheduling():
    """deal_pairs (plan()'s C++ lpt_deal): every live (row, kv head) pair exactly once, in dispatch
    order within a program, dead rows left out, a spare entry last; the same deal as a plain
    Python list scheduler (least dealt cost first, ties to the program that got there first)."""
    import heapq

    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,)).item()))
    for rows, hk, n_prog in ((1, 1, 1), (19, 3, 8), (99, 8, 264), (989, 2, 7), (5, 4, 64)):
        reads = rng.integers(0, 5000, rows)
        live = rng.random(rows) > 0.2
        bn = 64
        deal = deal_pairs(reads, live, hk, n_prog, bn)
        offs, slots = deal[:n_prog + 1], deal[n_prog + 1:]
        n_live = int(live.sum()) * hk
        assert deal.shape[0] == n_prog + 1 + n_live + 1 and deal[-1] == 0
        assert offs[0] == 0 and offs[-1] == n_live and np.all(np.diff(offs) >= 0)
        listed = slots[:n_live]
        assert sorted(listed.tolist()) == [s for s in range(rows * hk) if live[s % rows]]
        cost = -(-reads // bn) + 1
        heap = [(0, p, p) for p in range(n_prog)]  # (dealt cost, arrival, program)
        want = [[] for _ in range(n_prog)]
        arrival = n_prog
        for s in range(rows * hk):
            if not live[s % rows]:
                continue
            c, _, p = heapq.heappop(heap)
            want[p].append(s)
            heapq.heappush(heap, (c + int(cost[s % rows]), arrival, p))
            arrival += 1
        for p in range(n_prog):
            got = listed[offs[p]:offs[p + 1]].tolist()
            assert got == want[p], (rows, hk, n_prog, p)


def test_group_staged_work_keeps_every_item_once():
    """group_staged_work: every live item once, each request's items in one group (the op copies a
    group's requests before attending them), items most expensive first within a group, no empty
    group, dead rows zero, one group where there is one request; equal requests split 1:1:2:4."""
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,)).item()))
    for b, n in ((19, 4), (5, 8), (1, 4), (99, 3), (16, 4)):
        qo = rng.integers(0, 300, b) if b != 16 else np.full(b, 256)
        kv = qo + (rng.integers(0, 200, b) if b != 16 else 0)
        qo_indptr = np.concatenate([[0], np.cumsum(qo)])
        work, cost = build_work(qo_indptr, kv, np.arange(b), np.zeros(b, np.int64), 4, 64, True, with_cost=True)
        g = group_staged_work(work, cost, n)
        live = int((qo > 0).sum())
        assert 1 <= g.shape[0] <= max(1, min(n, live))
        items = g.reshape(-1, g.shape[-1])
        items = items[items[:, 2] > 0]
        assert sorted(map(tuple, items.tolist())) == sorted(map(tuple, work[work[:, 2] > 0].tolist()))
        key = {tuple(r): c for r, c in zip(work.tolist(), cost.tolist())}
        requests = []
        for grp in g:
            rows = grp[grp[:, 2] > 0]
            assert rows.shape[0] > 0, "no empty group"
            assert (grp[rows.shape[0]:] == 0).all(), "dead rows must trail and be zero"
            c = [key[tuple(r)] for r in rows.tolist()]
            assert c == sorted(c, reverse=True)
            requests.append(set(rows[:, 6].tolist()))
        assert sum(len(r) for r in requests) == len(set().union(*requests)), "a request in two groups"
        if b == 16:
            assert [len(r) for r in requests] == [2, 2, 4, 8]


def test_tile_kv_reads_matches_the_mask():
    """The scheduler's tile cost (also the staging threshold's count) is exactly the span of K / V
    positions some query of the tile may attend to: causal diagonal on the right, sliding window on
    the left (the kernel skips whole tiles outside it), brute-forced over odd request shapes."""
    from flashinfer_ops.launch.attention.prefill import tile_kv_reads

    rng = np.random.default_rng()
    qo = np.array([1, 19, 99, 7, 0, 64])
    kv = qo + rng.integers(0, 40, qo.shape[0])
    for group, bm, causal, window in ((1, 16, True, -1), (4, 64, True, 13), (2, 32, False, 5), (4, 16, False, -1),
                                      (1, 64, True, 0)):
        req, row0, cost = tile_kv_reads(qo, kv, group, bm, causal, window)
        for r, r0, c in zip(req, row0, cost):
            queries = np.arange(r0 // group, min((r0 + bm - 1) // group, qo[r] - 1) + 1)
            pos = queries + kv[r] - qo[r]
            hi = np.minimum(pos + 1, kv[r]) if causal else np.full_like(pos, kv[r])
            lo = np.maximum(pos - window, 0) if window >= 0 else np.zeros_like(pos)
            want = max(int(hi.max()) - int(lo.min()), 0)
            # the last tile of a request may hold padding rows past qo_len: its cost may count them
            assert c == want or (r0 + bm > qo[r] * group and c >= want), (group, bm, causal, window, r, r0, c, want)


@pytest.mark.parametrize("mode", ["causal", "none"])
@pytest.mark.parametrize("write_lse", [False, True])
def test_lean_persistent_kernel_shifted_last_tile(mode, write_lse):
    """prefill_persistent_kernel launched directly over host tensor descriptors: requests ending
    mid-tile read their last tile shifted back to end at kv_len (masking the columns already seen),
    requests shorter than a tile take the pointer-loaded tile, a request without K / V writes zeros
    and lse -inf, qo_len > kv_len without a mask; K / V rows between requests hold NaN (a read
    outside the request would reach the sums); against the oracle, into poisoned outputs."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    from flashinfer_ops.kernels.attention.prefill import LOG2E, prefill_persistent_kernel

    bm, bn, hq, hk, d = 64, 64, 4, 2, 64
    qo = np.array([70, 1, 64, 5, 0, 33, 3, 1] if mode == "causal" else [70, 200, 64, 5, 9, 33, 40, 1])
    kv = np.array([70, 64, 129, 100, 64, 200, 19, 1] if mode == "causal" else [70, 64, 129, 100, 0, 65, 19, 1])
    qo_indptr = np.concatenate([[0], np.cumsum(qo)])
    gap = 7
    kv_starts = np.concatenate([[gap], np.cumsum(kv + gap)[:-1] + gap])
    q = torch.randn(int(qo_indptr[-1]), hq, d, device=DEV).to(torch.float16)
    n = int(kv_starts[-1] + kv[-1] + gap)
    k = torch.full((n, hk, d), float("nan"), device=DEV, dtype=torch.float16)
    v = torch.full((n, hk, d), float("nan"), device=DEV, dtype=torch.float16)
    for s0, ln in zip(kv_starts, kv):
        k[s0:s0 + ln] = torch.randn(ln, hk, d, device=DEV).to(torch.float16)
        v[s0:s0 + ln] = torch.randn(ln, hk, d, device=DEV).to(torch.float16)
    work, cost = build_work(qo_indptr, kv, kv_starts, np.zeros(len(kv), np.int64), hq // hk, bm,
                            mode == "causal", with_cost=True)
    n_prog = 8
    deal = torch.from_numpy(deal_pairs(cost, work[:, 2] > 0, hk, n_prog, bn).copy()).to(DEV)
    work_t = torch.from_numpy(work).to(DEV)
    out = poison(torch.empty(q.shape[0], hq, d, dtype=torch.float16, device=DEV))
    lse = poison(torch.empty(q.shape[0], hq, dtype=torch.float32, device=DEV))
    kd = TensorDescriptor(k, [n, hk * d], [hk * d, 1], [bn, d])
    vd = TensorDescriptor(v, [n, hk * d], [hk * d, 1], [bn, d])
    sm = 1.0 / math.sqrt(d)
    prefill_persistent_kernel[(n_prog,)](
        q, k, v, out, lse, work_t, deal, kd, vd, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0),
        v.stride(1), out.stride(0), out.stride(1), lse.stride(0), lse.stride(1), work.shape[0], hq // hk, 1,
        MODES.index(mode), sm * LOG2E, 1.0, 0, d, 0, d,
        HEAD_DIM_QK=d, HEAD_DIM_VO=d, BLOCK_M=bm, BLOCK_N=bn, WRITE_LSE=write_lse, num_warps=4, num_stages=3)
    for i in range(len(kv)):
        qs, qe, ks, ke = qo_indptr[i], qo_indptr[i + 1], kv_starts[i], kv_starts[i] + kv[i]
        o32, l32, err_lp = _ref(q[qs:qe], k[ks:ke], v[ks:ke], causal=mode == "causal")
        _compare(out[qs:qe], lse[qs:qe] if write_lse else None, o32, l32, err_lp, torch.float16)
