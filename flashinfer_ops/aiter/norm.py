"""rmsnorm.aiter: FlashInfer's rmsnorm through `aiter.rms_norm` (AITER spec §1.6)."""
import sys

import torch

from .._library import register_op
from ..fake import norm as contract

NORM_BACKENDS = ("auto", "native", "triton", "aiter")


def select_rmsnorm_backend(backend: str, aiter_loaded: bool) -> str:
    """Pure routing rule for rmsnorm's `backend=`.

    "auto" stays on our Triton kernel ("native"): AITER's CK rmsnorm loses precision at
    hidden >= 1024 (as the ROCm port found). "aiter" is honoured only when the overload is loaded.
    Returns "native" or "aiter"; raises ValueError for an unknown backend.
    """
    if backend not in NORM_BACKENDS:
        raise ValueError(f"backend: expected one of {list(NORM_BACKENDS)}, got {backend!r}")
    if backend == "aiter":
        if not aiter_loaded:
            raise ImportError(
                "rmsnorm: backend='aiter' needs AMD's AITER package (`import aiter` failed); "
                "use backend='auto'"
            )
        return "aiter"
    return "native"


def check_rmsnorm_aiter(out, input, weight, eps):
    contract.check_rmsnorm(out, input, weight, eps)
    if input.dim() != 2:
        raise ValueError(
            f"input: backend='aiter' takes a 2-D [tokens, hidden] tensor (aiter.rms_norm), got shape "
            f"{tuple(input.shape)}; use backend='auto' for 3-D input"
        )


def rmsnorm_aiter(out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, eps: float) -> None:
    """Adapter: aiter.rms_norm(input [m, n], weight [n], epsilon) returns a new tensor; copy it out."""
    check_rmsnorm_aiter(out, input, weight, eps)
    aiter = sys.modules["aiter"]
    result = aiter.rms_norm(input, weight, eps)
    out.copy_(result)


def register() -> None:
    register_op("rmsnorm.aiter", cuda=rmsnorm_aiter, cpu=rmsnorm_aiter, fake=check_rmsnorm_aiter)
