"""Paged KV append benchmark: append_paged_kv_cache vs a torch.compile'd index_put reference that
does the same page-table lookup."""
import torch

import flashinfer

from .common import graph_replay_us, host_us_eager, input_sets_for, row, steady_us, time_device_us

H, D, PS = 8, 128, 16


def torch_append(k, v, k_cache, v_cache, b, p, kv_indices, kv_indptr):
    """The peer: page = kv_indices[kv_indptr[b] + p // P], slot = p % P; index_put K and V."""
    b, p = b.long(), p.long()
    page = kv_indices.long()[kv_indptr.long()[b] + p // PS]
    slot = p % PS
    k_cache[page, slot] = k
    v_cache[page, slot] = v


def _table(lens):
    npages = [-(-n // PS) for n in lens]
    indices = torch.randperm(sum(npages), device="cuda").to(torch.int32)
    indptr = torch.tensor([0] + torch.tensor(npages).cumsum(0).tolist(), dtype=torch.int32, device="cuda")
    last = torch.tensor([n - (q - 1) * PS for n, q in zip(lens, npages)], dtype=torch.int32, device="cuda")
    append_indptr = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32, device="cuda")
    seq = flashinfer.get_seq_lens(indptr, last, PS)
    b, p = flashinfer.get_batch_indices_positions(append_indptr, seq, sum(lens))
    return sum(npages), indices, indptr, last, b, p


def run(quick: bool):
    rows = []
    dtype = torch.bfloat16
    peer = torch.compile(torch_append, dynamic=False)
    for name, lens in (("prefill 8x5000", [5000] * 8), ("decode 64x1", [1] * 64)):
        nnz = sum(lens)
        num_pages, indices, indptr, last, b, p = _table(lens)
        nbytes = 4 * nnz * H * D * 2  # K and V read + written
        sets = []
        for _ in range(input_sets_for(nbytes)):
            kv = torch.zeros(num_pages, 2, PS, H, D, dtype=dtype, device="cuda")
            sets.append((torch.randn(nnz, H, D, dtype=dtype, device="cuda"),
                         torch.randn(nnz, H, D, dtype=dtype, device="cuda"), kv))
        ours = [lambda k=k, v=v, kv=kv: flashinfer.append_paged_kv_cache(k, v, b, p, kv, indices, indptr, last)
                for k, v, kv in sets]
        us = time_device_us(ours)
        peer_fns = [lambda k=k, v=v, kv=kv: peer(k, v, kv[:, 0], kv[:, 1], b, p, indices, indptr)
                    for k, v, kv in sets]
        peer_us = time_device_us(peer_fns)
        small = nnz <= 64
        rows.append(row("append_paged_kv_cache", f"{name} H{H} D{D} P{PS}", dtype, us, nbytes,
                        peer="torch.compile(index_put)", peer_us=peer_us,
                        host_us=host_us_eager(ours[0]) if small else None,
                        graph_us=graph_replay_us(ours[0], calls_per_graph=20 if small else 4),
                        us_steady=None if small else steady_us(ours),
                        peer_us_steady=None if small else steady_us(peer_fns)))
    return rows
