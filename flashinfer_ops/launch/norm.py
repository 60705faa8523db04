"""CUDA-key (and CPU-key) implementations of the norm ops: validate, pick config, grid, launch."""
import functools

import torch
import triton

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ..configs import FAMILIES, arch_family
from ..configs.norm import BLOCK_N_BUCKETS, LOOP_BLOCK_N, norm_config, norm_evict, norm_tile
from ..fake import norm as contract
from ..kernels.norm import norm_kernel
from ..reference import norm as ref


@functools.lru_cache(maxsize=256)
def _launch_plan(family: str, hidden: int):
    """(BLOCK_M, BLOCK_N, single_pass, launch options) for a row width: cached because host time
    per call matters for the small decode-time shapes."""
    block_m, block_n, single = norm_tile(hidden, family)
    return block_m, block_n, single, dict(norm_config(family, block_m, block_n).options(family),
                                          EVICT=norm_evict(family))


def _row_layout(t: torch.Tensor):
    """(n_inner, stride_outer, stride_inner) addressing the rows of a 2-D or 3-D tensor."""
    if t.dim() == 2:
        return 1, t.stride(0), 0
    return t.shape[1], t.stride(0), t.stride(1)


def _launch(out, input, residual, weight, bias, eps, weight_offset, layernorm, fused_add):
    hidden = input.shape[-1]
    n_rows = input.numel() // hidden if hidden else 0
    if n_rows == 0 or hidden == 0:
        return
    n_inner, s_in_o, s_in_i = _row_layout(input)
    _, s_out_o, s_out_i = _row_layout(out)
    res = residual if residual is not None else input
    _, s_res_o, s_res_i = _row_layout(res)
    block_m, block_n, single, options = _launch_plan(arch_family(input.device), hidden)
    grid = (triton.cdiv(n_rows, block_m),)
    launch(norm_kernel, grid,
        out, input, res, weight, bias if bias is not None else weight,
        n_rows, n_inner, hidden,
        s_out_o, s_out_i, s_in_o, s_in_i, s_res_o, s_res_i,
        float(eps), float(weight_offset),
        LAYERNORM=layernorm, FUSED_ADD=fused_add, SINGLE_PASS=single,
        BLOCK_M=block_m, BLOCK_N=block_n, **options,
    )


# ---- CUDA key (Triton) ------------------------------------------------------------------------

def rmsnorm_cuda(out, input, weight, eps):
    contract.check_rmsnorm(out, input, weight, eps)
    _launch(out, input, None, weight, None, eps, 0.0, False, False)


def gemma_rmsnorm_cuda(out, input, weight, eps):
    contract.check_rmsnorm(out, input, weight, eps)
    _launch(out, input, None, weight, None, eps, 1.0, False, False)


def fused_add_rmsnorm_cuda(input, residual, weight, eps):
    contract.check_fused_add_rmsnorm(input, residual, weight, eps)
    _launch(input, input, residual, weight, None, eps, 0.0, False, True)


def gemma_fused_add_rmsnorm_cuda(input, residual, weight, eps):
    contract.check_fused_add_rmsnorm(input, residual, weight, eps)
    _launch(input, input, residual, weight, None, eps, 1.0, False, True)


def layernorm_cuda(out, input, gamma, beta, eps):
    contract.check_layernorm(out, input, gamma, beta, eps)
    _launch(out, input, None, gamma, beta, eps, 0.0, True, False)


# ---- CPU key (reference) ----------------------------------------------------------------------

def rmsnorm_cpu(out, input, weight, eps):
    contract.check_rmsnorm(out, input, weight, eps)
    out.copy_(ref.rmsnorm(input, weight, eps))


def gemma_rmsnorm_cpu(out, input, weight, eps):
    contract.check_rmsnorm(out, input, weight, eps)
    out.copy_(ref.rmsnorm(input, weight, eps, weight_offset=1.0))


def fused_add_rmsnorm_cpu(input, residual, weight, eps):
    contract.check_fused_add_rmsnorm(input, residual, weight, eps)
    normed, new_res = ref.fused_add_rmsnorm(input, residual, weight, eps)
    residual.copy_(new_res)
    input.copy_(normed)


def gemma_fused_add_rmsnorm_cpu(input, residual, weight, eps):
    contract.check_fused_add_rmsnorm(input, residual, weight, eps)
    normed, new_res = ref.fused_add_rmsnorm(input, residual, weight, eps, weight_offset=1.0)
    residual.copy_(new_res)
    input.copy_(normed)


def layernorm_cpu(out, input, gamma, beta, eps):
    contract.check_layernorm(out, input, gamma, beta, eps)
    out.copy_(ref.layernorm(input, gamma, beta, eps))


register_op("rmsnorm", cuda=rmsnorm_cuda, cpu=rmsnorm_cpu, fake=contract.rmsnorm_fake)
register_op("gemma_rmsnorm", cuda=gemma_rmsnorm_cuda, cpu=gemma_rmsnorm_cpu, fake=contract.gemma_rmsnorm_fake)
register_op(
    "fused_add_rmsnorm", cuda=fused_add_rmsnorm_cuda, cpu=fused_add_rmsnorm_cpu, fake=contract.fused_add_rmsnorm_fake
)
register_op(
    "gemma_fused_add_rmsnorm",
    cuda=gemma_fused_add_rmsnorm_cuda,
    cpu=gemma_fused_add_rmsnorm_cpu,
    fake=contract.gemma_fused_add_rmsnorm_fake,
)
register_op("layernorm", cuda=layernorm_cuda, cpu=layernorm_cpu, fake=contract.layernorm_fake)


# ---- shipped variants (AMD gate / AOT list) ---------------------------------------------------

def _register_variants():
    for dtype in (torch.float16, torch.bfloat16):
        dt = TRITON_DTYPE[dtype]
        for mode, layernorm, fused_add in (("rms", False, False), ("add_rms", False, True), ("layernorm", True, False)):
            wdt = "fp32" if layernorm else dt
            tiles = [(norm_tile(bn), bn) for bn in BLOCK_N_BUCKETS] + [((1, LOOP_BLOCK_N, False), None)]
            for (block_m, block_n, single), bucket in tiles:
                signature = {
                    "out_ptr": f"*{dt}", "in_ptr": f"*{dt}", "res_ptr": f"*{dt}", "w_ptr": f"*{wdt}",
                    "b_ptr": f"*{wdt}", "n_rows": "i32", "n_inner": "i32", "hidden": "i32",
                    "s_out_o": "i32", "s_out_i": "i32", "s_in_o": "i32", "s_in_i": "i32",
                    "s_res_o": "i32", "s_res_i": "i32", "eps": "fp32", "weight_offset": "fp32",
                    "LAYERNORM": "constexpr", "FUSED_ADD": "constexpr", "SINGLE_PASS": "constexpr",
                    "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "EVICT": "constexpr",
                }
                # the AMD variants' eviction hint (gfx942 and gfx950 share it)
                constexprs = dict(LAYERNORM=layernorm, FUSED_ADD=fused_add, SINGLE_PASS=single,
                                  BLOCK_M=block_m, BLOCK_N=block_n, EVICT=norm_evict("gfx942"))
                name = f"{mode}_{dt}_" + (f"n{block_n}" if single else f"looped{block_n}")
                register_variant(KernelVariant(
                    kernel="norm.norm_kernel", variant=name, fn=norm_kernel, signature=signature,
                    constexprs=constexprs,
                    options=lambda fam, bm=block_m, bn=block_n: norm_config(fam, bm, bn).options(fam),
                    min_occupancy=1,
                ))


_register_variants()
assert set(FAMILIES) >= {"gfx942", "gfx950"}
