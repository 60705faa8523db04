#include "schemas.h"

namespace flashinfer_ops {
void register_norm(torch::Library& m) {
  // out = input * rsqrt(mean(input^2, -1) + eps) * weight; input [..., hidden] (2-D or 3-D).
  m.def("rmsnorm(Tensor(a!) out, Tensor input, Tensor weight, float eps) -> ()");
  m.def("rmsnorm.aiter(Tensor(a!) out, Tensor input, Tensor weight, float eps) -> ()");
  // residual += input (fp32 add); input = rmsnorm(residual) * weight. Both mutated.
  m.def("fused_add_rmsnorm(Tensor(a!) input, Tensor(b!) residual, Tensor weight, float eps) -> ()");
  // Gemma variants scale by (1 + weight).
  m.def("gemma_rmsnorm(Tensor(a!) out, Tensor input, Tensor weight, float eps) -> ()");
  m.def(
      "gemma_fused_add_rmsnorm(Tensor(a!) input, Tensor(b!) residual, Tensor weight, float eps) -> ()");
  // out = (input - mean) * rsqrt(var + eps) * gamma + beta.
  m.def("layernorm(Tensor(a!) out, Tensor input, Tensor gamma, Tensor beta, float eps) -> ()");
}
}  // namespace flashinfer_ops
