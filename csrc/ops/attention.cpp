#include "schemas.h"

namespace flashinfer_ops {
// Decode (single + paged batch, split-KV and the state merge) and prefill (single, paged and
// ragged batch) keep their schemas in attention_decode.cpp / attention_prefill.cpp.
void register_attention_decode(torch::Library& m);
void register_attention_prefill(torch::Library& m);

void register_attention(torch::Library& m) {
  register_attention_decode(m);
  register_attention_prefill(m);
}
}  // namespace flashinfer_ops
