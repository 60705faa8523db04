#include "schemas.h"

namespace flashinfer_ops {
void register_attention_decode(torch::Library& m) {
}
}  // namespace flashinfer_ops
