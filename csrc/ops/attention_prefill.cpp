#include "schemas.h"

namespace flashinfer_ops {
void register_attention_prefill(torch::Library& m) {
}
}  // namespace flashinfer_ops
