"""torch.ops.flashinfer: the operator library underneath the `flashinfer` facade.

Importing this package loads the schemas (flashinfer_ops._C, built from csrc/ops) and attaches the
kernels: Triton for the CUDA dispatch key (which ROCm PyTorch also uses), the plain-PyTorch
reference for CPU, a fake for every op, and the ".aiter" overloads when `import aiter` works.
"""
import importlib
import pkgutil

import torch  # noqa: F401  (libtorch must be loaded before the schema library)

from . import _C  # noqa: F401  (runs TORCH_LIBRARY(flashinfer, m))

DOMAINS = ("norm", "activation", "quantization", "rope", "page", "attention", "sampling")


def _load_launch_modules():
    from . import launch

    for info in pkgutil.iter_modules(launch.__path__):
        importlib.import_module(f"{__name__}.launch.{info.name}")


_load_launch_modules()

from .aiter import load_aiter_overloads  # noqa: E402

load_aiter_overloads()
