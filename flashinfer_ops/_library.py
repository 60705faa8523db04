"""Attaching Python kernels to the schemas declared in csrc/ops, and the kernel-variant registry.

`register_op` is the only place that talks to torch.library: CUDA-key Triton implementations, CPU
reference implementations and fakes. We use Library.impl rather than custom_op/triton_op because
those add 10-20 us of Python per call on the hot path (DESIGN.md §3).

`register_variant` fills VARIANTS, the list of every Triton kernel specialisation we ship. The AMD
compile gate (flashinfer_ops.tools.amd_report) compiles each of them for gfx942 and gfx950, and the
AOT build will compile the same list.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

LIB = torch.library.Library("flashinfer", "FRAGMENT")
_IMPLEMENTED: Dict[tuple, Callable] = {}
# Set by flashinfer_ops.selfcheck (only under TRITON_INTERPRET=1): CPU-key calls run the Triton
# implementation in the interpreter instead of the reference, so the self-check can drive the
# real kernels through the public API on a machine without a GPU.
KERNELS_ON_CPU = [False]


def _cpu_dispatch(cpu: Callable, cuda: Optional[Callable]) -> Callable:
    if cuda is None:
        return cpu

    def impl(*args):
        return (cuda if KERNELS_ON_CPU[0] else cpu)(*args)

    impl.__name__ = getattr(cpu, "__name__", "cpu_impl")
    return impl


def register_op(
    name: str,
    *,
    cuda: Optional[Callable] = None,
    cpu: Optional[Callable] = None,
    fake: Optional[Callable] = None,
) -> None:
    """Attach implementations to `flashinfer::<name>` (name may carry an overload: "rmsnorm.aiter")."""
    for key, fn in (("CUDA", cuda), ("CPU", cpu)):
        if fn is None or (name, key) in _IMPLEMENTED:
            continue
        LIB.impl(name, _cpu_dispatch(fn, cuda) if key == "CPU" else fn, key)
        _IMPLEMENTED[(name, key)] = fn
    if fake is not None and (name, "fake") not in _IMPLEMENTED:
        torch.library.register_fake(f"flashinfer::{name}", fake, lib=LIB)
        _IMPLEMENTED[(name, "fake")] = fake


def implementation(name: str, key: str) -> Callable:
    """The Python function attached to flashinfer::<name> for `key` ("CUDA", "CPU", "fake").

    Kernel tests call the "CUDA" one directly on CPU tensors under TRITON_INTERPRET=1."""
    if "." not in name:
        name_default = name
    else:
        op, overload = name.split(".", 1)
        name_default = op if overload == "default" else name
    return _IMPLEMENTED[(name_default, key)]


def has_impl(name: str, key: str) -> bool:
    return (name, key) in _IMPLEMENTED


@dataclasses.dataclass(frozen=True)
class KernelVariant:
    """One compiled specialisation of a Triton kernel.

    signature: argument name -> Triton type ("*bf16", "i32", "fp32", "constexpr").
    constexprs: values of the constexpr arguments.
    options: arch family ("gfx942", "gfx950", "sm90") -> triton.compile options (num_warps, ...),
        exactly what the launcher passes on that family.
    min_occupancy: waves per SIMD the variant must reach on AMD (the gate fails below it).
    families: the arch families whose launcher uses this variant (empty: every family); the AMD
        gate compiles a variant only for the AMD archs listed.
    """

    kernel: str
    variant: str
    fn: Any
    signature: Dict[str, str]
    constexprs: Dict[str, Any]
    options: Callable[[str], Dict[str, Any]]
    min_occupancy: int = 1
    families: Tuple[str, ...] = ()


VARIANTS: List[KernelVariant] = []


def register_variant(v: KernelVariant) -> None:
    VARIANTS.append(v)


TRITON_DTYPE = {
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float32: "fp32",
    torch.float64: "fp64",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.int16: "i16",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.bool: "u8",
}
for _name, _code in (
    ("float8_e4m3fn", "fp8e4nv"),
    ("float8_e5m2", "fp8e5"),
    ("float8_e4m3fnuz", "fp8e4b8"),
    ("float8_e5m2fnuz", "fp8e5b16"),
):
    if hasattr(torch, _name):
        TRITON_DTYPE[getattr(torch, _name)] = _code
