#include "schemas.h"

namespace flashinfer_ops {
void register_attention_merge(torch::Library& m);

void register_attention_decode(torch::Library& m) {
  register_attention_merge(m);
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
  // merge_counters (int32 [>= B * H_qo], all zero; left zero): when given, the decode kernel merges
  // split requests itself (the last of a request's programs to finish) instead of a merge launch.
  m.def(
      "batch_decode_with_paged_kv_cache(Tensor(a!) out, Tensor(b!)? lse, Tensor q, Tensor k_cache, "
      "Tensor v_cache, Tensor kv_indices, Tensor work_info, Tensor request_info, Tensor(c!) tmp_o, "
      "Tensor(d!) tmp_lse, float sm_scale, float logits_soft_cap, int window_left, int pos_encoding_mode, "
      "float rope_scale, float rope_theta, float k_scale, float v_scale, Tensor(e!)? merge_counters=None) -> ()");
}
}  // namespace flashinfer_ops

namespace flashinfer_ops {
// Attention-state merge (spec §5.1, base-2 LSE): state = (v [seq, H, D] normalised output,
// s [seq, H] fp32 log2-sum-exp). v_out = (v_a 2^(s_a-m) + v_b 2^(s_b-m)) / (2^(s_a-m) + 2^(s_b-m)),
// s_out = m + log2(2^(s_a-m) + 2^(s_b-m)), m = max(s_a, s_b).
void register_attention_merge(torch::Library& m) {
  m.def(
      "merge_state(Tensor(a!) v_out, Tensor(b!) s_out, Tensor v_a, Tensor s_a, Tensor v_b, Tensor s_b) -> ()");
  // In place into (v, s); rows whose mask [seq] is False are left untouched.
  m.def("merge_state_in_place(Tensor(a!) v, Tensor(b!) s, Tensor v_other, Tensor s_other, Tensor? mask) -> ()");
  // v [seq, n, H, D], s [seq, n, H] -> v_out [seq, H, D], s_out [seq, H].
  m.def("merge_states(Tensor(a!) v_out, Tensor(b!) s_out, Tensor v, Tensor s) -> ()");
}
}  // namespace flashinfer_ops
