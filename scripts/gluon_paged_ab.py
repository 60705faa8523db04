"""Experiment (sessions 16-17): paged prefill with K / V pages read in place by the Gluon sm90
kernel's forms (configs/attention/prefill.py INPLACE_FORMS: plain, ws, ws_qload, ws_overlap)
against the default paged run() (staged copy + lean kernel), bf16 causal 32/8 heads D128, pages
shuffled.

1. Correctness of each form against float32 SDPA per request: odd lengths (1, 19, 99, 989, ...),
   qo_len < kv_len, an empty request, page 16 / 32 / 64, NHD and HND, causal and none, NaN in
   every cache slot past a request's kv_len and in the output buffer before the launch; lse too.
2. Timing (benchmarks.common.time_device_us, cold L2), twice over: the staged run(), each form on
   the same page-16 cache, and on a cache of 64-token pages (a quarter of the page copies a tile:
   does the per-copy cost explain a gap?), at (16, 1024) and (4, 4096).

    python scripts/gluon_paged_ab.py [FORMS] [--check | --timing] [--quick]
    (FORMS: comma-separated, default all; --check: part 1 only; --timing: part 2 only; --quick:
    time (16, 1024) only)

H100, 2026-12-07 session 16 (part 1 of an earlier form of this script, then `python -m
benchmarks --ops attention_prefill` with the in-place path on): every check passed (max error
0.0086 against float32, lse 2e-6, no NaN); the benchmark's paged rows ran 1674 / 1787 / 610 us at
(1, 8192) / (4, 4096) / (16, 1024) against 1075 / 1167 / 437 staged. Session 17 (NOTES.md): every
check of every form passed; at (16, 1024), page 16: plain 584-588 us, ws 399-400 (423-427 with Q
loaded by the warpgroup), ws_overlap 388-391, staged 429-432 (call 1).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.attention_prefill import _paged_case  # noqa: E402
from benchmarks.common import time_device_us  # noqa: E402
from flashinfer_ops.configs import sm_count  # noqa: E402
from flashinfer_ops.configs.attention.prefill import INPLACE_FORMS, deal_grid  # noqa: E402
from flashinfer_ops.launch.attention.prefill import build_work, deal_pairs, paged_inplace_launch  # noqa: E402

HQ, HKV, D = 32, 8, 128
BM = BN = 64


def _schedule(qo_lens, kv_lens, page, causal):
    """(work, deal, kv_indptr in pages) on the GPU for the Gluon kernel's 64-row tile."""
    qo = np.concatenate([[0], np.cumsum(qo_lens)])
    pages = -(-np.asarray(kv_lens) // page)
    kv_ip = np.concatenate([[0], np.cumsum(pages)])
    w, cost = build_work(qo, kv_lens, kv_ip[:-1], np.zeros(len(kv_lens), np.int64), HQ // HKV, BM, causal,
                         with_cost=True)
    live = w[:, 2] > 0
    deal = deal_pairs(cost, live, HKV, deal_grid(sm_count(torch.device("cuda"))), BN)
    return (torch.from_numpy(w).cuda(), torch.from_numpy(deal.astype(np.int32)).cuda(), kv_ip)


def _check(qo_lens, kv_lens, page, hnd, causal, form, q_pad=0):
    """One launch against float32 SDPA; q_pad: q is a view of a [nnz, HQ, D + q_pad] tensor (8: a
    strided q the copy engine can still read; 2: one it cannot, so Q is loaded by the warpgroup)."""
    torch.manual_seed(1)
    work, deal, kv_ip = _schedule(qo_lens, kv_lens, page, causal)
    n_pages = int(kv_ip[-1]) + 3  # spare pages nobody owns
    shape = (n_pages, HKV, page, D) if hnd else (n_pages, page, HKV, D)
    kc = torch.full(shape, float("nan"), device="cuda", dtype=torch.bfloat16)
    vc = torch.full(shape, float("nan"), device="cuda", dtype=torch.bfloat16)
    perm = torch.randperm(n_pages)[: int(kv_ip[-1])]
    nnz = int(sum(qo_lens))
    q = torch.randn(nnz, HQ, D + q_pad, device="cuda", dtype=torch.bfloat16)[..., :D]
    ks, vs = [], []
    for r, kl in enumerate(kv_lens):
        k = torch.randn(kl, HKV, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(kl, HKV, D, device="cuda", dtype=torch.bfloat16)
        ks.append(k)
        vs.append(v)
        for j in range(kl):
            pg = int(perm[kv_ip[r] + j // page])
            if hnd:
                kc[pg, :, j % page] = k[j]
                vc[pg, :, j % page] = v[j]
            else:
                kc[pg, j % page] = k[j]
                vc[pg, j % page] = v[j]
    out = torch.full_like(q, float("nan"))
    lse = torch.full((nnz, HQ), float("nan"), device="cuda", dtype=torch.float32)
    sm_scale = D ** -0.5
    paged_inplace_launch(out, lse, q, kc, vc, perm.to(torch.int32).cuda(), work, deal, page_size=page, hnd=hnd,
                         mask_mode=int(causal), sm_scale=sm_scale, form=form)
    torch.cuda.synchronize()
    err, lerr, q0 = 0.0, 0.0, 0
    for r, (ql, kl) in enumerate(zip(qo_lens, kv_lens)):
        o = out[q0:q0 + ql].float()
        if kl == 0:
            e = o.abs().max().item() if ql else 0.0
            le = 0.0 if ql == 0 or bool((lse[q0:q0 + ql] == float("-inf")).all()) else float("inf")
        elif ql:
            qq = q[q0:q0 + ql].float().transpose(0, 1)
            kk = ks[r].float().transpose(0, 1).repeat_interleave(HQ // HKV, 0)
            vv = vs[r].float().transpose(0, 1).repeat_interleave(HQ // HKV, 0)
            s = qq @ kk.transpose(1, 2) * sm_scale
            if causal:
                i = torch.arange(ql, device="cuda")[:, None] + (kl - ql)
                s = s.masked_fill(torch.arange(kl, device="cuda")[None, :] > i, float("-inf"))
            ref = (torch.softmax(s, -1) @ vv).transpose(0, 1)
            ref_lse = (torch.logsumexp(s, -1) / np.log(2)).transpose(0, 1)
            e = (o - ref).abs().max().item()
            le = (lse[q0:q0 + ql] - ref_lse).abs().max().item()
        else:
            e = le = 0.0
        err, lerr = max(err, e), max(lerr, le)
        q0 += ql
    return {"form": form, "page": page, "hnd": hnd, "causal": causal, "max_err": err, "lse_err": lerr,
            "nan": bool(out.isnan().any())}


def _cases(b, l, sets, forms):
    """The benchmark's paged case: run() on the staged copy (FLASHINFER_PREFILL_INPLACE=0), each
    in-place form launched directly on the same inputs and schedule, and run() with each form
    forced. run() reads the switch at launch too: time each under its own value (_with_env)."""
    os.environ["FLASHINFER_PREFILL_INPLACE"] = "0"
    w, base = _paged_case(b, l, sets)
    assert w._staging_bytes and not w._inplace
    page = 16
    work, deal, _ = _schedule([l] * b, [l] * b, page, True)
    idx = w._op_indices
    direct = {}
    for form in forms:
        direct[form] = []
        for f in base:
            q, cache, o = f.__defaults__
            kc, vc = cache[:, 0], cache[:, 1]
            direct[form].append(lambda q=q, kc=kc, vc=vc, o=o, form=form: paged_inplace_launch(
                o, None, q, kc, vc, idx, work, deal, page_size=page, hnd=False, mask_mode=1, sm_scale=D ** -0.5,
                form=form))
    runs = {}
    for form in forms:  # run() itself: plan()'s deal and the op's launch path
        os.environ["FLASHINFER_PREFILL_INPLACE"] = form
        wi, runs[form] = _paged_case(b, l, sets)
        assert wi._inplace, form
    os.environ.pop("FLASHINFER_PREFILL_INPLACE")
    return base, direct, runs


def _with_env(value, fn, *args, **kw):
    """fn(*args, **kw) with FLASHINFER_PREFILL_INPLACE=value (None: unset)."""
    old = os.environ.pop("FLASHINFER_PREFILL_INPLACE", None)
    if value is not None:
        os.environ["FLASHINFER_PREFILL_INPLACE"] = value
    try:
        return fn(*args, **kw)
    finally:
        os.environ.pop("FLASHINFER_PREFILL_INPLACE", None)
        if old is not None:
            os.environ["FLASHINFER_PREFILL_INPLACE"] = old


def _direct_page(b, l, page, sets, form):
    """An in-place form on a cache of `page`-token pages (shuffled) holding random K / V."""
    n = b * l // page
    work, deal, _ = _schedule([l] * b, [l] * b, page, True)
    fns = []
    for _ in range(sets):
        q = torch.randn(b * l, HQ, D, device="cuda", dtype=torch.bfloat16)
        cache = torch.randn(n, 2, page, HKV, D, device="cuda", dtype=torch.bfloat16)
        idx = torch.randperm(n, device="cuda").to(torch.int32)
        o = torch.empty_like(q)
        fns.append(lambda q=q, c=cache, i=idx, o=o: paged_inplace_launch(
            o, None, q, c[:, 0], c[:, 1], i, work, deal, page_size=page, hnd=False, mask_mode=1, sm_scale=D ** -0.5,
            form=form))
    return fns


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    forms = args[0].split(",") if args else list(INPLACE_FORMS)
    if "--timing" not in sys.argv:
        for form in forms:
            checks = []
            odd = ([1, 19, 99, 989, 64, 16, 33], [1, 19, 120, 989, 64, 40, 33])
            for page in (16, 32, 64):
                for hnd in (False, True):
                    for causal in (True, False):
                        checks.append(_check(odd[0], odd[1], page, hnd, causal, form))
            checks.append(_check([7, 0, 5], [0, 30, 17], 16, False, True, form))  # an empty request
            checks.append(_check([1024] * 4, [1024] * 4, 16, False, True, form))
            for q_pad in (8, 2):
                checks.append(_check(odd[0], odd[1], 16, False, True, form, q_pad=q_pad))
            bad = [c for c in checks if c["nan"] or c["max_err"] > 0.03 or c["lse_err"] > 1e-3]
            print(json.dumps({"form": form, "checks": len(checks), "failed": bad,
                              "max_err": max(c["max_err"] for c in checks),
                              "lse_err": max(c["lse_err"] for c in checks)}), flush=True)
    if "--check" in sys.argv:
        return
    # the benchmark's (16, 1024) inputs: each form's direct launch against the staged run()
    base, direct, _ = _cases(16, 1024, 1, forms)
    o = base[0].__defaults__[2]
    _with_env("0", base[0])
    ref = o.clone()
    res = {}
    for form in forms:
        o.fill_(float("nan"))
        direct[form][0]()
        res[form + "_vs_staged"] = (o.float() - ref.float()).abs().max().item()
    print(json.dumps(res), flush=True)
    for b, l in ((16, 1024),) if "--quick" in sys.argv else ((16, 1024), (4, 4096)):
        base, direct, runs = _cases(b, l, 2, forms)
        p64 = {form: _direct_page(b, l, 64, 2, form) for form in forms}
        row = {"shape": f"{b}x{l}"}
        for rep in range(2):
            row[f"staged_run_{rep}"] = round(_with_env("0", time_device_us, base, warmup=3, reps=20), 1)
            for form in forms:
                row[f"{form}_p16_{rep}"] = round(time_device_us(direct[form], warmup=3, reps=20), 1)
                row[f"{form}_run_{rep}"] = round(_with_env(form, time_device_us, runs[form], warmup=3, reps=20), 1)
                row[f"{form}_p64_{rep}"] = round(time_device_us(p64[form], warmup=3, reps=20), 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
