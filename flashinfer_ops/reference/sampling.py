"""Plain-PyTorch semantics of the sampling ops: the CPU kernels and the test oracles.

Filters are written the sort-based way (the definition), so they are independent of the
sorting-free Triton kernels they check:

* top-p nucleus of a row: sort ascending, keep tokens whose ascending CDF is >= 1 - p (ties of
  the boundary value all kept); equivalently a token is kept iff the mass of strictly larger
  tokens is < p.
* top-k: keep tokens >= the k-th largest value (ties kept); k <= 0 or k >= vocab keeps all.
* min-p: keep tokens with p >= min_p * max(p).
* joint top-k/top-p: the intersection of the top-k set and the top-p nucleus of the original row.

The CPU sampling kernels draw with a torch.Generator seeded from (seed, offset), so a CPU run is
reproducible from the same two tensors, and advance offset by the call's increment exactly like
the Triton kernels do.
"""
from __future__ import annotations

from typing import Optional

import torch

ROUNDS_PER_ROW = 32  # Philox counters reserved per row by the rejection samplers (FlashInfer: batch*32)


def rng_increment(n: int) -> int:
    """FlashInfer's generator offset increment: rounded up to a multiple of 4."""
    return (int(n) + 3) // 4 * 4


def _row_param(arr: Optional[torch.Tensor], val, n_rows: int, dtype) -> torch.Tensor:
    if arr is None:
        return torch.full((n_rows,), val, dtype=dtype)
    return arr.to(device="cpu", dtype=dtype).reshape(-1)


# ---- filters (oracles and CPU kernels) ----------------------------------------------------------

def softmax(logits: torch.Tensor, temperature=None) -> torch.Tensor:
    x = logits.float()
    if temperature is None:
        t = torch.ones(x.shape[0], 1, dtype=torch.float32, device=x.device)
    elif isinstance(temperature, torch.Tensor):
        t = temperature.float().reshape(-1, 1).to(x.device)
    else:
        t = torch.full((x.shape[0], 1), float(temperature), dtype=torch.float32, device=x.device)
    return torch.softmax(x / t, dim=-1)


def mass_above(probs: torch.Tensor) -> torch.Tensor:
    """float64 [B, V]: for each token, the total probability of the strictly larger tokens."""
    pd = probs.double()
    asc = torch.sort(pd, dim=-1).values
    cdf = torch.cumsum(asc, dim=-1)
    n_le = torch.searchsorted(asc, pd, right=True)  # tokens <= each value (ties included)
    mass_le = torch.gather(cdf, -1, (n_le - 1).clamp_min(0))
    return cdf[:, -1:] - mass_le


def _row_threshold(value, p: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.double().reshape(-1, 1).to(p.device)
    return torch.full((p.shape[0], 1), float(value), dtype=torch.float64, device=p.device)


def top_p_mask(probs: torch.Tensor, top_p) -> torch.Tensor:
    """Boolean [B, V]: tokens in the top-p nucleus (sort-based definition)."""
    p = probs.float()
    if p.numel() == 0:
        return torch.zeros_like(p, dtype=torch.bool)
    return (mass_above(p) < _row_threshold(top_p, p)) & (p > 0)


def top_p_boundary(probs: torch.Tensor, top_p, tol: float = 2e-5) -> torch.Tensor:
    """Boolean [B, V]: tokens whose strictly-larger mass is within `tol` of top_p, where float32
    summation order (kernel) and float64 (oracle) may legitimately disagree on membership."""
    p = probs.float()
    return (mass_above(p) - _row_threshold(top_p, p)).abs() < tol


def top_k_mask(values: torch.Tensor, top_k) -> torch.Tensor:
    """Boolean [B, V]: values >= the k-th largest of their row (ties kept)."""
    v = values.float()
    b, n = v.shape
    k = _row_param(top_k if isinstance(top_k, torch.Tensor) else None, top_k if not isinstance(top_k, torch.Tensor) else 0,
                   b, torch.int64).to(v.device)
    if n == 0 or b == 0:
        return torch.ones_like(v, dtype=torch.bool)
    sorted_v = torch.sort(v, dim=-1, descending=True).values
    kk = k.clamp(1, n) - 1
    kth = torch.gather(sorted_v, -1, kk.reshape(-1, 1))
    keep = v >= kth
    keep_all = ((k <= 0) | (k >= n)).reshape(-1, 1)
    return keep | keep_all


def min_p_mask(probs: torch.Tensor, min_p) -> torch.Tensor:
    p = probs.float()
    mp = min_p.float().reshape(-1, 1).to(p.device) if isinstance(min_p, torch.Tensor) else torch.full(
        (p.shape[0], 1), float(min_p), device=p.device)
    return (p >= mp * p.max(dim=-1, keepdim=True).values) & (p > 0)


def _renorm(p: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = torch.where(keep, p, torch.zeros_like(p))
    return kept / kept.sum(dim=-1, keepdim=True)


def top_p_renorm_probs(probs: torch.Tensor, top_p) -> torch.Tensor:
    p = probs.float()
    return _renorm(p, top_p_mask(p, top_p))


def top_k_renorm_probs(probs: torch.Tensor, top_k) -> torch.Tensor:
    p = probs.float()
    return _renorm(p, top_k_mask(p, top_k))


def top_k_mask_logits(logits: torch.Tensor, top_k) -> torch.Tensor:
    x = logits.float()
    return torch.where(top_k_mask(x, top_k), x, torch.full_like(x, float("-inf")))


def sampler_support(kind: str, probs: torch.Tensor, top_k=None, top_p=None, min_p=None,
                    filter_apply_order: str = "joint") -> torch.Tensor:
    """Boolean [B, V] support of a sampler's filtered distribution (for range checks)."""
    p = probs.float()
    if kind == "plain":
        return p > 0
    if kind == "top_p":
        return top_p_mask(p, top_p)
    if kind == "top_k":
        return top_k_mask(p, top_k) & (p > 0)
    if kind == "min_p":
        return min_p_mask(p, min_p)
    if kind == "top_k_top_p":
        if filter_apply_order == "joint":
            return top_k_mask(p, top_k) & top_p_mask(p, top_p)
        return top_p_mask(top_k_renorm_probs(p, top_k), top_p)
    raise ValueError(kind)


def filtered_distribution(kind: str, probs: torch.Tensor, **kw) -> torch.Tensor:
    p = probs.float()
    return _renorm(p, sampler_support(kind, p, **kw))


# ---- CPU sampling kernels -----------------------------------------------------------------------

def cpu_generator(seed: torch.Tensor, offset: torch.Tensor) -> torch.Generator:
    """A CPU generator determined by the (seed, offset) pair the op received."""
    s = int(seed.reshape(-1)[0]) & ((1 << 63) - 1)
    o = int(offset.reshape(-1)[0]) & ((1 << 63) - 1)
    g = torch.Generator()
    g.manual_seed((s * 0x9E3779B97F4A7C15 + o * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) % (1 << 63))
    return g


def advance(offset: torch.Tensor, n: int) -> None:
    offset.add_(rng_increment(n))


def sample_rows(dist: torch.Tensor, indices: Optional[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """One categorical draw per output row from the (unnormalised, non-negative) rows of `dist`."""
    rows = dist if indices is None else dist[indices.long()]
    if rows.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int32)
    w = rows.double().clamp_min(0)
    empty = w.sum(-1) <= 0
    w[empty, 0] = 1.0  # an all-zero row has no defined sample; token 0 like the kernels' fallback
    return torch.multinomial(w, 1, generator=gen).reshape(-1).to(torch.int32)


def chain_speculative_sampling(draft_probs, draft_token_ids, target_probs, gen: torch.Generator):
    """(output_token_ids [B, n+1], accepted [B], emitted [B]) of standard chain speculative sampling."""
    b, n, _ = draft_probs.shape
    q = draft_probs.float()
    p = target_probs.float()
    out = torch.full((b, n + 1), -1, dtype=torch.int32)
    accepted = torch.zeros(b, dtype=torch.int32)
    emitted = torch.zeros(b, dtype=torch.int32)
    for r in range(b):
        u = torch.rand(n + 1, generator=gen, dtype=torch.float64)
        pos = n
        for i in range(n):
            d = int(draft_token_ids[r, i])
            ok = bool(u[i] * q[r, i, d] < p[r, i, d])
            accepted[r] += int(ok)
            if pos == n and not ok:
                pos = i
        for i in range(pos):
            out[r, i] = draft_token_ids[r, i]
        emitted[r] = pos
        if pos < n:
            w = (p[r, pos] - q[r, pos]).clamp_min(0)
            if float(w.sum()) <= 0:
                w = p[r, pos]
        else:
            w = p[r, n]
        out[r, pos] = int(torch.multinomial(w.double().clamp_min(0) + (w.sum() <= 0) * 1.0, 1, generator=gen))
    return out, accepted, emitted
