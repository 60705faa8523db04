"""Plain-PyTorch semantics of the RoPE ops (spec §8.1): the CPU kernels.

Angles and rotation in float64 from float32-exact inputs, result cast to the output dtype; fp8
outputs are produced with torch's own casts (`.to(float8_*)`). The test oracles in tests/ are
written independently (Meta's complex multiplication, vLLM's forward_native).
"""
import math
from typing import Optional, Tuple

import torch


def inv_freq(rotary_dim: int, rope_scale: float, rope_theta: float, llama31: bool = False,
             low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
             old_context_len: float = 8192.0) -> torch.Tensor:
    """[rotary_dim/2] float64 inverse frequencies after plain (1/scale) or Llama-3.1 scaling."""
    f = rope_theta ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)
    if not llama31:
        return f / rope_scale
    smooth = (old_context_len * f / (2 * math.pi) - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smooth = smooth.clamp(0.0, 1.0)
    return (1.0 - smooth) * f / rope_scale + smooth * f


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleave: bool) -> torch.Tensor:
    """x [nnz, H, D] float64, cos/sin [nnz, rd/2]: rotates the first rd dims, keeps the rest."""
    rd = 2 * cos.shape[-1]
    out = x.clone()
    if interleave:
        x1, x2 = x[..., 0:rd:2], x[..., 1:rd:2]
        i1, i2 = slice(0, rd, 2), slice(1, rd, 2)
    else:
        x1, x2 = x[..., : rd // 2], x[..., rd // 2 : rd]
        i1, i2 = slice(0, rd // 2), slice(rd // 2, rd)
    c, s = cos[:, None, :], sin[:, None, :]
    out[..., i1] = x1 * c - x2 * s
    out[..., i2] = x2 * c + x1 * s
    return out


def apply_rope_pos_ids(q: torch.Tensor, k: torch.Tensor, pos_ids: torch.Tensor, rotary_dim: int,
                       interleave: bool, rope_scale: float, rope_theta: float, llama31: bool = False,
                       low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                       old_context_len: float = 8192.0) -> Tuple[torch.Tensor, torch.Tensor]:
    f = inv_freq(rotary_dim, rope_scale, rope_theta, llama31, low_freq_factor, high_freq_factor,
                 old_context_len).to(q.device)
    ang = pos_ids.to(torch.float64)[:, None] * f[None, :]
    cos, sin = ang.cos(), ang.sin()
    return (_rotate(q.double(), cos, sin, interleave).to(q.dtype),
            _rotate(k.double(), cos, sin, interleave).to(k.dtype))


def cos_sin_from_cache(cos_sin_cache: torch.Tensor, positions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    rows = cos_sin_cache.index_select(0, positions.long()).double()
    half = cos_sin_cache.shape[-1] // 2
    return rows[:, :half], rows[:, half:]


def apply_rope_with_cos_sin_cache(q: torch.Tensor, k: torch.Tensor, cos_sin_cache: torch.Tensor,
                                  positions: torch.Tensor, is_neox: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """q [nnz, Hq, head_size], k [nnz, Hk, head_size]; rotary_dim = cos_sin_cache.shape[1]."""
    cos, sin = cos_sin_from_cache(cos_sin_cache, positions)
    return (_rotate(q.double(), cos, sin, not is_neox).to(q.dtype),
            _rotate(k.double(), cos, sin, not is_neox).to(k.dtype))


def quantize(x: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """fp8(x * scale) with torch's cast (round to nearest even, no saturation)."""
    return (x.double() * scale).float().to(dtype)


def rope_quantize_fp8(q_rope: torch.Tensor, k_rope: torch.Tensor, q_nope: torch.Tensor, k_nope: torch.Tensor,
                      cos_sin_cache: torch.Tensor, pos_ids: torch.Tensor, is_neox: bool, quant_scale_q: float,
                      quant_scale_kv: float, dtype: torch.dtype):
    """(q_rope_out, k_rope_out, q_nope_out, k_nope_out) in `dtype`; k may be 2-D (MLA)."""
    cos, sin = cos_sin_from_cache(cos_sin_cache, pos_ids)
    k3 = k_rope if k_rope.dim() == 3 else k_rope[:, None, :]
    qr = _rotate(q_rope.double(), cos, sin, not is_neox)
    kr = _rotate(k3.double(), cos, sin, not is_neox).reshape(k_rope.shape)
    return (quantize(qr, quant_scale_q, dtype), quantize(kr, quant_scale_kv, dtype),
            quantize(q_nope, quant_scale_q, dtype), quantize(k_nope, quant_scale_kv, dtype))
