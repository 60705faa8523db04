"""Norm benchmarks: rmsnorm / fused_add_rmsnorm vs torch.compile'd reference and F.rms_norm."""
import torch

import flashinfer
from flashinfer_ops.reference import norm as ref

from .common import graph_replay_us, host_us_eager, input_sets_for, row, steady_us, time_device_us

SHAPES = [(16384, 8192), (4096, 4096), (1, 4096), (128, 4096)]
QUICK_SHAPES = [(4096, 4096), (1, 4096)]


def _compiled(fn):
    return torch.compile(fn, dynamic=False)


def run(quick: bool):
    rows = []
    dtype = torch.bfloat16
    ref_rms = _compiled(ref.rmsnorm)
    ref_fused = _compiled(ref.fused_add_rmsnorm)
    for (m, n) in QUICK_SHAPES if quick else SHAPES:
        nbytes = 2 * m * n * 2  # read x, write y (weight is negligible)
        sets = [(torch.randn(m, n, dtype=dtype, device="cuda"), torch.randn(n, dtype=dtype, device="cuda"))
                for _ in range(input_sets_for(nbytes))]
        outs = [torch.empty_like(x) for x, _ in sets]
        ours = [lambda x=x, w=w, o=o: flashinfer.rmsnorm(x, w, out=o) for (x, w), o in zip(sets, outs)]
        us = time_device_us(ours)
        peer_fns = [lambda x=x, w=w: ref_rms(x, w, 1e-6) for x, w in sets]
        peer_us = time_device_us(peer_fns)
        big = m * n > 128 * 4096
        st = steady_us(ours) if big else None
        peer_st = steady_us(peer_fns) if big else None
        f_us = time_device_us([lambda x=x, w=w: torch.nn.functional.rms_norm(x, (n,), w, 1e-6) for x, w in sets])
        small = m * n <= 128 * 4096
        rows.append(row("rmsnorm", (m, n), dtype, us, nbytes, peer="torch.compile(reference)", peer_us=peer_us,
                        host_us=host_us_eager(ours[0]) if small else None,
                        graph_us=graph_replay_us(ours[0]) if small else None,
                        us_steady=st, peer_us_steady=peer_st,
                        peer2="F.rms_norm", peer2_us=round(f_us, 2), speedup_vs_peer2=round(f_us / us, 3)))
        # fused add: reads input + residual, writes both
        fbytes = 4 * m * n * 2
        fsets = [(torch.randn(m, n, dtype=dtype, device="cuda"), torch.randn(m, n, dtype=dtype, device="cuda"),
                  torch.randn(n, dtype=dtype, device="cuda")) for _ in range(input_sets_for(fbytes))]
        fours = [lambda x=x, r=r, w=w: flashinfer.fused_add_rmsnorm(x, r, w) for x, r, w in fsets]
        fus = time_device_us(fours)
        fpeer_fns = [lambda x=x, r=r, w=w: ref_fused(x, r, w, 1e-6) for x, r, w in fsets]
        fpeer = time_device_us(fpeer_fns)
        rows.append(row("fused_add_rmsnorm", (m, n), dtype, fus, fbytes, peer="torch.compile(reference)",
                        peer_us=fpeer, host_us=host_us_eager(fours[0]) if small else None,
                        graph_us=graph_replay_us(fours[0]) if small else None,
                        us_steady=steady_us(fours) if big else None,
                        peer_us_steady=steady_us(fpeer_fns) if big else None))
    return rows
