"""Triton RoPE kernels against oracles written independently of the kernel's formulation:
Meta's complex multiplication (llama `precompute_freqs_cis` / `apply_scaling`) for the pos_ids
forms, and vLLM's `RotaryEmbedding.forward_native` for the cos/sin cache forms."""
import itertools
import math

import pytest
import torch

from helpers import KERNEL_DEVICE, KERNEL_MODE, assert_close, needs_kernels, poison, run_kernel, shapes

pytestmark = needs_kernels
DEV = KERNEL_DEVICE
FP8 = [torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz]
MAN_BITS = {torch.float8_e4m3fn: 3, torch.float8_e5m2: 2, torch.float8_e4m3fnuz: 3, torch.float8_e5m2fnuz: 2}


# ---- oracles -----------------------------------------------------------------------------------

def meta_freqs(rotary_dim, theta, rope_scale, llama31, low=1.0, high=4.0, old=8192):
    """Meta llama reference: freqs = 1/theta^(2i/d); Llama-3.1 `apply_scaling` loop."""
    freqs = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float64)[: rotary_dim // 2] / rotary_dim))
    if not llama31:
        return freqs / rope_scale
    low_wavelen, high_wavelen = old / low, old / high
    new = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            new.append(f)
        elif wavelen > low_wavelen:
            new.append(f / rope_scale)
        else:
            smooth = (old / wavelen - low) / (high - low)
            new.append((1 - smooth) * f / rope_scale + smooth * f)
    return torch.tensor(new, dtype=torch.float64)


def meta_rope(x, pos, rotary_dim, interleave, theta, rope_scale, llama31, **kw):
    """x [nnz, H, D]: complex multiplication x_c * exp(i * pos * f) on the first rotary_dim dims."""
    f = meta_freqs(rotary_dim, theta, rope_scale, llama31, **kw)
    freqs_cis = torch.polar(torch.ones(pos.shape[0], f.shape[0], dtype=torch.float64),
                            torch.outer(pos.cpu().double(), f))[:, None, :]
    xr = x[..., :rotary_dim].cpu().double()
    if not interleave:  # rotate-half pairs (j, j + d/2): gather them as complex (re, im) pairs
        xr = torch.stack([xr[..., : rotary_dim // 2], xr[..., rotary_dim // 2:]], -1)
    else:
        xr = xr.reshape(*xr.shape[:-1], rotary_dim // 2, 2)
    y = torch.view_as_real(torch.view_as_complex(xr.contiguous()) * freqs_cis)
    if not interleave:
        y = torch.cat([y[..., 0], y[..., 1]], -1)
    else:
        y = y.flatten(-2)
    out = x.cpu().double().clone()
    out[..., :rotary_dim] = y
    return out


def vllm_forward_native(positions, query, key, head_size, cos_sin_cache, is_neox):
    """vLLM RotaryEmbedding.forward_native on [nnz, H*head_size] inputs (float64)."""
    def rot(x, cos, sin):
        cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        if is_neox:
            x1, x2 = torch.chunk(x, 2, dim=-1)
        else:
            x1, x2 = x[..., ::2], x[..., 1::2]
        o1, o2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
        return torch.cat((o1, o2), dim=-1) if is_neox else torch.stack((o1, o2), dim=-1).flatten(-2)

    cos, sin = cos_sin_cache.cpu().double()[positions.cpu().long()].chunk(2, dim=-1)
    rd = cos_sin_cache.shape[-1]
    outs = []
    for x in (query, key):
        x = x.cpu().double().view(x.shape[0], -1, head_size)
        outs.append(torch.cat((rot(x[..., :rd], cos, sin), x[..., rd:]), dim=-1))
    return outs


def packed_qk(nnz, hq, hk, d, dtype):
    """q and k as strided views of one packed qkv tensor (as engines pass them)."""
    qkv = torch.randn(nnz, hq + 2 * hk, d, dtype=dtype, device=DEV)
    return qkv[:, :hq], qkv[:, hq:hq + hk]


# ---- pos_ids / llama31 -------------------------------------------------------------------------

POS_GRID = shapes(
    list(itertools.product([1, 19, 1001], [(8, 8), (32, 8)], [64, 128, 256], [0.25, 1.0])),
    [(3, (3, 2), 32, 0.5), (5, (2, 1), 64, 1.0)],
)


@pytest.mark.parametrize("nnz,heads,head_dim,frac", POS_GRID)
@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("llama31", [False, True])
@pytest.mark.parametrize("inplace", [False, True])
def test_rope_pos_ids(nnz, heads, head_dim, frac, interleave, llama31, inplace):
    dtype = torch.float16 if (nnz + head_dim) % 2 else torch.bfloat16
    pdt = torch.int32 if nnz % 2 else torch.int64
    q, k = packed_qk(nnz, *heads, head_dim, dtype)
    rd = int(head_dim * frac)
    pos = torch.randint(0, 20000 if llama31 else 4096, (nnz,), dtype=pdt, device=DEV)
    theta, scale = (5e5, 8.0) if llama31 else (1e4, 1.0 if nnz % 3 else 2.5)
    want_q = meta_rope(q, pos, rd, interleave, theta, scale, llama31)
    want_k = meta_rope(k, pos, rd, interleave, theta, scale, llama31)
    params = (rd, interleave, scale, theta, llama31, 1.0, 4.0, 8192.0)
    if inplace:
        run_kernel("apply_rope_pos_ids_inplace", q, k, pos, *params)
        got_q, got_k = q, k
    else:
        got_q, got_k = poison(torch.empty_like(q)), poison(torch.empty_like(k))
        q0, k0 = q.clone(), k.clone()
        run_kernel("apply_rope_pos_ids", got_q, got_k, q, k, pos, *params)
        assert torch.equal(q, q0) and torch.equal(k, k0), "inputs must stay untouched"
    tol = 1e-2 if dtype == torch.float16 else 2e-2
    assert_close(got_q.cpu(), want_q.to(dtype), rtol=tol, atol=tol)
    assert_close(got_k.cpu(), want_k.to(dtype), rtol=tol, atol=tol)


# ---- cos/sin cache -----------------------------------------------------------------------------

def make_cache(max_pos, rotary_dim, base):
    inv = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))
    f = torch.outer(torch.arange(max_pos, dtype=torch.float32), inv)
    return torch.cat((f.cos(), f.sin()), dim=-1).to(DEV)


CACHE_GRID = shapes(
    [(64, 64, 8000, 231, 4, 2), (256, 128, 10000, 231, 32, 8), (128, 32, 10000, 77, 8, 8), (128, 128, 1e4, 4096, 32, 8)],
    [(32, 16, 8000, 5, 2, 1), (64, 64, 10000, 3, 1, 1)],
)


@pytest.mark.parametrize("head_size,rotary_dim,base,nnz,hq,hk", CACHE_GRID)
@pytest.mark.parametrize("is_neox", [True, False])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rope_cos_sin_cache(head_size, rotary_dim, base, nnz, hq, hk, is_neox, inplace, dtype):
    cache = make_cache(8192, rotary_dim, base)
    q, k = packed_qk(nnz, hq, hk, head_size, dtype)
    pos = torch.randint(0, 8192, (nnz,), device=DEV)
    want_q, want_k = vllm_forward_native(pos, q.reshape(nnz, -1), k.reshape(nnz, -1), head_size, cache, is_neox)
    if inplace:
        run_kernel("apply_rope_with_cos_sin_cache_inplace", q, k, cache, pos, is_neox)
        got_q, got_k = q, k
    else:
        got_q, got_k = poison(torch.empty_like(q)), poison(torch.empty_like(k))
        run_kernel("apply_rope_with_cos_sin_cache", got_q, got_k, q, k, cache, pos, is_neox)
    assert_close(got_q.cpu(), want_q.to(dtype))
    assert_close(got_k.cpu(), want_k.to(dtype))


# ---- fp8 encoding and fused RoPE + fp8 ---------------------------------------------------------

def check_fp8(got_bytes, exact, dtype, scale):
    """got = fp8(exact * scale) within one fp8 ulp, and bitwise equal to torch's cast of the
    fp64-exact value for at least 97% of the elements (the rest sit on rounding boundaries)."""
    got = got_bytes.cpu().view(dtype).double()
    want = exact.cpu().double() * scale
    tol = want.abs() * 2.0 ** -MAN_BITS[dtype] + 1e-2
    assert bool(((got - want).abs() <= tol).all()), f"max error {(got - want).abs().max()}"
    if want.numel():
        same = (got_bytes.cpu() == want.float().to(dtype).view(torch.uint8)).double().mean()
        assert same >= 0.97, f"only {same:.3f} bitwise equal to torch's cast"


def test_fp8_encoder_matches_torch_casts():
    """Every finite fp8 value, the midpoints between neighbours (ties to even) and random floats."""
    for i, dtype in enumerate(FP8):
        vals = torch.arange(256, dtype=torch.uint8).view(dtype).float()
        fin = vals[torch.isfinite(vals)].sort().values
        mids = (fin[1:] + fin[:-1]) / 2
        x = torch.cat([fin, mids, mids * (1 + 1e-6), mids * (1 - 1e-6), torch.randn(4000) * 50,
                       torch.tensor([0.0, -0.0, 1e-30, -1e-30])]).to(DEV)
        # The encoder is reached through rope_quantize_fp8's nope path with scale 1: fp8(x).
        n = x.numel()
        xin = x.to(torch.bfloat16).float()  # bf16-exact inputs (the op reads fp16/bf16)
        q_nope = xin.to(torch.bfloat16).view(n, 1, 1)
        q_rope = torch.zeros(n, 1, 2, dtype=torch.bfloat16, device=DEV)
        k_rope = torch.zeros(n, 2, dtype=torch.bfloat16, device=DEV)
        k_nope = torch.zeros(n, 1, dtype=torch.bfloat16, device=DEV)
        cache = torch.zeros(1, 2, device=DEV)
        pos = torch.zeros(n, dtype=torch.int32, device=DEV)
        outs = [torch.empty(t.shape, dtype=torch.uint8, device=DEV) for t in (q_rope, k_rope, q_nope, k_nope)]
        run_kernel("rope_quantize_fp8", *outs, q_rope, k_rope, q_nope, k_nope, cache, pos, True, 1.0, 1.0, dtype)
        want = xin.cpu().to(dtype).view(torch.uint8)
        got = outs[2].view(-1).cpu()
        both_nan = got.view(dtype).float().isnan() & want.view(dtype).float().isnan()
        bad = (got != want) & ~both_nan
        assert not bool(bad.any()), f"{dtype}: {xin.cpu()[bad][:5].tolist()} -> {got[bad][:5].tolist()} want {want[bad][:5].tolist()}"


QUANT_CONFIGS = shapes(
    [("mla", 128, 1, 64, 128), ("mla", 64, 1, 128, 256), ("gqa", 32, 8, 64, 64), ("gqa", 32, 8, 128, 0),
     ("mha", 16, 16, 128, 128), ("mha", 8, 8, 32, 96)],
    [("mla", 2, 1, 16, 32), ("gqa", 3, 1, 32, 0), ("mha", 2, 2, 16, 48)],
)


def quant_inputs(kind, nnz, hq, hk, rd, nd, dtype):
    q_rope = torch.randn(nnz, hq, rd, dtype=dtype, device=DEV)
    q_nope = torch.randn(nnz, hq, nd, dtype=dtype, device=DEV)
    kshape = (nnz,) if kind == "mla" else (nnz, hk)
    k_rope = torch.randn(*kshape, rd, dtype=dtype, device=DEV)
    k_nope = torch.randn(*kshape, nd, dtype=dtype, device=DEV)
    return q_rope, k_rope, q_nope, k_nope


@pytest.mark.parametrize("kind,hq,hk,rd,nd", QUANT_CONFIGS)
@pytest.mark.parametrize("nnz", shapes([1, 19, 128, 199], [3]))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fp8", FP8)
def test_rope_quantize_fp8(kind, hq, hk, rd, nd, nnz, dtype, fp8):
    is_neox = nnz % 2 == 0
    q_rope, k_rope, q_nope, k_nope = quant_inputs(kind, nnz, hq, hk, rd, nd, dtype)
    cache = make_cache(4096, rd, 10000)
    pos = torch.randint(0, 4096, (nnz,), dtype=torch.int32, device=DEV)
    outs = [poison(torch.empty(t.shape, dtype=torch.uint8, device=DEV)) for t in (q_rope, k_rope, q_nope, k_nope)]
    sq, sk = 0.75, 1.5
    run_kernel("rope_quantize_fp8", *outs, q_rope, k_rope, q_nope, k_nope, cache, pos, is_neox, sq, sk, fp8)
    k3 = k_rope if k_rope.dim() == 3 else k_rope[:, None]
    wq = vllm_forward_native(pos, q_rope.reshape(nnz, -1), k3.reshape(nnz, -1), rd, cache, is_neox)
    check_fp8(outs[0], wq[0].reshape(q_rope.shape), fp8, sq)
    check_fp8(outs[1], wq[1].reshape(k_rope.shape), fp8, sk)
    check_fp8(outs[2], q_nope, fp8, sq)
    check_fp8(outs[3], k_nope, fp8, sk)
