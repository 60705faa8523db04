"""Test-wide setup.

Without a GPU the Triton kernels run in Triton's CPU interpreter: TRITON_INTERPRET must be set
before any @triton.jit kernel is defined, so it is set here, before flashinfer is imported.
tests/kernels then calls the CUDA-key implementations directly on CPU tensors (tiny shapes);
everything else goes through the dispatcher, which routes CPU tensors to the reference kernels.
"""
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a GPU (none here); runs on the GPU test machine "
                                       "(scripts/device_check.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _fresh_seed():
    # Fresh random inputs on every run (never a fixed seed), but print it so a failure reproduces.
    seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    yield seed
