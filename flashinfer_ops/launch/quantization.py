"""CUDA-key and CPU-key implementations of packbits and segment_packbits."""
import torch
import triton

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ..configs import LaunchConfig, arch_family
from ..fake import quantization as contract
from ..kernels.quantization import packbits_kernel, segment_packbits_kernel
from ..reference import quantization as ref

BLOCK = 256
CONFIG = LaunchConfig(num_warps=4, num_stages=1)


def _bits_view(x: torch.Tensor) -> torch.Tensor:
    # bool storage is one byte per element; read it as uint8 rather than through Triton's i1.
    return x.view(torch.uint8) if x.dtype == torch.bool else x


def packbits_cuda(out, x, bitorder):
    contract.check_packbits(out, x, bitorder)
    if out.numel() == 0:
        return
    family = arch_family(x.device)
    grid = (triton.cdiv(out.numel(), BLOCK),)
    launch(packbits_kernel, grid, out, _bits_view(x), x.shape[0], LITTLE=bitorder == "little", BLOCK=BLOCK,
                          **CONFIG.options(family))


def segment_packbits_cuda(out, x, input_indptr, output_indptr, bitorder):
    contract.check_segment_packbits(out, x, input_indptr, output_indptr, bitorder)
    n_seg = input_indptr.shape[0] - 1
    if n_seg <= 0 or out.numel() == 0:
        return
    family = arch_family(x.device)
    launch(segment_packbits_kernel, (n_seg,), out, _bits_view(x), input_indptr, output_indptr,
                                      LITTLE=bitorder == "little", BLOCK=BLOCK, **CONFIG.options(family))


def packbits_cpu(out, x, bitorder):
    contract.check_packbits(out, x, bitorder)
    out.copy_(ref.packbits(x, bitorder))


def segment_packbits_cpu(out, x, input_indptr, output_indptr, bitorder):
    contract.check_segment_packbits(out, x, input_indptr, output_indptr, bitorder)
    ip, op = input_indptr.tolist(), output_indptr.tolist()
    for i in range(len(ip) - 1):
        out[op[i]:op[i + 1]] = ref.packbits(x[ip[i]:ip[i + 1]], bitorder)


register_op("packbits", cuda=packbits_cuda, cpu=packbits_cpu, fake=contract.packbits_fake)
register_op("segment_packbits", cuda=segment_packbits_cuda, cpu=segment_packbits_cpu, fake=contract.segment_packbits_fake)

for _xdt in ("u8", "fp16", "bf16", "fp32", "i32"):
    for _little in (False, True):
        _order = "little" if _little else "big"
        register_variant(KernelVariant(
            kernel="quantization.packbits_kernel", variant=f"{_xdt}_{_order}", fn=packbits_kernel,
            signature={"out_ptr": "*u8", "x_ptr": f"*{_xdt}", "n": "i32", "LITTLE": "constexpr", "BLOCK": "constexpr"},
            constexprs=dict(LITTLE=_little, BLOCK=BLOCK), options=CONFIG.options,
        ))
        for _idt in ("i32", "i64"):
            register_variant(KernelVariant(
                kernel="quantization.segment_packbits_kernel", variant=f"{_xdt}_{_idt}_{_order}",
                fn=segment_packbits_kernel,
                signature={"out_ptr": "*u8", "x_ptr": f"*{_xdt}", "in_indptr_ptr": f"*{_idt}",
                           "out_indptr_ptr": f"*{_idt}", "LITTLE": "constexpr", "BLOCK": "constexpr"},
                constexprs=dict(LITTLE=_little, BLOCK=BLOCK), options=CONFIG.options,
            ))
assert TRITON_DTYPE[torch.bool] == "u8"
