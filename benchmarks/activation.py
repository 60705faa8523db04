"""Gated-activation benchmarks: silu_and_mul etc. vs torch.compile'd reference."""
import torch

import flashinfer
from flashinfer_ops.reference import activation as ref

from .common import graph_replay_us, host_us_eager, input_sets_for, row, steady_us, time_device_us

SHAPES = [(16384, 14336), (1, 14336), (128, 14336)]
QUICK_SHAPES = [(4096, 14336), (1, 14336)]


def run(quick: bool):
    rows = []
    dtype = torch.bfloat16
    for name in ("silu_and_mul", "gelu_tanh_and_mul") if not quick else ("silu_and_mul",):
        fn = getattr(flashinfer, name)
        peer = torch.compile(getattr(ref, name), dynamic=False)
        for (m, d) in QUICK_SHAPES if quick else SHAPES:
            nbytes = m * 2 * d * 2 + m * d * 2
            sets = [torch.randn(m, 2 * d, dtype=dtype, device="cuda") for _ in range(input_sets_for(nbytes))]
            outs = [torch.empty(m, d, dtype=dtype, device="cuda") for _ in sets]
            ours = [lambda x=x, o=o: fn(x, out=o) for x, o in zip(sets, outs)]
            us = time_device_us(ours)
            peer_fns = [lambda x=x: peer(x) for x in sets]
            peer_us = time_device_us(peer_fns)
            small = m <= 128
            rows.append(row(name, (m, 2 * d), dtype, us, nbytes, peer="torch.compile(reference)", peer_us=peer_us,
                            host_us=host_us_eager(ours[0]) if small else None,
                            graph_us=graph_replay_us(ours[0]) if small else None,
                            us_steady=None if small else steady_us(ours),
                            peer_us_steady=None if small else steady_us(peer_fns)))
    return rows
