"""CUDA-key (Triton) and CPU-key (reference) implementations of the paged KV-cache append ops."""
import functools

import torch
import triton

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ..configs import arch_family
from ..configs.rope import APPEND_BLOCK_T, APPEND_D_BUCKETS, append_block_d, append_config
from ..fake import page as contract
from ..kernels.page import append_paged_kernel
from ..reference import page as ref


def _th(t):
    return t.stride(0), (t.stride(1) if t.dim() == 3 else 0)


def _psh(cache, layout):
    """(page, slot, head) strides of a 4-D cache (layout 0 NHD, 1 HND) or a 3-D MLA cache."""
    if cache.dim() == 3:
        return cache.stride(0), cache.stride(1), 0
    if layout == 0:
        return cache.stride(0), cache.stride(1), cache.stride(2)
    return cache.stride(0), cache.stride(2), cache.stride(1)


@functools.lru_cache(maxsize=256)
def _plan(family: str, d: int):
    block_d = append_block_d(d)
    return block_d, append_config(family, block_d).options(family)


def launch_append(k, v, k_cache, v_cache, batch_indices, positions, kv_indices, kv_indptr, num_pages, page_size,
                  k_strides, v_strides, out_fmt=-1, scale=1.0):
    """Scatter k (optional) and v [nnz, H, D] (or [nnz, D]) into caches addressed by (page, slot,
    head) strides. out_fmt >= 0 encodes fp8 (scaled); else a plain copy of the same dtype."""
    nnz = v.shape[0]
    heads = v.shape[1] if v.dim() == 3 else 1
    if nnz == 0 or heads == 0:
        return
    d_v = v.shape[-1]
    d_k = k.shape[-1] if k is not None else 0
    block_d, options = _plan(arch_family(v.device), max(d_k, d_v))
    has_k = k is not None
    if not has_k:
        k, k_cache, k_strides = v, v_cache, v_strides
    grid = (triton.cdiv(nnz, APPEND_BLOCK_T), heads)
    launch(append_paged_kernel, grid,
        k, v, k_cache, v_cache, batch_indices, positions, kv_indices, kv_indptr,
        nnz, kv_indptr.shape[0] - 1, num_pages, page_size, d_k, d_v,
        *_th(k), *_th(v), *k_strides, *v_strides, float(scale),
        HAS_K=has_k, OUT_FMT=out_fmt, BLOCK_T=APPEND_BLOCK_T, BLOCK_D=block_d,
        **options,
    )


def _validate_contents(batch_indices, positions, kv_indices, kv_indptr, num_pages, page_size, always=False):
    if always or contract.contents_checkable(batch_indices, positions, kv_indices, kv_indptr):
        contract.check_append_indices(batch_indices, positions, kv_indices, kv_indptr, num_pages, page_size)


def page_size_of(k_cache, kv_layout):
    return k_cache.shape[1] if kv_layout == 0 else k_cache.shape[2]


def append_paged_kv_cache_cuda(k_cache, v_cache, append_key, append_value, batch_indices, positions, kv_indices,
                               kv_indptr, kv_last_page_len, kv_layout):
    contract.check_append_paged_kv_cache(k_cache, v_cache, append_key, append_value, batch_indices, positions,
                                         kv_indices, kv_indptr, kv_last_page_len, kv_layout)
    ps = page_size_of(k_cache, kv_layout)
    _validate_contents(batch_indices, positions, kv_indices, kv_indptr, k_cache.shape[0], ps)
    launch_append(append_key, append_value, k_cache, v_cache, batch_indices, positions, kv_indices, kv_indptr,
                  k_cache.shape[0], ps, _psh(k_cache, kv_layout), _psh(v_cache, kv_layout))


def append_paged_mla_kv_cache_cuda(ckv_cache, kpe_cache, append_ckv, append_kpe, batch_indices, positions,
                                   kv_indices, kv_indptr, kv_last_page_len):
    contract.check_append_paged_mla_kv_cache(ckv_cache, kpe_cache, append_ckv, append_kpe, batch_indices, positions,
                                             kv_indices, kv_indptr, kv_last_page_len)
    ps = ckv_cache.shape[1]
    _validate_contents(batch_indices, positions, kv_indices, kv_indptr, ckv_cache.shape[0], ps)
    launch_append(append_ckv, append_kpe, ckv_cache, kpe_cache, batch_indices, positions, kv_indices, kv_indptr,
                  ckv_cache.shape[0], ps, _psh(ckv_cache, 0), _psh(kpe_cache, 0))


def append_paged_kv_cache_cpu(k_cache, v_cache, append_key, append_value, batch_indices, positions, kv_indices,
                              kv_indptr, kv_last_page_len, kv_layout):
    contract.check_append_paged_kv_cache(k_cache, v_cache, append_key, append_value, batch_indices, positions,
                                         kv_indices, kv_indptr, kv_last_page_len, kv_layout)
    ps = page_size_of(k_cache, kv_layout)
    _validate_contents(batch_indices, positions, kv_indices, kv_indptr, k_cache.shape[0], ps, always=True)
    page, slot = ref.page_slots(batch_indices, positions, kv_indices, kv_indptr, ps)
    ref.append_paged(k_cache, append_key, page, slot, kv_layout)
    ref.append_paged(v_cache, append_value, page, slot, kv_layout)


def append_paged_mla_kv_cache_cpu(ckv_cache, kpe_cache, append_ckv, append_kpe, batch_indices, positions, kv_indices,
                                  kv_indptr, kv_last_page_len):
    contract.check_append_paged_mla_kv_cache(ckv_cache, kpe_cache, append_ckv, append_kpe, batch_indices, positions,
                                             kv_indices, kv_indptr, kv_last_page_len)
    ps = ckv_cache.shape[1]
    _validate_contents(batch_indices, positions, kv_indices, kv_indptr, ckv_cache.shape[0], ps, always=True)
    page, slot = ref.page_slots(batch_indices, positions, kv_indices, kv_indptr, ps)
    ref.append_paged(ckv_cache, append_ckv, page, slot, 0)
    ref.append_paged(kpe_cache, append_kpe, page, slot, 0)


register_op("append_paged_kv_cache", cuda=append_paged_kv_cache_cuda, cpu=append_paged_kv_cache_cpu,
            fake=contract.append_paged_kv_cache_fake)
register_op("append_paged_mla_kv_cache", cuda=append_paged_mla_kv_cache_cuda, cpu=append_paged_mla_kv_cache_cpu,
            fake=contract.append_paged_mla_kv_cache_fake)


def _register_variants():
    combos = [(TRITON_DTYPE[d], TRITON_DTYPE[d], -1, hk) for d in (torch.float16, torch.bfloat16) for hk in (True,)]
    combos.append(("u8", "u8", -1, True))  # fp8 caches move their bits
    combos += [(TRITON_DTYPE[d], "u8", f, False) for d in (torch.float16, torch.bfloat16) for f in range(4)]
    for in_dt, out_dt, fmt, has_k in combos:
        for block_d in APPEND_D_BUCKETS:
            sig = {"k_ptr": "*" + in_dt, "v_ptr": "*" + in_dt, "kc_ptr": "*" + out_dt, "vc_ptr": "*" + out_dt,
                   "batch_ptr": "*i32", "pos_ptr": "*i32", "indices_ptr": "*i32", "indptr_ptr": "*i32"}
            for name in ("nnz", "batch_size", "num_pages", "page_size", "d_k", "d_v", "s_kt", "s_kh", "s_vt", "s_vh",
                         "s_kcp", "s_kcs", "s_kch", "s_vcp", "s_vcs", "s_vch"):
                sig[name] = "i32"
            sig["scale"] = "fp32"
            for name in ("HAS_K", "OUT_FMT", "BLOCK_T", "BLOCK_D"):
                sig[name] = "constexpr"
            const = dict(HAS_K=has_k, OUT_FMT=fmt, BLOCK_T=APPEND_BLOCK_T, BLOCK_D=block_d)
            name = f"{in_dt}_to_{out_dt}" + (f"_fp8f{fmt}" if fmt >= 0 else "") + f"_d{block_d}"
            register_variant(KernelVariant(
                kernel="page.append_paged_kernel", variant=name, fn=append_paged_kernel, signature=sig,
                constexprs=const, options=lambda fam, bd=block_d: append_config(fam, bd).options(fam),
                min_occupancy=1,
            ))


_register_variants()
