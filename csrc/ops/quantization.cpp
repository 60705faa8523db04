#include "schemas.h"

namespace flashinfer_ops {
void register_quantization(torch::Library& m) {
  // x [n] (any dtype, nonzero = 1) -> out uint8 [ceil(n/8)]; bitorder "big" or "little".
  m.def("packbits(Tensor(a!) out, Tensor x, str bitorder) -> ()");
  // Packs x[input_indptr[i]:input_indptr[i+1]] into out[output_indptr[i]:output_indptr[i+1]].
  m.def(
      "segment_packbits(Tensor(a!) out, Tensor x, Tensor input_indptr, Tensor output_indptr, "
      "str bitorder) -> ()");
}
}  // namespace flashinfer_ops
