"""RoPE benchmarks: apply_rope_with_cos_sin_cache_inplace (and the pos_ids form) vs a
torch.compile'd vLLM-forward_native-style reference (fp32 math, in place). `us` is eager with a
cold L2 (host latency beyond the L2 flush shows up in it); `us_graph_replay` is per call inside a
CUDA graph (device time without host cost, warm-ish L2 for the small shapes)."""
import torch

import flashinfer

from .common import graph_replay_us, host_us_eager, input_sets_for, row, steady_us, time_device_us

HQ, HK, D = 32, 8, 128
TOKENS = [4096, 65536]
QUICK_TOKENS = [4096]
DECODE_TOKENS = 64


def torch_rope_inplace(positions, q, k, cos_sin_cache):
    """The peer: vLLM's forward_native (rotate-half) in fp32, written back in place."""
    cos, sin = cos_sin_cache.index_select(0, positions).chunk(2, dim=-1)
    cos, sin = cos[:, None, :], sin[:, None, :]
    for x in (q, k):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        x.copy_(torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype))


def _inputs(nnz, dtype):
    q = torch.randn(nnz, HQ, D, dtype=dtype, device="cuda")
    k = torch.randn(nnz, HK, D, dtype=dtype, device="cuda")
    pos = torch.randint(0, 65536, (nnz,), device="cuda")
    return q, k, pos


def run(quick: bool):
    rows = []
    dtype = torch.bfloat16
    inv = 1.0 / (1e4 ** (torch.arange(0, D, 2, dtype=torch.float32, device="cuda") / D))
    f = torch.outer(torch.arange(65536, dtype=torch.float32, device="cuda"), inv)
    cache = torch.cat((f.cos(), f.sin()), -1)
    peer = torch.compile(torch_rope_inplace, dynamic=False)
    for nnz in (QUICK_TOKENS if quick else TOKENS) + [DECODE_TOKENS]:
        # q and k read + written, the cache rows and the positions read
        nbytes = 2 * nnz * (HQ + HK) * D * 2 + nnz * D * 4 + nnz * 8
        sets = [_inputs(nnz, dtype) for _ in range(input_sets_for(nbytes))]
        ours = [lambda q=q, k=k, p=p: flashinfer.apply_rope_with_cos_sin_cache_inplace(p, q, k, D, cache)
                for q, k, p in sets]
        us = time_device_us(ours)
        peer_fns = [lambda q=q, k=k, p=p: peer(p, q, k, cache) for q, k, p in sets]
        peer_us = time_device_us(peer_fns)
        small = nnz <= DECODE_TOKENS
        rows.append(row("apply_rope_with_cos_sin_cache_inplace", (nnz, HQ, HK, D), dtype, us, nbytes,
                        peer="torch.compile(forward_native)", peer_us=peer_us,
                        host_us=host_us_eager(ours[0]) if small else None,
                        graph_us=graph_replay_us(ours[0], calls_per_graph=20 if small else 4),
                        us_steady=None if small else steady_us(ours),
                        peer_us_steady=None if small else steady_us(peer_fns)))
        if nnz == (QUICK_TOKENS if quick else TOKENS)[0] or small:
            pbytes = 2 * nnz * (HQ + HK) * D * 2 + nnz * 8
            pos_fns = [lambda q=q, k=k, p=p: flashinfer.apply_rope_pos_ids_inplace(q, k, p) for q, k, p in sets]
            pus = time_device_us(pos_fns)
            rows.append(row("apply_rope_pos_ids_inplace", (nnz, HQ, HK, D), dtype, pus, pbytes,
                            host_us=host_us_eager(pos_fns[0]) if small else None,
                            graph_us=graph_replay_us(pos_fns[0], calls_per_graph=20 if small else 4)))
    return rows
