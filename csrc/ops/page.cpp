#include "schemas.h"

namespace flashinfer_ops {
void register_page(torch::Library& m) {
  // Scatter append_key/append_value [nnz, H, D] into k_cache/v_cache (4-D; kv_layout 0 NHD
  // [pages, P, H, D], 1 HND [pages, H, P, D]; may be the two halves of one 5-D cache): token t of
  // request batch_indices[t] at position positions[t] goes to page
  // kv_indices[kv_indptr[b] + pos // P], slot pos % P. Same dtype in and out: fp16, bf16, or
  // uint8 (fp8 caches and rows passed as byte views: a bit copy). Index tensors int32.
  m.def(
      "append_paged_kv_cache(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor append_key, "
      "Tensor append_value, Tensor batch_indices, Tensor positions, Tensor kv_indices, "
      "Tensor kv_indptr, Tensor kv_last_page_len, int kv_layout) -> ()");
  m.def(
      "append_paged_kv_cache.aiter(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor append_key, "
      "Tensor append_value, Tensor batch_indices, Tensor positions, Tensor kv_indices, "
      "Tensor kv_indptr, Tensor kv_last_page_len, int kv_layout) -> ()");
  // MLA: append_ckv [nnz, D_ckv] -> ckv_cache [pages, P, D_ckv], append_kpe [nnz, D_kpe] ->
  // kpe_cache [pages, P, D_kpe].
  m.def(
      "append_paged_mla_kv_cache(Tensor(a!) ckv_cache, Tensor(b!) kpe_cache, Tensor append_ckv, "
      "Tensor append_kpe, Tensor batch_indices, Tensor positions, Tensor kv_indices, "
      "Tensor kv_indptr, Tensor kv_last_page_len) -> ()");
}
}  // namespace flashinfer_ops
