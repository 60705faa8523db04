"""CUDA-key and CPU-key implementations of silu_and_mul, gelu_and_mul, gelu_tanh_and_mul."""
import functools

import torch
import triton

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ..configs import arch_family
from ..configs.activation import BLOCK_D_BUCKETS, act_config, act_tile
from ..fake.activation import act_and_mul_fake, check_act_and_mul
from ..kernels.activation import ACT_GELU, ACT_GELU_TANH, ACT_SILU, act_and_mul_kernel
from ..reference import activation as ref


@functools.lru_cache(maxsize=256)
def _launch_plan(family: str, d: int):
    block_m, block_d = act_tile(d)
    return block_m, block_d, act_config(family, block_m, block_d).options(family)


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """A 2-D [rows, width] view (or, if the leading dims cannot be merged, a contiguous copy)."""
    if t.dim() == 2:
        return t
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError:
        return t.reshape(-1, t.shape[-1])


def _launch(out, input, act):
    check_act_and_mul(out, input)
    d = input.shape[-1] // 2
    if out.numel() == 0:
        return
    x = _as_rows(input)
    y = out if out.dim() == 2 else out.view(-1, d) if out.is_contiguous() else None
    target = y if y is not None else torch.empty(x.shape[0], d, dtype=out.dtype, device=out.device)
    block_m, block_d, options = _launch_plan(arch_family(input.device), d)
    grid = (triton.cdiv(x.shape[0], block_m), triton.cdiv(d, block_d))
    launch(act_and_mul_kernel, grid,
        target, x, x.shape[0], d, x.stride(0), target.stride(0),
        ACT=act, BLOCK_M=block_m, BLOCK_D=block_d, **options,
    )
    if y is None:
        out.copy_(target.view(out.shape))


def silu_and_mul_cuda(out, input):
    _launch(out, input, ACT_SILU)


def gelu_and_mul_cuda(out, input):
    _launch(out, input, ACT_GELU)


def gelu_tanh_and_mul_cuda(out, input):
    _launch(out, input, ACT_GELU_TANH)


def _cpu(fn):
    def impl(out, input):
        check_act_and_mul(out, input)
        out.copy_(fn(input))

    return impl


register_op("silu_and_mul", cuda=silu_and_mul_cuda, cpu=_cpu(ref.silu_and_mul), fake=act_and_mul_fake)
register_op("gelu_and_mul", cuda=gelu_and_mul_cuda, cpu=_cpu(ref.gelu_and_mul), fake=act_and_mul_fake)
register_op("gelu_tanh_and_mul", cuda=gelu_tanh_and_mul_cuda, cpu=_cpu(ref.gelu_tanh_and_mul), fake=act_and_mul_fake)

for _dtype in (torch.float16, torch.bfloat16):
    _dt = TRITON_DTYPE[_dtype]
    for _act, _an in ((ACT_SILU, "silu"), (ACT_GELU, "gelu"), (ACT_GELU_TANH, "gelu_tanh")):
        for _bd in BLOCK_D_BUCKETS:
            _bm, _bd = act_tile(_bd)
            register_variant(KernelVariant(
                kernel="activation.act_and_mul_kernel", variant=f"{_an}_{_dt}_d{_bd}", fn=act_and_mul_kernel,
                signature={"out_ptr": f"*{_dt}", "in_ptr": f"*{_dt}", "n_rows": "i32", "d": "i32",
                           "s_in_row": "i32", "s_out_row": "i32", "ACT": "constexpr",
                           "BLOCK_M": "constexpr", "BLOCK_D": "constexpr"},
                constexprs=dict(ACT=_act, BLOCK_M=_bm, BLOCK_D=_bd),
                options=lambda fam, bm=_bm, bd=_bd: act_config(fam, bm, bd).options(fam),
            ))
