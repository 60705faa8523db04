"""CUDA-key (Triton) and CPU-key (reference) implementations of the decode ops, the split-KV
planner shared with the facade, and the shipped kernel variants."""
import math
from typing import Optional, Tuple

import torch
import triton

from ..._launch import launch
from ..._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ...configs import arch_family, interpreting, sm_count
from ...configs.attention import decode as cfg
from ...fake.attention import decode as contract
from ...kernels.attention.decode import WORK_COLS, decode_kernel, merge_kernel
from ...reference import attention as ref

KV_FMT = {torch.float16: 0, torch.bfloat16: 0}
for _i, _n in enumerate(("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"), start=1):
    if hasattr(torch, _n):
        KV_FMT[getattr(torch, _n)] = _i

# load_kv returns fp8 values scaled by 2^-shift (exact); the launcher multiplies it back into the
# softmax scale (K) and the output scale (V).
FP8_PACK_SHIFT = {1: 8, 2: 0, 3: 7, 4: 0}
# KV_FMT 5: fp8 loaded with its own Triton type and converted by Triton (hardware conversion).
# Used on sm90 for the OCP formats, where the in-register bit decode made fp8 decode no faster
# than bf16 (H100 run s2r1: 770 us vs 738 us at batch 64 x 8192). The AMD variants keep the bit
# decode (the one the compile gate checks for all four formats).
KV_FMT_NATIVE = 5
_NATIVE_FP8 = {"sm90": tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n))}


def kv_format(dtype: torch.dtype, family: str) -> int:
    """The kernel's KV_FMT for a cache dtype on an arch family."""
    fmt = KV_FMT[dtype]
    if fmt and dtype in _NATIVE_FP8.get(family, ()) and not interpreting():
        return KV_FMT_NATIVE
    return fmt

_ZERO_PAGE = {}


def _zero_page(device: torch.device) -> torch.Tensor:
    t = _ZERO_PAGE.get(device)
    if t is None:
        t = _ZERO_PAGE[device] = torch.zeros(1, dtype=torch.int32, device=device)
    return t


def _kv_ptr(t: torch.Tensor, fmt: int) -> torch.Tensor:
    """fp8 caches decoded in the kernel are read as raw bytes (FNUZ has no arithmetic on sm90)."""
    return t.view(torch.uint8) if fmt not in (0, KV_FMT_NATIVE) else t


def _scalars(q, sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta, k_scale):
    h_qo = q.shape[-2]
    alibi_n = 2 ** int(math.floor(math.log2(h_qo))) if pos_encoding_mode == 2 else 0
    return dict(
        qk_scale=float(sm_scale) * float(k_scale),
        soft_cap=float(logits_soft_cap) if logits_soft_cap and logits_soft_cap > 0 else 0.0,
        window_left=int(window_left),
        alibi_n=alibi_n,
        rope_rcp_scale=1.0 / float(rope_scale),
        rope_log2_theta=math.log2(float(rope_theta)),
    )


def _launch(out, lse, q3, k, v, idx, work, req_info, tmp_o, tmp_lse, page_size, s_kp, s_vp, n_items, n_requests,
            single_len, single_chunk, single_n, scal, v_scale, counters=None):
    """q3 [B, H_qo, D]; k, v addressed as (page, token-in-page, head, dim) with strides s_kp/s_vp
    for pages and k.stride(-3)/k.stride(-2) for token and head. counters (int32, zero): split
    requests are merged inside the decode kernel (FUSED_MERGE) instead of by merge_kernel."""
    h_qo, d = q3.shape[1], q3.shape[2]
    h_kv = k.shape[-2]
    group = h_qo // h_kv
    family = arch_family(q3.device)
    fmt = kv_format(k.dtype, family)
    rope = bool(scal["rope"])
    s_kt, s_kh, s_vt, s_vh = k.stride(-3), k.stride(-2), v.stride(-3), v.stride(-2)
    unpack = float(2 ** FP8_PACK_SHIFT.get(fmt, 0))
    fp8 = fmt != 0
    has_lse = lse is not None
    lse_t = lse if has_lse else tmp_lse
    s_lb = lse.stride(0) if has_lse and lse.dim() == 2 else 0
    prefetch = cfg.prefetch(fmt == KV_FMT_NATIVE, rope)
    grid = (n_items, h_kv, triton.cdiv(group, cfg.BLOCK_H))
    fused = counters is not None
    launch(decode_kernel, grid,
        q3, _kv_ptr(k, fmt), _kv_ptr(v, fmt), idx, work, out, lse_t, tmp_o, tmp_lse,
        counters if fused else _zero_page(q3.device),
        q3.stride(0), q3.stride(1), s_kp, s_kt, s_kh, s_vp, s_vt, s_vh,
        out.stride(0), out.stride(1), s_lb,
        page_size, single_len, single_chunk, single_n, group, h_qo, int(has_lse),
        scal["qk_scale"] * unpack, scal["soft_cap"], scal["window_left"], scal["alibi_n"], scal["rope_rcp_scale"],
        scal["rope_log2_theta"], float(v_scale) * unpack,
        BLOCK_H=cfg.BLOCK_H, HEAD_DIM=d, BLOCK_N=cfg.block_n(family, d, fp8, rope), KV_FMT=fmt,
        ROPE=rope, DOT_F32=interpreting(), PREFETCH=prefetch,
        PAGES_AHEAD=cfg.pages_ahead(family, prefetch), V_ASM=cfg.v_asm(fmt == KV_FMT_NATIVE and not rope, prefetch),
        FUSED_MERGE=fused, **cfg.decode_config(family, d, fp8, rope).options(family),
    )
    if fused:
        return
    launch(merge_kernel, (n_requests, h_qo),
        out, lse_t, tmp_o, tmp_lse, req_info, out.stride(0), out.stride(1), s_lb, h_qo, single_n, int(has_lse),
        HEAD_DIM=d, BLOCK_C=cfg.MERGE_BLOCK_C, **cfg.merge_config(family, d).options(family),
    )


# ---- planning (host) ----------------------------------------------------------------------------

def programs_per_sm(device: torch.device, kv_dtype: torch.dtype) -> int:
    """Decode programs an SM runs at once for this cache dtype (cfg.resident_programs)."""
    return cfg.resident_programs(arch_family(device), KV_FMT.get(kv_dtype, 0) != 0)


def target_items(num_kv_heads: int, num_sms: int, per_sm: int = 0) -> int:
    """Work items that fill one wave: per_sm (default cfg.PROGRAMS_PER_SM) programs on each SM."""
    return max(1, (per_sm or cfg.PROGRAMS_PER_SM) * num_sms // max(1, num_kv_heads))


def chunk_tokens(vis_lens: torch.Tensor, num_kv_heads: int, num_sms: int, max_items: int,
                 disable_split: bool = False, fixed_chunk: Optional[int] = None, per_sm: int = 0) -> int:
    """Tokens per work item. No split when the batch alone gives >= half a wave of programs;
    else about total / target tokens (>= MIN_CHUNK_TOKENS, aligned), grown until the items fit in
    one wave (<= target) and in max_items."""
    b = vis_lens.numel()
    max_len = int(vis_lens.max()) if b else 0
    big = max(max_len, 1)
    if disable_split or b == 0 or max_len == 0:
        return big
    if fixed_chunk:
        c = max(1, int(fixed_chunk))
    else:
        tgt = target_items(num_kv_heads, num_sms, per_sm)
        if 2 * b >= tgt:  # the batch alone gives >= half a wave of programs
            return big
        total = int(vis_lens.sum())
        c = max(cfg.MIN_CHUNK_TOKENS, -(-total // tgt))
        # even chunks for the longest request (no short tail chunk), aligned to the tile
        c = -(-max_len // -(-max_len // c))
        c = -(-c // cfg.CHUNK_ALIGN) * cfg.CHUNK_ALIGN
        max_items = min(max_items, max(tgt, b))
        # grow to whole-wave fits: equal-length requests drop one chunk per step
        while c < max_len and int(((vis_lens + c - 1) // c).clamp_min(1).sum()) > max_items:
            c = -(-max_len // max(1, -(-max_len // c) - 1))
            c = -(-c // cfg.CHUNK_ALIGN) * cfg.CHUNK_ALIGN
    items = int(((vis_lens + c - 1) // c).clamp_min(1).sum())
    while items > max_items and c < max_len:  # bounded by the work table / workspace
        c *= 2
        items = int(((vis_lens + c - 1) // c).clamp_min(1).sum())
    return big if items > max_items else min(c, big)


def build_schedule(kv_lens: torch.Tensor, page_base: torch.Tensor, window_left: int, chunk: int,
                   capacity: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Host work table [capacity, 8] and request table [B, 2] (int32) for the decode kernel.

    Each request's visible range [max(0, kv_len - 1 - window_left), kv_len) is cut into chunks
    of `chunk` tokens (an empty request gets one empty item: output 0, lse -inf). Rows past the
    last item have request -1."""
    b = kv_lens.numel()
    kv_lens = kv_lens.to(torch.int64)
    lo = (kv_lens - 1 - window_left).clamp_min(0) if window_left >= 0 else torch.zeros_like(kv_lens)
    n = ((kv_lens - lo + chunk - 1) // chunk).clamp_min(1)
    total = int(n.sum()) if b else 0
    if total > capacity:
        raise ValueError(f"decode plan needs {total} work items, more than the capacity {capacity}")
    first = torch.cumsum(n, 0) - n
    req = torch.repeat_interleave(torch.arange(b, dtype=torch.int64), n)
    j = torch.arange(total, dtype=torch.int64) - first[req]
    start = lo[req] + j * chunk
    end = torch.minimum(start + chunk, kv_lens[req])
    work = torch.zeros(capacity, WORK_COLS, dtype=torch.int32)
    work[:, 0] = -1
    if total:
        work[:total] = torch.stack([req, start, end, page_base.to(torch.int64)[req], kv_lens[req], first[req], n[req],
                                    torch.zeros_like(req)], 1).to(torch.int32)
    reqs = torch.stack([first, n], 1).to(torch.int32) if b else torch.zeros(0, 2, dtype=torch.int32)
    return work, reqs, total


# ---- CUDA key (Triton) --------------------------------------------------------------------------

def single_decode_cuda(out, lse, q, k, v, sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale,
                       rope_theta, k_scale, v_scale):
    contract.check_single_decode(out, lse, q, k, v, sm_scale, logits_soft_cap, window_left, pos_encoding_mode,
                                 rope_scale, rope_theta, k_scale, v_scale)
    length, h_kv = k.shape[0], k.shape[1]
    h_qo, d = q.shape
    vis = min(length, window_left + 1) if window_left >= 0 else length
    # Split the (visible) KV so one request still fills the GPU; a window skips whole chunks.
    chunk = chunk_tokens(torch.tensor([vis]), h_kv, sm_count(q.device), max_items=1 << 16,
                         per_sm=programs_per_sm(q.device, k.dtype))
    chunk = max(1, chunk)
    n = max(1, -(-vis // chunk))
    tmp_o = torch.empty(n if n > 1 else 1, h_qo, d, dtype=torch.float32, device=q.device)
    tmp_lse = torch.empty(tmp_o.shape[:2], dtype=torch.float32, device=q.device)
    scal = _scalars(q, sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta, k_scale)
    scal["rope"] = pos_encoding_mode == 1
    _launch(out.unsqueeze(0), lse.unsqueeze(0) if lse is not None else None, q.unsqueeze(0), k, v,
            _zero_page(q.device), _zero_page(q.device), _zero_page(q.device), tmp_o, tmp_lse, 1 << 30, 0, 0, n, 1,
            length, chunk, n, scal, v_scale)


def batch_decode_cuda(out, lse, q, k_cache, v_cache, kv_indices, work_info, request_info, tmp_o, tmp_lse,
                      sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta,
                      k_scale, v_scale, merge_counters=None):
    contract.check_batch_decode(out, lse, q, k_cache, v_cache, kv_indices, work_info, request_info, tmp_o, tmp_lse,
                                sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta,
                                k_scale, v_scale, merge_counters)
    if q.shape[0] == 0 or work_info.shape[0] == 0:
        return
    scal = _scalars(q, sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta, k_scale)
    scal["rope"] = pos_encoding_mode == 1
    _launch(out, lse, q, k_cache, v_cache, kv_indices, work_info, request_info, tmp_o, tmp_lse,
            k_cache.shape[1], k_cache.stride(0), v_cache.stride(0), work_info.shape[0], q.shape[0],
            0, 1, 0, scal, v_scale, merge_counters)


# ---- CPU key (reference) ------------------------------------------------------------------------

def _ref_kwargs(sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta, k_scale, v_scale):
    return dict(sm_scale=sm_scale, logits_soft_cap=logits_soft_cap if logits_soft_cap > 0 else 0.0,
                window_left=window_left, alibi=pos_encoding_mode == 2, rope=pos_encoding_mode == 1,
                rope_scale=rope_scale, rope_theta=rope_theta, k_scale=k_scale, v_scale=v_scale)


def single_decode_cpu(out, lse, q, k, v, sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale,
                      rope_theta, k_scale, v_scale):
    contract.check_single_decode(out, lse, q, k, v, sm_scale, logits_soft_cap, window_left, pos_encoding_mode,
                                 rope_scale, rope_theta, k_scale, v_scale)
    o, s = ref.single_attention(q.unsqueeze(0), k, v, **_ref_kwargs(
        sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta, k_scale, v_scale))
    out.copy_(o[0])
    if lse is not None:
        lse.copy_(s[0])


def batch_decode_cpu(out, lse, q, k_cache, v_cache, kv_indices, work_info, request_info, tmp_o, tmp_lse,
                     sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta,
                     k_scale, v_scale, merge_counters=None):
    contract.check_batch_decode(out, lse, q, k_cache, v_cache, kv_indices, work_info, request_info, tmp_o, tmp_lse,
                                sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta,
                                k_scale, v_scale, merge_counters)
    kw = _ref_kwargs(sm_scale, logits_soft_cap, window_left, pos_encoding_mode, rope_scale, rope_theta, k_scale,
                     v_scale)
    page = k_cache.shape[1]
    seen = {}
    for row in work_info.tolist():
        if row[0] >= 0:
            seen[row[0]] = (row[3], row[4])
    for b in range(q.shape[0]):
        base, kv_len = seen.get(b, (0, 0))
        pages = kv_indices[base:base + -(-kv_len // page)].long()
        k = k_cache[pages].reshape(-1, *k_cache.shape[2:])[:kv_len]
        v = v_cache[pages].reshape(-1, *v_cache.shape[2:])[:kv_len]
        o, s = ref.single_attention(q[b:b + 1], k, v, **kw)
        out[b].copy_(o[0])
        if lse is not None:
            lse[b].copy_(s[0])


register_op("single_decode_with_kv_cache", cuda=single_decode_cuda, cpu=single_decode_cpu,
            fake=contract.single_decode_with_kv_cache_fake)
register_op("batch_decode_with_paged_kv_cache", cuda=batch_decode_cuda, cpu=batch_decode_cpu,
            fake=contract.batch_decode_with_paged_kv_cache_fake)


# ---- shipped variants (AMD gate / AOT list) -----------------------------------------------------

def _register_variants():
    kv_names = [n for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz") if hasattr(torch, n)]
    for qdt in (torch.float16, torch.bfloat16):
        qt = TRITON_DTYPE[qdt]
        for kvdt in [qdt] + [getattr(torch, n) for n in kv_names]:
            fmt = KV_FMT[kvdt]
            for d, rope in ((d, r) for d in cfg.HEAD_DIMS for r in (False, True)):
                kt = qt if fmt == 0 else "u8"
                sig = {"q_ptr": f"*{qt}", "k_ptr": f"*{kt}", "v_ptr": f"*{kt}", "idx_ptr": "*i32",
                       "work_ptr": "*i32", "out_ptr": f"*{qt}", "lse_ptr": "*fp32", "tmp_o_ptr": "*fp32",
                       "tmp_lse_ptr": "*fp32", "cnt_ptr": "*i32"}
                for name in ("s_qb", "s_qh", "s_kp", "s_kt", "s_kh", "s_vp", "s_vt", "s_vh", "s_ob", "s_oh",
                             "s_lb", "page_size", "single_len", "single_chunk", "single_n", "group",
                             "num_qo_heads", "has_lse"):
                    sig[name] = "i32"
                for name in ("qk_scale", "soft_cap"):
                    sig[name] = "fp32"
                sig["window_left"] = "i32"
                sig["alibi_n"] = "i32"
                for name in ("rope_rcp_scale", "rope_log2_theta", "v_scale"):
                    sig[name] = "fp32"
                ce = dict(BLOCK_H=cfg.BLOCK_H, HEAD_DIM=d, KV_FMT=fmt, ROPE=rope, DOT_F32=False, PREFETCH=False,
                          PAGES_AHEAD=cfg.pages_ahead("gfx942", False), V_ASM=False, FUSED_MERGE=False)
                for k in ce:
                    sig[k] = "constexpr"
                sig["BLOCK_N"] = "constexpr"
                kvn = str(kvdt).replace("torch.", "")
                p8 = fmt != 0
                # gfx942 and gfx950 share the AMD table (block_n is the same for both)
                assert cfg.block_n("gfx942", d, p8, rope) == cfg.block_n("gfx950", d, p8, rope)
                # FUSED_MERGE (sm90 default; elsewhere FLASHINFER_DECODE_FUSED_MERGE=1) is compiled for the
                # 16-bit caches without RoPE too
                for fused in (False, True) if fmt == 0 and not rope else (False,):
                    register_variant(KernelVariant(
                        kernel="attention_decode.decode_kernel",
                        variant=f"{qt}_{kvn}_d{d}" + ("_rope" if rope else "") + ("_fused" if fused else ""),
                        fn=decode_kernel, signature=sig,
                        constexprs=dict(ce, BLOCK_N=cfg.block_n("gfx942", d, p8, rope), FUSED_MERGE=fused),
                        options=lambda f, d=d, p8=p8, r=rope: cfg.decode_config(f, d, p8, r).options(f),
                        min_occupancy=cfg.min_waves(d, p8, rope),
                    ))
        for d in cfg.HEAD_DIMS:
            sig = {"out_ptr": f"*{qt}", "lse_ptr": "*fp32", "tmp_o_ptr": "*fp32", "tmp_lse_ptr": "*fp32",
                   "req_ptr": "*i32", "s_ob": "i32", "s_oh": "i32", "s_lb": "i32", "num_qo_heads": "i32",
                   "single_n": "i32", "has_lse": "i32", "HEAD_DIM": "constexpr", "BLOCK_C": "constexpr"}
            register_variant(KernelVariant(
                kernel="attention_decode.merge_kernel", variant=f"{qt}_d{d}", fn=merge_kernel, signature=sig,
                constexprs=dict(HEAD_DIM=d, BLOCK_C=cfg.MERGE_BLOCK_C),
                options=lambda fam, d=d: cfg.merge_config(fam, d).options(fam), min_occupancy=2,
            ))


_register_variants()
