// Every schema of torch.ops.flashinfer is declared by one of these functions, one per domain
// (csrc/ops/<domain>.cpp). library.cpp calls them all from the single TORCH_LIBRARY(flashinfer, m).
//
// Style (DESIGN.md §3): destination-passing. Outputs come first as `Tensor(a!)`, the op returns
// `()`; in-place ops mark the mutated input `Tensor(a!)`; sizes are SymInt; optional tensors
// `Tensor?`; randomness is `Tensor seed, Tensor(a!) offset`. Overload `.default` is the Triton
// kernel, `.aiter` the AITER adapter, with exactly the same argument list.
#pragma once
#include <torch/library.h>

namespace flashinfer_ops {
void register_norm(torch::Library& m);
void register_activation(torch::Library& m);
void register_quantization(torch::Library& m);
void register_rope(torch::Library& m);
void register_page(torch::Library& m);
void register_attention(torch::Library& m);
void register_sampling(torch::Library& m);
}  // namespace flashinfer_ops
