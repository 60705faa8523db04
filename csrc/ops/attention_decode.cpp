#include "schemas.h"

namespace flashinfer_ops {
void register_attention_decode(torch::Library& m) {
  // One query token against a dense KV: q [H_qo, D]; k, v [L, H_kv, D] (logical NHD: an HND cache
  // is passed transposed; any strides, last dim contiguous); out [H_qo, D] (q dtype);
  // lse [H_qo] fp32 base 2 (optional). pos_encoding_mode: 0 none, 1 RoPE llama, 2 ALiBi.
  // logits_soft_cap <= 0 and window_left < 0 disable those features; k_scale multiplies sm_scale,
  // v_scale the output.
  m.def(
      "single_decode_with_kv_cache(Tensor(a!) out, Tensor(b!)? lse, Tensor q, Tensor k, Tensor v, "
      "float sm_scale, float logits_soft_cap, int window_left, int pos_encoding_mode, float rope_scale, "
      "float rope_theta, float k_scale, float v_scale) -> ()");
  // Paged batch decode driven by a plan: q [B, H_qo, D]; k_cache, v_cache [pages, P, H_kv, D]
  // (logical NHD, any strides); kv_indices int32 [>= nnz pages]; work_info int32 [W, 8] rows
  // (request or -1, tok_start, tok_end, page_base, kv_len, first_slot, n_chunks, 0); request_info
  // int32 [>= B, 2] rows (first_slot, n_chunks); tmp_o fp32 [S, H_qo, D] and tmp_lse fp32 [S, H_qo]
  // hold the partial states of split requests (slot = work row). out [B, H_qo, D], lse [B, H_qo].
  m.def(
      "batch_decode_with_paged_kv_cache(Tensor(a!) out, Tensor(b!)? lse, Tensor q, Tensor k_cache, "
      "Tensor v_cache, Tensor kv_indices, Tensor work_info, Tensor request_info, Tensor(c!) tmp_o, "
      "Tensor(d!) tmp_lse, float sm_scale, float logits_soft_cap, int window_left, int pos_encoding_mode, "
      "float rope_scale, float rope_theta, float k_scale, float v_scale) -> ()");
}
}  // namespace flashinfer_ops
