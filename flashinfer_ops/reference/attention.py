"""Plain-PyTorch attention semantics: the oracle for every decode / prefill kernel and the CPU
kernels of the attention ops.

Conventions (spec/flashinfer-api.md §0.3): per request, q [qo_len, H_qo, D_qk], k [kv_len, H_kv,
D_qk], v [kv_len, H_kv, D_vo] (NHD). Query head h reads kv head h // (H_qo // H_kv). Scores
s = (q . k) * sm_scale, then logits soft cap cap * tanh(s / cap), then ALiBi bias, then masks:
causal is bottom-right aligned (row i sees keys j <= i + kv_len - qo_len), window_left w keeps
keys j >= i + kv_len - qo_len - w, a custom mask [qo_len, kv_len] keeps True entries. Rows with
no visible key give output 0 and lse -inf. LSE is log2-sum-exp of the final scores (base 2).
"""
import math
from typing import List, Optional, Tuple

import torch

LOG2E = 1.0 / math.log(2.0)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Standard geometric ALiBi slopes (float32 [num_heads]), as FlashInfer's get_alibi_slopes."""
    n = 2 ** math.floor(math.log2(num_heads))
    m0 = 2.0 ** (-8.0 / n)
    slopes = [m0 ** (i + 1) for i in range(n)]
    if n < num_heads:
        m1 = 2.0 ** (-4.0 / n)
        slopes += [m1 ** (2 * i + 1) for i in range(num_heads - n)]
    return torch.tensor(slopes, dtype=torch.float32)


def rope_llama(x: torch.Tensor, positions: torch.Tensor, rope_scale: float, rope_theta: float) -> torch.Tensor:
    """Rotate-half (non-interleaved) RoPE over the full head dim: x [n, H, D], positions [n]."""
    d = x.shape[-1]
    inv_freq = 1.0 / (rope_theta ** (torch.arange(0, d // 2, dtype=torch.float64, device=x.device) * 2.0 / d))
    ang = positions.to(torch.float64)[:, None] / rope_scale * inv_freq[None, :]
    cos, sin = ang.cos()[:, None, :].to(x.dtype), ang.sin()[:, None, :].to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def single_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: Optional[float] = None,
    window_left: int = -1,
    logits_soft_cap: float = 0.0,
    alibi: bool = False,
    rope: bool = False,
    rope_scale: float = 1.0,
    rope_theta: float = 1e4,
    custom_mask: Optional[torch.Tensor] = None,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
    acc_dtype: torch.dtype = torch.float32,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One request. q [qo, H_qo, D_qk], k [kv, H_kv, D_qk], v [kv, H_kv, D_vo] in any dtype
    (fp8 included: values are upcast, then k_scale / v_scale applied).

    Returns (o [qo, H_qo, D_vo] in acc_dtype, lse [qo, H_qo] float32, base 2)."""
    qo_len, h_qo, d_qk = q.shape
    kv_len, h_kv, _ = k.shape
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(d_qk)
    group = h_qo // h_kv
    qf = q.to(acc_dtype)
    kf = k.to(acc_dtype) * k_scale
    vf = v.to(acc_dtype) * v_scale
    if rope:
        qpos = torch.arange(kv_len - qo_len, kv_len, device=q.device)
        qf = rope_llama(qf, qpos, rope_scale, rope_theta)
        kf = rope_llama(kf, torch.arange(kv_len, device=q.device), rope_scale, rope_theta)
    kf = kf.repeat_interleave(group, dim=1)
    vf = vf.repeat_interleave(group, dim=1)
    s = torch.einsum("qhd,khd->hqk", qf, kf) * sm_scale
    if logits_soft_cap and logits_soft_cap > 0:
        s = logits_soft_cap * torch.tanh(s / logits_soft_cap)
    rows = torch.arange(qo_len, device=q.device)[:, None] + (kv_len - qo_len)
    cols = torch.arange(kv_len, device=q.device)[None, :]
    if alibi:
        slopes = alibi_slopes(h_qo).to(q.device, acc_dtype)
        s = s + slopes[:, None, None] * (cols - rows).to(acc_dtype)[None]
    keep = torch.ones(qo_len, kv_len, dtype=torch.bool, device=q.device)
    if custom_mask is not None:
        keep &= custom_mask.to(torch.bool).view(qo_len, kv_len)
    elif causal:
        keep &= cols <= rows
    if window_left is not None and window_left >= 0:
        keep &= cols >= rows - window_left
    s = s.masked_fill(~keep[None], float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # [H, qo], natural log
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    o = torch.einsum("hqk,khd->qhd", p, vf)
    return o, (lse * LOG2E).transpose(0, 1).float().contiguous()


def gather_paged_kv(
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
    kv_last_page_len: torch.Tensor,
    kv_layout: str = "NHD",
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Dense (k, v) [kv_len, H_kv, D] per request from 4-D caches ([pages, P, H, D] for NHD,
    [pages, H, P, D] for HND) and a CSR page table (spec §0.3)."""
    if kv_layout == "HND":
        k_cache, v_cache = k_cache.transpose(1, 2), v_cache.transpose(1, 2)
    page = k_cache.shape[1]
    ip, idx, last = kv_indptr.tolist(), kv_indices.tolist(), kv_last_page_len.tolist()
    out = []
    for b in range(len(ip) - 1):
        pages = idx[ip[b]:ip[b + 1]]
        if not pages:
            out.append((k_cache[:0].reshape(0, *k_cache.shape[2:]), v_cache[:0].reshape(0, *v_cache.shape[2:])))
            continue
        kv_len = (len(pages) - 1) * page + last[b]
        sel = torch.tensor(pages, dtype=torch.long, device=k_cache.device)
        out.append((k_cache[sel].reshape(-1, *k_cache.shape[2:])[:kv_len],
                    v_cache[sel].reshape(-1, *v_cache.shape[2:])[:kv_len]))
    return out


def batch_decode_paged(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
    kv_last_page_len: torch.Tensor,
    kv_layout: str = "NHD",
    **kwargs,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Paged batch decode: q [B, H_qo, D] (one query per request) against the pages of each
    request (gather_paged_kv). kwargs go to single_attention. Returns (o [B, H_qo, D] in
    kwargs' acc_dtype (float32 by default), lse [B, H_qo] float32 base 2)."""
    outs, lses = [], []
    for b, (k, v) in enumerate(gather_paged_kv(k_cache, v_cache, kv_indptr, kv_indices, kv_last_page_len, kv_layout)):
        o, lse = single_attention(q[b:b + 1], k, v, **kwargs)
        outs.append(o)
        lses.append(lse)
    if not outs:
        acc = kwargs.get("acc_dtype", torch.float32)
        return q.new_zeros(q.shape, dtype=acc), q.new_zeros(q.shape[:2], dtype=torch.float32)
    return torch.cat(outs), torch.cat(lses)


def merge_states(v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Merge attention states (spec §5.1): v [seq, n, H, D] normalised outputs, s [seq, n, H] base-2
    LSEs -> (v [seq, H, D] float32, s [seq, H] float32). States with s = -inf weigh nothing; a row
    with no finite state gives v 0, s -inf."""
    s = s.float()
    m = s.max(dim=1).values
    m_safe = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    w = torch.exp2(s - m_safe[:, None])
    tot = w.sum(dim=1)
    vo = (w[..., None] * v.float()).sum(dim=1) / torch.where(tot > 0, tot, torch.ones_like(tot))[..., None]
    so = torch.where(tot > 0, m_safe + torch.log2(torch.where(tot > 0, tot, torch.ones_like(tot))),
                     torch.full_like(tot, float("-inf")))
    return vo, so


def unpack_mask_bits(packed: torch.Tensor, byte_offset: int, n: int) -> torch.Tensor:
    """Bool [n]: bits of a little-endian packed mask (FlashInfer's packbits(..., "little")) starting
    at byte `byte_offset`."""
    nbytes = (n + 7) // 8
    b = packed[byte_offset:byte_offset + nbytes].to(torch.int32)
    bits = (b[:, None] >> torch.arange(8, device=packed.device, dtype=torch.int32)[None, :]) & 1
    return bits.reshape(-1)[:n].to(torch.bool)
