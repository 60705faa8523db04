"""Sampling benchmarks (vocab 128256; fp32 probs, bf16 logits drawn as N(0, 3^2) logits).

* top_k_top_p_sampling_from_logits (k 50, p 0.9; top_k_first, and joint as an extra column) at
  batch 1 / 64 / 256 vs PyTorch's sort-based sampler (softmax + sort + cumsum + multinomial), eager
  and torch.compile'd; host us eager and us per graph replay at batch 1.
* top_p_sampling_from_probs (p 0.9) at batch 128: `passes` = time / (probs bytes / copy ceiling).
* softmax at batch 256 (bytes = bf16 read + fp32 write).

A/B in the same run: `us_split_off` times the same calls with FLASHINFER_SAMPLING_SPLIT=0 (the
previous kernels: three ops for top_k_first, one program per row for softmax, one block per step
in the rejection samplers). The top-p and softmax rows also report steady-state times (`us_steady`,
back-to-back in a CUDA graph), which do not pay for writing back the L2 flush's dirty lines.
"""
import contextlib
import os

import torch

import flashinfer

from .common import copy_ceiling_tbps, graph_replay_us, host_us_eager, input_sets_for, row, steady_us, time_device_us


@contextlib.contextmanager
def _split_off():
    old = os.environ.get("FLASHINFER_SAMPLING_SPLIT")
    os.environ["FLASHINFER_SAMPLING_SPLIT"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["FLASHINFER_SAMPLING_SPLIT"]
        else:
            os.environ["FLASHINFER_SAMPLING_SPLIT"] = old


def _us_split_off(fns):
    with _split_off():
        return round(time_device_us(fns), 2)

VOCAB = 128256
K, P = 50, 0.9


def torch_top_k_top_p(logits: torch.Tensor, k: int, p: float) -> torch.Tensor:
    """The sort-based reference sampler (top-k first, then top-p on the renormalised top-k)."""
    probs = torch.softmax(logits.float(), dim=-1)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True)
    sorted_p[:, k:] = 0.0
    sorted_p = sorted_p / sorted_p.sum(-1, keepdim=True)
    excl = torch.cumsum(sorted_p, dim=-1) - sorted_p
    sorted_p = sorted_p.masked_fill(excl >= p, 0.0)
    pick = torch.multinomial(sorted_p, 1)
    return torch.gather(order, -1, pick).squeeze(-1)


def _logits(b):
    return (torch.randn(b, VOCAB, device="cuda") * 3).to(torch.bfloat16)


def run(quick: bool):
    rows = []
    ceiling = copy_ceiling_tbps()
    try:
        compiled_ref = torch.compile(torch_top_k_top_p, dynamic=False)
        compiled_ref(_logits(2), K, P)
    except Exception as e:  # report, don't hide
        print(f"  torch.compile of the sort-based sampler failed: {type(e).__name__}: {e}")
        compiled_ref = None
    for b in (1, 64) if quick else (1, 64, 256):
        nbytes = b * VOCAB * 2
        sets = [_logits(b) for _ in range(input_sets_for(nbytes))]
        ours = [lambda x=x: flashinfer.top_k_top_p_sampling_from_logits(x, K, P) for x in sets]
        joint = [lambda x=x: flashinfer.top_k_top_p_sampling_from_logits(x, K, P, filter_apply_order="joint")
                 for x in sets]
        us = time_device_us(ours)
        off_us = _us_split_off(ours)
        joint_us = time_device_us(joint)
        peer_us = time_device_us([lambda x=x: torch_top_k_top_p(x, K, P) for x in sets])
        comp_us = time_device_us([lambda x=x: compiled_ref(x, K, P) for x in sets]) if compiled_ref else None
        extra = {}
        if b == 1:
            extra = dict(host_us=host_us_eager(ours[0]), graph_us=graph_replay_us(ours[0]))
        rows.append(row("top_k_top_p_sampling_from_logits", (b, VOCAB), torch.bfloat16, us, nbytes,
                        peer="torch sort-based sampler (eager)", peer_us=peer_us,
                        joint_us=round(joint_us, 2), us_split_off=off_us, joint_us_split_off=_us_split_off(joint),
                        peer_compiled_us=round(comp_us, 2) if comp_us else None,
                        speedup_vs_compiled_peer=round(comp_us / us, 3) if comp_us else None,
                        k=K, p=P, **extra))
    # top-p from probs at batch 128
    b = 128
    nbytes = b * VOCAB * 4
    psets = [torch.softmax(torch.randn(b, VOCAB, device="cuda") * 3, -1) for _ in range(input_sets_for(nbytes))]
    ours = [lambda x=x: flashinfer.top_p_sampling_from_probs(x, P) for x in psets]
    us = time_device_us(ours)
    off_us = _us_split_off(ours)
    peer_us = time_device_us([lambda x=x: torch_top_k_top_p(x.log(), VOCAB, P) for x in psets])
    one_pass = nbytes / (ceiling * 1e12) * 1e6
    rows.append(row("top_p_sampling_from_probs", (b, VOCAB), torch.float32, us, nbytes,
                    peer="torch sort-based sampler (eager)", peer_us=peer_us, us_steady=steady_us(ours),
                    passes=round(us / one_pass, 2), p=P, copy_ceiling_tbps=round(ceiling, 3),
                    us_split_off=off_us, passes_split_off=round(off_us / one_pass, 2)))
    # softmax at batch 256
    b = 256
    nbytes = b * VOCAB * (2 + 4)
    ssets = [_logits(b) for _ in range(input_sets_for(nbytes))]
    ours = [lambda x=x: flashinfer.softmax(x, 0.7) for x in ssets]
    us = time_device_us(ours)
    off_us = _us_split_off(ours)
    peer_fns = [lambda x=x: torch.softmax(x.float() / 0.7, -1) for x in ssets]
    peer_us = time_device_us(peer_fns)
    rows.append(row("softmax", (b, VOCAB), torch.bfloat16, us, nbytes, peer="torch.softmax(x.float()/T)",
                    peer_us=peer_us, us_steady=steady_us(ours), peer_us_steady=steady_us(peer_fns),
                    pct_of_ceiling_here=round(100 * nbytes / (us * 1e-6) / 1e12 / ceiling, 1),
                    us_split_off=off_us, pct_split_off=round(100 * nbytes / (off_us * 1e-6) / 1e12 / ceiling, 1)))
    return rows


if __name__ == "__main__":
    import json

    for r in run(quick=False):
        print(json.dumps(r))
