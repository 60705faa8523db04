"""CUDA-key (Triton) and CPU-key (reference) implementations of the RoPE ops."""
import functools
import math

import torch
import triton

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ..configs import arch_family
from ..configs.rope import HALF_BUCKETS, REST_BLOCK, heads_per_program, rope_config, rope_evict, rope_tile
from ..fake import page as page_contract
from ..fake import rope as contract
from ..kernels.rope import rope_kernel
from ..reference import page as page_ref
from ..reference import rope as ref
from .page import _psh, launch_append

FP8_FORMAT = {}
for _i, _n in enumerate(("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")):
    if hasattr(torch, _n):
        FP8_FORMAT[getattr(torch, _n)] = _i

MODE_PLAIN, MODE_LLAMA31, MODE_CACHE = 0, 1, 2


def _th(t):
    """(token stride, head stride) of a [nnz, H, D] tensor, or of [nnz, D] as one head."""
    return t.stride(0), (t.stride(1) if t.dim() == 3 else 0)


@functools.lru_cache(maxsize=256)
def _plan(family: str, half: int):
    """(BLOCK_T, BLOCK_HALF, launch options), cached: host time per call matters at decode sizes."""
    block_t, block_half = rope_tile(half)
    return block_t, block_half, dict(rope_config(family, block_t, block_half).options(family), EVICT=rope_evict(family))


def launch_rope(q, k, q_out, k_out, qr, kr, qr_out, kr_out, rest_dim, pos, cache, half, mode, interleave,
                out_fmt=-1, rope_scale=1.0, rope_theta=1e4, llama31_params=(1.0, 4.0, 8192.0), q_scale=1.0,
                k_scale=1.0, paged=None):
    """paged: (batch_indices, positions, kv_indices, kv_indptr, num_pages, page_size,
    (page, slot, head) strides of k_out, the same of kr_out) to scatter k into a paged cache."""
    nnz = q.shape[0]
    hq = q.shape[1]
    hk = k.shape[1] if k.dim() == 3 else 1
    if nnz == 0:
        return
    block_t, block_half, options = _plan(arch_family(q.device), half)
    if paged is None:
        batch_idx = kvpos = indices = indptr = pos
        num_pages = batch_size = page_size = 1
        s_ko = (k_out.stride(0), 0, _th(k_out)[1])
        s_kro = (kr_out.stride(0), 0, _th(kr_out)[1])
    else:
        batch_idx, kvpos, indices, indptr, num_pages, page_size, s_ko, s_kro = paged
        batch_size = indptr.shape[0] - 1
    lff, hff, ocl = llama31_params
    hpp = heads_per_program(nnz, hq + hk, block_t)
    grid = (triton.cdiv(nnz, block_t), triton.cdiv(hq + hk, hpp))
    launch(rope_kernel, grid,
        q, k, q_out, k_out, qr, kr, qr_out, kr_out, pos, cache,
        batch_idx, kvpos, indices, indptr,
        nnz, hq, hk, hpp, half, rest_dim, num_pages, batch_size, page_size,
        *_th(q), *_th(k), *_th(q_out), *s_ko, *_th(qr), *_th(kr), *_th(qr_out), *s_kro,
        cache.stride(0),
        1.0 / rope_scale, math.log2(rope_theta), float(lff), float(hff), float(ocl), float(q_scale), float(k_scale),
        MODE=mode, INTERLEAVE=interleave, OUT_FMT=out_fmt, PAGED_K=paged is not None,
        BLOCK_T=block_t, BLOCK_HALF=block_half, BLOCK_REST=REST_BLOCK,
        **options,
    )


def _rope_pos(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff, ocl,
              inplace):
    rest = 0 if inplace else q.shape[2] - rotary_dim
    qr, kr = (q, k) if rest == 0 else (q[..., rotary_dim:], k[..., rotary_dim:])
    qro, kro = (q_out, k_out) if rest == 0 else (q_out[..., rotary_dim:], k_out[..., rotary_dim:])
    launch_rope(q, k, q_out, k_out, qr, kr, qro, kro, rest, pos_ids, q, rotary_dim // 2,
                MODE_LLAMA31 if llama31 else MODE_PLAIN, interleave, rope_scale=rope_scale, rope_theta=rope_theta,
                llama31_params=(lff, hff, ocl))


def _rope_cache(q_out, k_out, q, k, cache, positions, is_neox, inplace):
    rd = cache.shape[1]
    rest = 0 if inplace else q.shape[2] - rd
    qr, kr = (q, k) if rest == 0 else (q[..., rd:], k[..., rd:])
    qro, kro = (q_out, k_out) if rest == 0 else (q_out[..., rd:], k_out[..., rd:])
    launch_rope(q, k, q_out, k_out, qr, kr, qro, kro, rest, positions, cache, rd // 2, MODE_CACHE, not is_neox)


# ---- CUDA key ----------------------------------------------------------------------------------

def apply_rope_pos_ids_cuda(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31,
                            lff, hff, ocl):
    contract.check_apply_rope_pos_ids(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta,
                                      llama31, lff, hff, ocl)
    _rope_pos(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff, ocl,
              False)


def apply_rope_pos_ids_inplace_cuda(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff,
                                    ocl):
    contract.check_apply_rope_pos_ids_inplace(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31,
                                              lff, hff, ocl)
    _rope_pos(q, k, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff, ocl, True)


def apply_rope_with_cos_sin_cache_cuda(q_out, k_out, q, k, cos_sin_cache, positions, is_neox):
    contract.check_apply_rope_with_cos_sin_cache(q_out, k_out, q, k, cos_sin_cache, positions, is_neox)
    _rope_cache(q_out, k_out, q, k, cos_sin_cache, positions, is_neox, False)


def apply_rope_with_cos_sin_cache_inplace_cuda(q, k, cos_sin_cache, positions, is_neox):
    contract.check_apply_rope_with_cos_sin_cache_inplace(q, k, cos_sin_cache, positions, is_neox)
    _rope_cache(q, k, q, k, cos_sin_cache, positions, is_neox, True)


def rope_quantize_fp8_cuda(q_rope_out, k_rope_out, q_nope_out, k_nope_out, q_rope, k_rope, q_nope, k_nope,
                           cos_sin_cache, pos_ids, is_neox, quant_scale_q, quant_scale_kv, quantize_dtype):
    contract.check_rope_quantize_fp8(q_rope_out, k_rope_out, q_nope_out, k_nope_out, q_rope, k_rope, q_nope, k_nope,
                                     cos_sin_cache, pos_ids, is_neox, quant_scale_q, quant_scale_kv, quantize_dtype)
    launch_rope(q_rope, k_rope, q_rope_out, k_rope_out, q_nope, k_nope, q_nope_out, k_nope_out, q_nope.shape[-1],
                pos_ids, cos_sin_cache, q_rope.shape[-1] // 2, MODE_CACHE, not is_neox,
                out_fmt=FP8_FORMAT[quantize_dtype], q_scale=quant_scale_q, k_scale=quant_scale_kv)


def _page_size(cache, layout):
    return cache.shape[1] if cache.dim() == 3 or layout == 0 else cache.shape[2]


def rope_quantize_fp8_append_paged_kv_cache_cuda(q_rope_out, q_nope_out, k_cache, v_cache, q_rope, k_rope, q_nope,
                                                 k_nope, v, cos_sin_cache, pos_ids, kv_indices, kv_indptr,
                                                 batch_indices, positions, is_neox, quant_scale_q, quant_scale_kv,
                                                 kv_layout, quantize_dtype):
    args = (q_rope_out, q_nope_out, k_cache, v_cache, q_rope, k_rope, q_nope, k_nope, v, cos_sin_cache, pos_ids,
            kv_indices, kv_indptr, batch_indices, positions, is_neox, quant_scale_q, quant_scale_kv, kv_layout,
            quantize_dtype)
    contract.check_rope_quantize_fp8_append_paged_kv_cache(*args)
    mla = k_rope.dim() == 2
    page_size = _page_size(k_cache, kv_layout)
    if page_contract.contents_checkable(batch_indices, positions, kv_indices, kv_indptr):
        page_contract.check_append_indices(batch_indices, positions, kv_indices, kv_indptr, k_cache.shape[0], page_size)
    rd = q_rope.shape[-1]
    fmt = FP8_FORMAT[quantize_dtype]
    kb, vb = k_cache, v_cache
    if mla:  # rope part -> kpe_cache (v_cache), nope part -> ckv_cache (k_cache)
        k_dst, kr_dst = vb, kb
    else:
        k_dst, kr_dst = kb, kb[..., rd:]
    paged = (batch_indices, positions, kv_indices, kv_indptr, k_cache.shape[0], page_size,
             _psh(k_dst, kv_layout), _psh(kr_dst, kv_layout))
    launch_rope(q_rope, k_rope, q_rope_out, k_dst, q_nope, k_nope, q_nope_out, kr_dst, q_nope.shape[-1], pos_ids,
                cos_sin_cache, rd // 2, MODE_CACHE, not is_neox, out_fmt=fmt, q_scale=quant_scale_q,
                k_scale=quant_scale_kv, paged=paged)
    if not mla:
        launch_append(None, v, None, vb, batch_indices, positions, kv_indices, kv_indptr, v_cache.shape[0],
                      page_size, None, _psh(v_cache, kv_layout), out_fmt=fmt, scale=quant_scale_kv)


# ---- CPU key (reference) -----------------------------------------------------------------------

def apply_rope_pos_ids_cpu(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31,
                           lff, hff, ocl):
    contract.check_apply_rope_pos_ids(q_out, k_out, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta,
                                      llama31, lff, hff, ocl)
    qo, ko = ref.apply_rope_pos_ids(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff,
                                    ocl)
    q_out.copy_(qo)
    k_out.copy_(ko)


def apply_rope_pos_ids_inplace_cpu(q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff,
                                   ocl):
    apply_rope_pos_ids_cpu(q, k, q, k, pos_ids, rotary_dim, interleave, rope_scale, rope_theta, llama31, lff, hff, ocl)


def apply_rope_with_cos_sin_cache_cpu(q_out, k_out, q, k, cos_sin_cache, positions, is_neox):
    contract.check_apply_rope_with_cos_sin_cache(q_out, k_out, q, k, cos_sin_cache, positions, is_neox)
    qo, ko = ref.apply_rope_with_cos_sin_cache(q, k, cos_sin_cache, positions, is_neox)
    q_out.copy_(qo)
    k_out.copy_(ko)


def apply_rope_with_cos_sin_cache_inplace_cpu(q, k, cos_sin_cache, positions, is_neox):
    apply_rope_with_cos_sin_cache_cpu(q, k, q, k, cos_sin_cache, positions, is_neox)


def rope_quantize_fp8_cpu(q_rope_out, k_rope_out, q_nope_out, k_nope_out, q_rope, k_rope, q_nope, k_nope,
                          cos_sin_cache, pos_ids, is_neox, quant_scale_q, quant_scale_kv, quantize_dtype):
    contract.check_rope_quantize_fp8(q_rope_out, k_rope_out, q_nope_out, k_nope_out, q_rope, k_rope, q_nope, k_nope,
                                     cos_sin_cache, pos_ids, is_neox, quant_scale_q, quant_scale_kv, quantize_dtype)
    outs = ref.rope_quantize_fp8(q_rope, k_rope, q_nope, k_nope, cos_sin_cache, pos_ids, is_neox, quant_scale_q,
                                 quant_scale_kv, quantize_dtype)
    for dst, src in zip((q_rope_out, k_rope_out, q_nope_out, k_nope_out), outs):
        dst.copy_(src.view(torch.uint8))


def rope_quantize_fp8_append_paged_kv_cache_cpu(q_rope_out, q_nope_out, k_cache, v_cache, q_rope, k_rope, q_nope,
                                                k_nope, v, cos_sin_cache, pos_ids, kv_indices, kv_indptr,
                                                batch_indices, positions, is_neox, quant_scale_q, quant_scale_kv,
                                                kv_layout, quantize_dtype):
    args = (q_rope_out, q_nope_out, k_cache, v_cache, q_rope, k_rope, q_nope, k_nope, v, cos_sin_cache, pos_ids,
            kv_indices, kv_indptr, batch_indices, positions, is_neox, quant_scale_q, quant_scale_kv, kv_layout,
            quantize_dtype)
    contract.check_rope_quantize_fp8_append_paged_kv_cache(*args)
    page_size = _page_size(k_cache, kv_layout)
    page_contract.check_append_indices(batch_indices, positions, kv_indices, kv_indptr, k_cache.shape[0], page_size)
    qr, kr, qn, kn = (t.view(torch.uint8) for t in ref.rope_quantize_fp8(
        q_rope, k_rope, q_nope, k_nope, cos_sin_cache, pos_ids, is_neox, quant_scale_q, quant_scale_kv,
        quantize_dtype))
    q_rope_out.copy_(qr)
    q_nope_out.copy_(qn)
    page, slot = page_ref.page_slots(batch_indices, positions, kv_indices, kv_indptr, page_size)
    if k_rope.dim() == 2:
        page_ref.append_paged(k_cache, kn, page, slot, 0)
        page_ref.append_paged(v_cache, kr, page, slot, 0)
        return
    page_ref.append_paged(k_cache, torch.cat([kr, kn], -1), page, slot, kv_layout)
    page_ref.append_paged(v_cache, ref.quantize(v, quant_scale_kv, quantize_dtype).view(torch.uint8), page, slot,
                          kv_layout)


for _name in ("apply_rope_pos_ids", "apply_rope_pos_ids_inplace", "apply_rope_with_cos_sin_cache",
              "apply_rope_with_cos_sin_cache_inplace", "rope_quantize_fp8", "rope_quantize_fp8_append_paged_kv_cache"):
    register_op(_name, cuda=globals()[f"{_name}_cuda"], cpu=globals()[f"{_name}_cpu"],
                fake=getattr(contract, f"{_name}_fake"))


# ---- shipped variants (AMD gate / AOT list) ----------------------------------------------------

def _signature(dt, out_dt, pos_dt):
    ptrs = dict(q_ptr=dt, k_ptr=dt, q_out_ptr=out_dt, k_out_ptr=out_dt, qr_ptr=dt, kr_ptr=dt, qr_out_ptr=out_dt,
                kr_out_ptr=out_dt, pos_ptr=pos_dt, cache_ptr="fp32" if out_dt == "u8" else dt, batch_ptr="i32",
                kvpos_ptr="i32", indices_ptr="i32", indptr_ptr="i32")
    sig = {k: "*" + v for k, v in ptrs.items()}
    for name in ("nnz", "n_q_heads", "n_k_heads", "heads_per_prog", "half", "rest_dim", "num_pages", "batch_size",
                 "page_size", "s_qt", "s_qh", "s_kt", "s_kh", "s_qot", "s_qoh", "s_kop", "s_kos", "s_koh", "s_qrt",
                 "s_qrh", "s_krt", "s_krh", "s_qrot", "s_qroh", "s_krop", "s_kros", "s_kroh", "s_cache"):
        sig[name] = "i32"
    for name in ("rope_scale_inv", "log2_theta", "low_freq_factor", "high_freq_factor", "old_context_len", "q_scale",
                 "k_scale"):
        sig[name] = "fp32"
    for name in ("MODE", "INTERLEAVE", "OUT_FMT", "PAGED_K", "BLOCK_T", "BLOCK_HALF", "BLOCK_REST", "EVICT"):
        sig[name] = "constexpr"
    return sig


def _register_variants():
    combos = []
    for dtype in (torch.float16, torch.bfloat16):
        dt = TRITON_DTYPE[dtype]
        for mode in (MODE_PLAIN, MODE_LLAMA31, MODE_CACHE):
            for pos_dt in ("i32", "i64"):
                combos.append((dt, dt, pos_dt, mode, -1, False))
        for fmt in range(4):
            for paged in (False, True):
                combos.append((dt, "u8", "i32", MODE_CACHE, fmt, paged))
    for dt, out_dt, pos_dt, mode, fmt, paged in combos:
        for interleave in (False, True):
            for block_half in HALF_BUCKETS:
                block_t, _ = rope_tile(block_half)
                sig = _signature(dt, out_dt, pos_dt)
                if mode == MODE_CACHE:
                    sig["cache_ptr"] = "*fp32"
                const = dict(MODE=mode, INTERLEAVE=interleave, OUT_FMT=fmt, PAGED_K=paged, BLOCK_T=block_t,
                             BLOCK_HALF=block_half, BLOCK_REST=REST_BLOCK,
                             EVICT=rope_evict("gfx942"))  # the AMD variants' hint (gfx942 = gfx950)
                name = (f"{dt}_m{mode}_{pos_dt}_{'il' if interleave else 'neox'}_h{block_half}"
                        + (f"_fp8f{fmt}" if fmt >= 0 else "") + ("_paged" if paged else ""))
                register_variant(KernelVariant(
                    kernel="rope.rope_kernel", variant=name, fn=rope_kernel, signature=sig, constexprs=const,
                    options=lambda fam, bt=block_t, bh=block_half: rope_config(fam, bt, bh).options(fam),
                    min_occupancy=1,
                ))


_register_variants()
