#include "schemas.h"

namespace flashinfer_ops {
void register_rope(torch::Library& m) {
}
}  // namespace flashinfer_ops
