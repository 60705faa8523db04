#include "schemas.h"

namespace flashinfer_ops {
void register_rope(torch::Library& m) {
  // RoPE with explicit positions. q [nnz, Hq, D], k [nnz, Hk, D], pos_ids [nnz] int32/int64.
  // The first rotary_dim dims of each head are rotated (interleave: pairs (2j, 2j+1), else
  // (j, j + rotary_dim/2)); the rest are copied. llama31 picks the Llama-3.1 frequency blend
  // (low/high_freq_factor, old_context_len), otherwise freq / rope_scale. fp32 math.
  // FlashInfer's indptr/offsets form is mapped to pos_ids by the facade (device ops, no sync).
  m.def(
      "apply_rope_pos_ids(Tensor(a!) q_out, Tensor(b!) k_out, Tensor q, Tensor k, Tensor pos_ids, "
      "int rotary_dim, bool interleave, float rope_scale, float rope_theta, bool llama31, "
      "float low_freq_factor, float high_freq_factor, float old_context_len) -> ()");
  m.def(
      "apply_rope_pos_ids_inplace(Tensor(a!) q, Tensor(b!) k, Tensor pos_ids, "
      "int rotary_dim, bool interleave, float rope_scale, float rope_theta, bool llama31, "
      "float low_freq_factor, float high_freq_factor, float old_context_len) -> ()");
  // vLLM/SGLang cos/sin cache: cos_sin_cache [max_pos, rotary_dim] fp32 (cos | sin halves),
  // positions [nnz]; q [nnz, Hq, head_size], k [nnz, Hk, head_size]; is_neox = rotate-half.
  m.def(
      "apply_rope_with_cos_sin_cache(Tensor(a!) q_out, Tensor(b!) k_out, Tensor q, Tensor k, "
      "Tensor cos_sin_cache, Tensor positions, bool is_neox) -> ()");
  m.def(
      "apply_rope_with_cos_sin_cache_inplace(Tensor(a!) q, Tensor(b!) k, Tensor cos_sin_cache, "
      "Tensor positions, bool is_neox) -> ()");
  // Fused RoPE (cos/sin cache) + fp8 quantisation: out = fp8(rotate(x_rope) * scale),
  // fp8(x_nope * scale); q uses quant_scale_q, k quant_scale_kv. Outputs: any of the four fp8
  // formats (OCP e4m3fn/e5m2, FNUZ e4m3fnuz/e5m2fnuz), named by quantize_dtype; the fp8 outputs
  // are passed as uint8 views of their bytes (torch's CPU ops, and so opcheck, cannot compare fp8
  // tensors). k may be 2-D [nnz, dim] (MLA). q_nope/k_nope may have zero width.
  m.def(
      "rope_quantize_fp8(Tensor(a!) q_rope_out, Tensor(b!) k_rope_out, Tensor(c!) q_nope_out, "
      "Tensor(d!) k_nope_out, Tensor q_rope, Tensor k_rope, Tensor q_nope, Tensor k_nope, "
      "Tensor cos_sin_cache, Tensor pos_ids, bool is_neox, float quant_scale_q, "
      "float quant_scale_kv, ScalarType quantize_dtype) -> ()");
  // The same for q (dense outputs) while K (rope | nope) and V go straight into a paged fp8 cache
  // at (batch_indices[t], positions[t]) through kv_indptr/kv_indices. GQA/MHA: k_cache/v_cache
  // 4-D (kv_layout 0 NHD, 1 HND), v given. MLA: k_cache = ckv_cache [pages, P, nope],
  // v_cache = kpe_cache [pages, P, rope], v None. Caches and q outputs: uint8 views of fp8 bytes.
  m.def(
      "rope_quantize_fp8_append_paged_kv_cache(Tensor(a!) q_rope_out, Tensor(b!) q_nope_out, "
      "Tensor(c!) k_cache, Tensor(d!) v_cache, Tensor q_rope, Tensor k_rope, Tensor q_nope, "
      "Tensor k_nope, Tensor? v, Tensor cos_sin_cache, Tensor pos_ids, Tensor kv_indices, "
      "Tensor kv_indptr, Tensor batch_indices, Tensor positions, bool is_neox, "
      "float quant_scale_q, float quant_scale_kv, int kv_layout, ScalarType quantize_dtype) -> ()");
}
}  // namespace flashinfer_ops
