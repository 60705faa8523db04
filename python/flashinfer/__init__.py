"""FlashInfer's Python API for AMD Instinct GPUs (gfx942, gfx950), on Triton kernels.

Every function here is a thin facade over a torch.ops.flashinfer operator (see flashinfer_ops),
so torch.compile, CUDA/HIP graphs and torch.export see real operators. Importing is cheap and has
no side effects on the GPU.
"""
from ._version import __version__
from .activation import gelu_and_mul, gelu_tanh_and_mul, silu_and_mul
from .norm import fused_add_rmsnorm, gemma_fused_add_rmsnorm, gemma_rmsnorm, layernorm, rmsnorm
from .prefill import (
    BatchPrefillWithPagedKVCacheWrapper,
    BatchPrefillWithRaggedKVCacheWrapper,
    single_prefill_with_kv_cache,
    single_prefill_with_kv_cache_return_lse,
)
from .quantization import packbits, segment_packbits
from .utils import next_positive_power_of_2, use_torch_custom_ops_enabled
from . import prefill  # noqa: E402,F401  (flashinfer.prefill, as FlashInfer)
