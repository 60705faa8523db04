#include "schemas.h"

namespace flashinfer_ops {
void register_attention(torch::Library& m) {
}
}  // namespace flashinfer_ops
