#include "schemas.h"

namespace flashinfer_ops {
void register_activation(torch::Library& m) {
  // input [..., 2d] -> out [..., d] = act(input[..., :d]) * input[..., d:]
  m.def("silu_and_mul(Tensor(a!) out, Tensor input) -> ()");
  m.def("gelu_and_mul(Tensor(a!) out, Tensor input) -> ()");
  m.def("gelu_tanh_and_mul(Tensor(a!) out, Tensor input) -> ()");
}
}  // namespace flashinfer_ops
