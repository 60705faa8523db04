#include "schemas.h"

namespace flashinfer_ops {
// Prefill attention (spec §3, §4). Shared conventions:
//   mask_mode: 0 none, 1 causal (bottom-right aligned), 2 custom (packed little-endian bits, one
//     byte-aligned [qo_len, kv_len] segment per request; causal is then ignored).
//   kv_layout: 0 NHD, 1 HND. pos_encoding_mode: 0 NONE, 1 ROPE_LLAMA, 2 ALIBI.
//   sm_scale already includes q_scale * k_scale; v_scale multiplies the output.
//   window_left < 0 disables the sliding window; logits_soft_cap <= 0 disables the cap.
//   lse (optional) is [rows, H_qo] float32, base 2.
void register_attention_prefill(torch::Library& m) {
  // q [qo_len, H_qo, D_qk]; k [kv_len, H_kv, D_qk] / v [kv_len, H_kv, D_vo] (NHD) or heads first
  // (HND); out [qo_len, H_qo, D_vo] (dtype of q).
  m.def(
      "single_prefill(Tensor(a!) out, Tensor(b!)? lse, Tensor q, Tensor k, Tensor v, "
      "Tensor? packed_custom_mask, int mask_mode, int kv_layout, int pos_encoding_mode, float sm_scale, "
      "int window_left, float logits_soft_cap, float rope_scale, float rope_theta, float v_scale) -> ()");
  // Ragged batch: q [nnz_q, H_qo, D_qk], k/v [nnz_kv, H_kv, D] (or heads first for HND). `work`
  // int32 [n_work, 8] is the schedule plan() wrote: per program (tile_row0, qo_start, qo_len,
  // kv_start, kv_len, mask_byte_off, request, 0); qo_len 0 marks an unused slot. block_m is the
  // tile height (packed (query, head-in-group) rows) the schedule was built for. deal (optional,
  // int32 [P + 1 + n_work * H_kv + 1]): the (work row, kv head) pairs dealt to P persistent
  // programs by plan() (offsets, pair numbers kv_head * n_work + row, one spare entry); the
  // result is the same with or without it.
  m.def(
      "batch_prefill_ragged(Tensor(a!) out, Tensor(b!)? lse, Tensor q, Tensor k, Tensor v, Tensor work, "
      "Tensor? packed_custom_mask, int block_m, int mask_mode, int kv_layout, int pos_encoding_mode, "
      "float sm_scale, int window_left, float logits_soft_cap, float rope_scale, float rope_theta, "
      "float v_scale, Tensor? deal=None) -> ()");
  // Paged batch: k_cache/v_cache [pages, P, H_kv, D] (NHD) or [pages, H_kv, P, D] (HND), any
  // strides with a contiguous last dim; kv_indices int32 page ids; work as above with kv_start =
  // the request's first entry in kv_indices. kv_staging (uint8 scratch, >= len(kv_indices) * P *
  // H_kv * (D_qk + D_vo) * element size bytes): when given, the scheduled K/V rows are first
  // copied into it (contiguous, token-major) and the dense kernel runs on the copy; block_m is then
  // the dense kernel's tile height (plan() decides and schedules accordingly). deal as above.
  m.def(
      "batch_prefill_paged(Tensor(a!) out, Tensor(b!)? lse, Tensor q, Tensor k_cache, Tensor v_cache, "
      "Tensor work, Tensor kv_indices, Tensor? packed_custom_mask, int block_m, int mask_mode, int kv_layout, "
      "int pos_encoding_mode, float sm_scale, int window_left, float logits_soft_cap, float rope_scale, "
      "float rope_theta, float v_scale, Tensor(c!)? kv_staging=None, Tensor? deal=None) -> ()");
}
}  // namespace flashinfer_ops
