"""Prefill attention benchmark: causal bf16, 32 query / 8 kv heads, head dim 128.

Ours: the ragged wrapper (and single prefill at batch 1) and the paged wrapper (page 16, 128 MiB
float workspace, so plan() may stage K / V: row key `staged`; or read the pages in place: row key
`inplace`), against
torch SDPA with the flash backend and with the cuDNN backend in the same process on the same
shapes (GQA through enable_gqa=True; if a backend rejects it, K/V are expanded to 32 heads and the
row says so). TFLOP/s count causal FLOPs halved: 4 * B * H * L^2 * D / 2. Also: plan() host ms for
a batch of 256 requests and eager run() host us.

    python -c "from benchmarks import attention_prefill as b; [print(r) for r in b.run(False)]"
"""
from __future__ import annotations

import os
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from .common import host_us_eager, input_sets_for, row, time_device_us

HQ, HKV, D = 32, 8, 128
SHAPES = ((1, 8192), (4, 4096), (16, 1024))
PAGE = 16
# the paged wrapper's float workspace: FlashInfer's recommended 128 MiB (plan() may stage K / V in it)
WORKSPACE_MIB = 128


def _flops(b: int, l: int) -> float:
    return 4.0 * b * HQ * l * l * D / 2


def _tflops(b, l, us):
    return _flops(b, l) / (us * 1e-6) / 1e12 if us else None


def _sdpa(backend_name: str, b: int, l: int, sets: int) -> Tuple[Optional[float], str]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, backend_name)
    ins = [(torch.randn(b, HQ, l, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(b, HKV, l, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(b, HKV, l, D, device="cuda", dtype=torch.bfloat16)) for _ in range(sets)]
    for mode in ("enable_gqa", "expanded"):
        try:
            if mode == "enable_gqa":
                fns = [lambda q=q, k=k, v=v: torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, enable_gqa=True) for q, k, v in ins]
            else:
                exp = [(q, k.repeat_interleave(HQ // HKV, 1), v.repeat_interleave(HQ // HKV, 1)) for q, k, v in ins]
                fns = [lambda q=q, k=k, v=v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
                       for q, k, v in exp]
            with sdpa_kernel([backend]):
                return time_device_us(fns, warmup=3, reps=20), mode
        except Exception as e:  # noqa: BLE001  (a peer that cannot run is reported, not fatal)
            err = f"{type(e).__name__}: {str(e)[:120]}"
    print(f"  SDPA {backend_name} unavailable: {err}")
    return None, "unavailable"


def _ragged_case(b, l, sets):
    import flashinfer

    ind = torch.arange(0, (b + 1) * l, l, dtype=torch.int32)
    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
    w.plan(ind, ind, HQ, HKV, D, causal=True, q_data_type=torch.bfloat16)
    ins = [(torch.randn(b * l, HQ, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(b * l, HKV, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(b * l, HKV, D, device="cuda", dtype=torch.bfloat16)) for _ in range(sets)]
    outs = [torch.empty_like(q) for q, _, _ in ins]
    fns = [lambda q=q, k=k, v=v, o=o: w.run(q, k, v, out=o) for (q, k, v), o in zip(ins, outs)]
    return w, fns


def _paged_case(b, l, sets, ws_mib=WORKSPACE_MIB, qo_len=None):
    """Paged wrapper over b requests of l K / V tokens and qo_len (default l) queries each."""
    import flashinfer

    pages = l // PAGE
    qo_len = l if qo_len is None else qo_len
    qo = torch.arange(0, (b + 1) * qo_len, qo_len, dtype=torch.int32)
    kv_ip = torch.arange(0, (b + 1) * pages, pages, dtype=torch.int32)
    idx = torch.randperm(b * pages).to(torch.int32)
    last = torch.full((b,), PAGE, dtype=torch.int32)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(ws_mib << 20, dtype=torch.uint8, device="cuda"))
    w.plan(qo, kv_ip, idx, last, HQ, HKV, D, PAGE, causal=True, q_data_type=torch.bfloat16)
    ins = [(torch.randn(b * qo_len, HQ, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(b * pages, 2, PAGE, HKV, D, device="cuda", dtype=torch.bfloat16)) for _ in range(sets)]
    outs = [torch.empty_like(q) for q, _ in ins]
    fns = [lambda q=q, c=c, o=o: w.run(q, c, out=o) for (q, c), o in zip(ins, outs)]
    return w, fns


def _single_fns(l, sets):
    import flashinfer

    ins = [(torch.randn(l, HQ, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(l, HKV, D, device="cuda", dtype=torch.bfloat16),
            torch.randn(l, HKV, D, device="cuda", dtype=torch.bfloat16)) for _ in range(sets)]
    return [lambda q=q, k=k, v=v: flashinfer.single_prefill_with_kv_cache(q, k, v, causal=True) for q, k, v in ins]


def _plan_host_ms(batch: int = 256) -> float:
    import flashinfer

    rng = np.random.default_rng(0)
    qo = rng.integers(1, 512, batch)
    kv = qo + rng.integers(0, 2048, batch)
    pages = -(-kv // PAGE)
    qo_ip = torch.tensor(np.concatenate([[0], np.cumsum(qo)]), dtype=torch.int32)
    kv_ip = torch.tensor(np.concatenate([[0], np.cumsum(pages)]), dtype=torch.int32)
    idx = torch.arange(int(pages.sum()), dtype=torch.int32)
    last = torch.tensor(kv - (pages - 1) * PAGE, dtype=torch.int32)
    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
    for _ in range(2):
        w.plan(qo_ip, kv_ip, idx, last, HQ, HKV, D, PAGE, causal=True, q_data_type=torch.bfloat16)
    torch.cuda.synchronize()
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        w.plan(qo_ip, kv_ip, idx, last, HQ, HKV, D, PAGE, causal=True, q_data_type=torch.bfloat16)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def run(quick: bool) -> List[dict]:
    rows = []
    shapes = SHAPES[:1] + SHAPES[2:] if quick else SHAPES
    for b, l in shapes:
        nbytes = b * l * (2 * HQ + 2 * HKV) * D * 2
        sets = input_sets_for(nbytes, max_sets=3)
        flash_us, flash_mode = _sdpa("FLASH_ATTENTION", b, l, sets)
        cudnn_us, cudnn_mode = _sdpa("CUDNN_ATTENTION", b, l, sets)
        cases = [("ragged", _ragged_case), ("paged_p16", _paged_case)]
        for name, make in cases:
            w, fns = make(b, l, sets)
            us = time_device_us(fns, warmup=3, reps=20)
            host = host_us_eager(fns[0], reps=50) if (b, l) == SHAPES[-1] else None
            extra = ({"staged": bool(w._staging_bytes), "inplace": bool(w._inplace), "workspace_mib": WORKSPACE_MIB}
                     if name == "paged_p16" else {})
            rows.append(_row(f"batch_prefill_{name}", b, l, us, nbytes, flash_us, flash_mode, cudnn_us, cudnn_mode,
                             host, **extra))
        if b == 1:
            us = time_device_us(_single_fns(l, sets), warmup=3, reps=20)
            rows.append(_row("single_prefill", b, l, us, nbytes, flash_us, flash_mode, cudnn_us, cudnn_mode, None))
    plan_ms = _plan_host_ms()
    # us: the host time of plan() (as the decode plan row), no device time
    rows.append(row("batch_prefill_paged.plan", "B=256 qo<512 kv<2560 P16", torch.bfloat16, plan_ms * 1e3, 0,
                    plan_host_ms=round(plan_ms, 3)))
    return rows


def _row(op, b, l, us, nbytes, flash_us, flash_mode, cudnn_us, cudnn_mode, host, **extra):
    tf = _tflops(b, l, us)
    tf_flash, tf_cudnn = _tflops(b, l, flash_us), _tflops(b, l, cudnn_us)
    tile = os.environ.get("FLASHINFER_PREFILL_TILE", "table")
    return row(op, f"B={b} L={l} Hq={HQ} Hkv={HKV} D={D} causal", torch.bfloat16, us, nbytes,
               peer=f"torch SDPA cuDNN ({cudnn_mode})", peer_us=cudnn_us, host_us=host,
               tflops=round(tf, 1), sdpa_flash_us=round(flash_us, 2) if flash_us else None,
               sdpa_flash_mode=flash_mode, sdpa_flash_tflops=round(tf_flash, 1) if tf_flash else None,
               sdpa_cudnn_tflops=round(tf_cudnn, 1) if tf_cudnn else None,
               ratio_vs_flash=round(tf / tf_flash, 3) if tf_flash else None,
               ratio_vs_cudnn=round(tf / tf_cudnn, 3) if tf_cudnn else None, tile=tile, **extra)


def tile_sweep(tiles=("table", "128,128,8,3", "128,64,8,4")) -> List[str]:
    """sm90 tile experiments (FLASHINFER_PREFILL_TILE="BM,BN,WARPS,STAGES"; "table" = the shipped
    table): ragged at the three shapes, paged at B=4 L=4096. How the shipped sm90 tiles were chosen."""
    lines = []
    for b, l in SHAPES:
        for t in tiles:
            if t == "table":
                os.environ.pop("FLASHINFER_PREFILL_TILE", None)
            else:
                os.environ["FLASHINFER_PREFILL_TILE"] = t
            for name, make in (("ragged", _ragged_case), ("paged", _paged_case)):
                if name == "paged" and (b, l) != (4, 4096):
                    continue
                _, fns = make(b, l, 1)
                us = time_device_us(fns, warmup=2, reps=10)
                lines.append(f"B={b} L={l} {name} tile={t}: {us:.1f} us {_tflops(b, l, us):.1f} TFLOP/s")
                print(lines[-1], flush=True)
    os.environ.pop("FLASHINFER_PREFILL_TILE", None)
    return lines
