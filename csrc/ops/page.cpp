#include "schemas.h"

namespace flashinfer_ops {
void register_page(torch::Library& m) {
}
}  // namespace flashinfer_ops
