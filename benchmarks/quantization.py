"""packbits / segment_packbits benchmarks vs torch.compile'd reference."""
import torch

import flashinfer
from flashinfer_ops.reference import quantization as ref

from .common import host_us_eager, row, time_device_us


def run(quick: bool):
    rows = []
    n = 1 << 24 if not quick else 1 << 20
    x = torch.rand(n, device="cuda") > 0.5
    us = time_device_us([lambda: flashinfer.packbits(x, "little")])
    peer = torch.compile(ref.packbits, dynamic=False)
    peer_us = time_device_us([lambda: peer(x, "little")])
    rows.append(row("packbits", (n,), torch.bool, us, n + n // 8, peer="torch.compile(reference)", peer_us=peer_us,
                    host_us=host_us_eager(lambda: flashinfer.packbits(x[:4096], "little"))))
    # custom-mask shaped segments: 64 requests x (qo 128 x kv 2048)
    lens = torch.full((64,), 128 * 2048, dtype=torch.int64)
    ip = torch.cat([torch.zeros(1, dtype=torch.int64), lens.cumsum(0)]).to(torch.int32).cuda()
    m = torch.rand(int(lens.sum()), device="cuda") > 0.5
    sus = time_device_us([lambda: flashinfer.segment_packbits(m, ip, "little")])
    rows.append(row("segment_packbits", (64, 128 * 2048), torch.bool, sus, m.numel() + m.numel() // 8,
                    note="includes the facade's host sync for the output size"))
    return rows
