#include "schemas.h"

namespace flashinfer_ops {
// Sampling (spec §11). Probabilities / logits are [batch, vocab] with a contiguous last dim, read
// as float32 in the kernels (fp32, fp16, bf16 accepted). Samples are int32 [batch_out]; `indices`
// (int32 [batch_out]) maps output row i to input row indices[i]. Thresholds come as an optional
// per-input-row tensor (`maybe_*_arr`) or a scalar used when the tensor is None.
// Randomness: `seed` and `offset` are int64 [1] tensors on the input's device; the op reads both
// and advances offset in place by the call's Philox counter increment (FlashInfer's increments,
// rounded up to a multiple of 4), so a CUDA graph replays draw fresh numbers.
void register_sampling(torch::Library& m) {
  // out = softmax(logits / temperature) (float32); -inf entries allowed.
  m.def("softmax(Tensor(a!) out, Tensor logits, Tensor? maybe_temperature_arr, float temperature_val) -> ()");
  m.def(
      "sampling_from_probs(Tensor(a!) samples, Tensor probs, Tensor? indices, bool deterministic, "
      "Tensor seed, Tensor(b!) offset) -> ()");
  m.def(
      "sampling_from_logits(Tensor(a!) samples, Tensor logits, Tensor? indices, bool deterministic, "
      "Tensor seed, Tensor(b!) offset) -> ()");
  m.def(
      "top_p_sampling_from_probs(Tensor(a!) samples, Tensor probs, Tensor? indices, Tensor? maybe_top_p_arr, "
      "float top_p_val, bool deterministic, Tensor seed, Tensor(b!) offset) -> ()");
  m.def(
      "top_k_sampling_from_probs(Tensor(a!) samples, Tensor probs, Tensor? indices, Tensor? maybe_top_k_arr, "
      "int top_k_val, bool deterministic, Tensor seed, Tensor(b!) offset) -> ()");
  m.def(
      "min_p_sampling_from_probs(Tensor(a!) samples, Tensor probs, Tensor? indices, Tensor? maybe_min_p_arr, "
      "float min_p_val, bool deterministic, Tensor seed, Tensor(b!) offset) -> ()");
  // Joint filter: a token is eligible when it is in the top-k AND in the top-p nucleus.
  m.def(
      "top_k_top_p_sampling_from_probs(Tensor(a!) samples, Tensor probs, Tensor? indices, "
      "Tensor? maybe_top_k_arr, int top_k_val, Tensor? maybe_top_p_arr, float top_p_val, bool deterministic, "
      "Tensor seed, Tensor(b!) offset) -> ()");
  // Top-k first, then top-p, from logits: softmax(top_k_mask_logits(logits, k)) sampled with the
  // top-p rule of top_p_sampling_from_probs (offset advances as for that op).
  m.def(
      "top_k_top_p_sampling_from_logits(Tensor(a!) samples, Tensor logits, Tensor? indices, "
      "Tensor? maybe_top_k_arr, int top_k_val, Tensor? maybe_top_p_arr, float top_p_val, bool deterministic, "
      "Tensor seed, Tensor(b!) offset) -> ()");
  // Filters (float32 outputs, shape of the input).
  m.def("top_p_renorm_probs(Tensor(a!) renorm_probs, Tensor probs, Tensor? maybe_top_p_arr, float top_p_val) -> ()");
  m.def("top_k_renorm_probs(Tensor(a!) renorm_probs, Tensor probs, Tensor? maybe_top_k_arr, int top_k_val) -> ()");
  m.def("top_k_mask_logits(Tensor(a!) mask_logits, Tensor logits, Tensor? maybe_top_k_arr, int top_k_val) -> ()");
  // Chain speculative sampling: draft_probs [B, n, V], draft_token_ids int32 [B, n],
  // target_probs [B, n+1, V]; output_token_ids int32 [B, n+1]; the two int32 [B] counters are
  // added to.
  m.def(
      "chain_speculative_sampling(Tensor(a!) output_token_ids, Tensor(b!) output_accepted_token_num, "
      "Tensor(c!) output_emitted_draft_token_num, Tensor draft_probs, Tensor draft_token_ids, "
      "Tensor target_probs, bool deterministic, Tensor seed, Tensor(d!) offset) -> ()");
}
}  // namespace flashinfer_ops
