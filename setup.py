"""Build: compiles csrc/ops/*.cpp (the TORCH_LIBRARY(flashinfer) schemas) into flashinfer_ops._C.

Kernels are Triton (Python); the C++ library holds the op schemas (and plan()'s host-side
schedule helper, csrc/ops/plan.cpp), so one build serves
Python callers, torch.export and LibTorch programs alike.
"""
import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

UPSTREAM_API_VERSION = "0.5.3"
LOCAL_RELEASE = 1
VERSION = f"{UPSTREAM_API_VERSION}+rocm.{LOCAL_RELEASE}"

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "python", "flashinfer", "_version.py"), "w") as f:
    f.write(f'__version__ = "{VERSION}"\n')

sources = sorted(glob.glob("csrc/ops/*.cpp"))

setup(
    name="flashinfer-rocm-triton",
    version=VERSION,
    description="FlashInfer's Python API for AMD Instinct GPUs (gfx942/gfx950), Triton kernels "
    "behind torch.ops.flashinfer",
    python_requires=">=3.10",
    packages=find_packages(where="python") + find_packages(include=["flashinfer_ops", "flashinfer_ops.*"]),
    package_dir={"flashinfer": "python/flashinfer", "flashinfer_ops": "flashinfer_ops"},
    ext_modules=[
        CppExtension(
            "flashinfer_ops._C",
            sources,
            include_dirs=[os.path.join(here, "csrc", "ops")],
            extra_compile_args={"cxx": ["-O2", "-std=c++17"]},
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    install_requires=["triton>=3.5", "numpy"],
    extras_require={"test": ["pytest", "expecttest", "numpy", "scipy"]},
    zip_safe=False,
)
