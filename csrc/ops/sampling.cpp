#include "schemas.h"

namespace flashinfer_ops {
void register_sampling(torch::Library& m) {
}
}  // namespace flashinfer_ops
