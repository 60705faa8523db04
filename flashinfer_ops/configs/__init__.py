"""Per-arch-family launch configuration.

Families: "gfx942" (MI300X/MI325X, 64 KiB LDS), "gfx950" (MI355X, 160 KiB LDS), "sm90" (H100, the
run-time test machine). Each domain keeps a small heuristic table in configs/<domain>.py; nothing
is autotuned at run time on a hot path.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Dict

import torch

AMD_FAMILIES = ("gfx942", "gfx950")
FAMILIES = AMD_FAMILIES + ("sm90",)
WARP_SIZE = {"gfx942": 64, "gfx950": 64, "sm90": 32}
LDS_LIMIT = {"gfx942": 64 * 1024, "gfx950": 160 * 1024, "sm90": 227 * 1024}


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=None)
def _family_of_device(index: int) -> str:
    if torch.version.hip is not None:
        arch = torch.cuda.get_device_properties(index).gcnArchName.split(":")[0]
        # Unknown AMD archs take the gfx942 table: the most conservative LDS budget.
        return arch if arch in AMD_FAMILIES else "gfx942"
    return "sm90"


def arch_family(device: torch.device) -> str:
    """The config family for `device`; the interpreter uses the sm90 table."""
    if device.type != "cuda" or interpreting():
        return "sm90"
    return _family_of_device(device.index if device.index is not None else torch.cuda.current_device())


@functools.lru_cache(maxsize=None)
def _capability_of_device(index: int):
    return torch.cuda.get_device_capability(index)


def has_tensor_copy_engine(device: torch.device) -> bool:
    """NVIDIA sm90+ (Hopper's tensor memory accelerator, which host tensor descriptors drive).
    Every NVIDIA GPU takes the sm90 tables; this keeps descriptor paths off older ones."""
    if device.type != "cuda" or interpreting() or torch.version.hip is not None:
        return False
    return _capability_of_device(device.index if device.index is not None else torch.cuda.current_device()) >= (9, 0)


@functools.lru_cache(maxsize=None)
def _sm_count_of_device(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device: torch.device) -> int:
    """SMs (NVIDIA) / CUs (AMD) of `device` (asked once per device: launchers call it per op);
    4 under the interpreter and on the CPU, so the CPU tests still see a multi-program grid."""
    if device.type == "cuda" and not interpreting():
        return _sm_count_of_device(device.index if device.index is not None else torch.cuda.current_device())
    return 4


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
    num_warps: int = 4
    num_stages: int = 1
    waves_per_eu: int = 0  # AMD only: occupancy hint (0 = compiler's choice)
    matrix_instr_nonkdim: int = 0  # AMD only: MFMA shape (16 or 32; 0 = default)
    kpack: int = 0  # AMD only: MFMA operand packing (1 or 2; 0 = default)
    maxnreg: int = 0  # NVIDIA only: register cap per thread (ptxas .maxnreg; 0 = compiler's choice)

    def options(self, family: str) -> Dict[str, Any]:
        """Keyword arguments for a launch (and for triton.compile) on `family`."""
        opts: Dict[str, Any] = {"num_warps": self.num_warps, "num_stages": self.num_stages}
        if family in AMD_FAMILIES:
            if self.waves_per_eu:
                opts["waves_per_eu"] = self.waves_per_eu
            if self.matrix_instr_nonkdim:
                opts["matrix_instr_nonkdim"] = self.matrix_instr_nonkdim
            if self.kpack:
                opts["kpack"] = self.kpack
        elif self.maxnreg:
            opts["maxnreg"] = self.maxnreg
        return opts
