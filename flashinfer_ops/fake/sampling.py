"""Metadata contracts of the sampling ops (the checks every implementation runs first) and fakes."""
from typing import Optional

import torch

from .._checks import check_dtype, check_last_dim_contiguous, check_ndim, check_out, check_same_device, check_shape

DIST_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INDEX_DTYPES = (torch.int32,)


def check_dist(name: str, t: torch.Tensor, ndim: int = 2) -> None:
    check_ndim(name, t, (ndim,))
    check_dtype(name, t, DIST_DTYPES)
    check_last_dim_contiguous(name, t)


def check_rng(seed: torch.Tensor, offset: torch.Tensor, like: torch.Tensor) -> None:
    for name, t in (("seed", seed), ("offset", offset)):
        check_shape(name, t, (1,))
        check_dtype(name, t, (torch.int64,))
    check_same_device([("probs", like), ("seed", seed), ("offset", offset)])


def check_param(name: str, arr: Optional[torch.Tensor], n_rows: int, dtypes) -> None:
    if arr is None:
        return
    check_ndim(name, arr, (1,))
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name}: expected length {n_rows} (one per input row), got {arr.shape[0]}")
    check_dtype(name, arr, dtypes)


def _check_sampler(samples, probs, indices, seed, offset, name="probs"):
    check_dist(name, probs)
    if indices is not None:
        check_ndim("indices", indices, (1,))
        check_dtype("indices", indices, INDEX_DTYPES)
        check_same_device([(name, probs), ("indices", indices)])
    n_out = indices.shape[0] if indices is not None else probs.shape[0]
    check_out("samples", samples, (n_out,), torch.int32, probs.device)
    check_rng(seed, offset, probs)


def check_sampling_from_probs(samples, probs, indices, deterministic, seed, offset):
    _check_sampler(samples, probs, indices, seed, offset)


def check_sampling_from_logits(samples, logits, indices, deterministic, seed, offset):
    _check_sampler(samples, logits, indices, seed, offset, "logits")


def check_top_p_sampling(samples, probs, indices, maybe_top_p_arr, top_p_val, deterministic, seed, offset):
    _check_sampler(samples, probs, indices, seed, offset)
    check_param("top_p", maybe_top_p_arr, probs.shape[0], (torch.float32,))


def check_top_k_sampling(samples, probs, indices, maybe_top_k_arr, top_k_val, deterministic, seed, offset):
    _check_sampler(samples, probs, indices, seed, offset)
    check_param("top_k", maybe_top_k_arr, probs.shape[0], (torch.int32,))


def check_min_p_sampling(samples, probs, indices, maybe_min_p_arr, min_p_val, deterministic, seed, offset):
    _check_sampler(samples, probs, indices, seed, offset)
    check_param("min_p", maybe_min_p_arr, probs.shape[0], (torch.float32,))


def check_top_k_top_p_sampling(samples, probs, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr, top_p_val,
                               deterministic, seed, offset):
    _check_sampler(samples, probs, indices, seed, offset)
    check_param("top_k", maybe_top_k_arr, probs.shape[0], (torch.int32,))
    check_param("top_p", maybe_top_p_arr, probs.shape[0], (torch.float32,))


def check_top_k_top_p_sampling_from_logits(samples, logits, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                           top_p_val, deterministic, seed, offset):
    _check_sampler(samples, logits, indices, seed, offset, "logits")
    check_param("top_k", maybe_top_k_arr, logits.shape[0], (torch.int32,))
    check_param("top_p", maybe_top_p_arr, logits.shape[0], (torch.float32,))


def check_softmax(out, logits, maybe_temperature_arr, temperature_val):
    check_dist("logits", logits)
    check_out("out", out, logits.shape, torch.float32, logits.device)
    check_last_dim_contiguous("out", out)
    check_param("temperature", maybe_temperature_arr, logits.shape[0], (torch.float32,))


def _check_filter(out, x, arr, name, out_name, arr_name, arr_dtypes):
    check_dist(name, x)
    check_out(out_name, out, x.shape, torch.float32, x.device)
    check_last_dim_contiguous(out_name, out)
    check_param(arr_name, arr, x.shape[0], arr_dtypes)


def check_top_p_renorm(renorm_probs, probs, maybe_top_p_arr, top_p_val):
    _check_filter(renorm_probs, probs, maybe_top_p_arr, "probs", "renorm_probs", "top_p", (torch.float32,))


def check_top_k_renorm(renorm_probs, probs, maybe_top_k_arr, top_k_val):
    _check_filter(renorm_probs, probs, maybe_top_k_arr, "probs", "renorm_probs", "top_k", (torch.int32,))


def check_top_k_mask_logits(mask_logits, logits, maybe_top_k_arr, top_k_val):
    _check_filter(mask_logits, logits, maybe_top_k_arr, "logits", "mask_logits", "top_k", (torch.int32,))


def check_chain_speculative(output_token_ids, output_accepted_token_num, output_emitted_draft_token_num,
                            draft_probs, draft_token_ids, target_probs, deterministic, seed, offset):
    check_dist("draft_probs", draft_probs, 3)
    check_dist("target_probs", target_probs, 3)
    b, n, v = draft_probs.shape
    check_shape("target_probs", target_probs, (b, n + 1, v))
    check_shape("draft_token_ids", draft_token_ids, (b, n))
    check_dtype("draft_token_ids", draft_token_ids, INDEX_DTYPES)
    check_out("output_token_ids", output_token_ids, (b, n + 1), torch.int32, draft_probs.device)
    check_last_dim_contiguous("output_token_ids", output_token_ids)
    check_out("output_accepted_token_num", output_accepted_token_num, (b,), torch.int32, draft_probs.device)
    check_out("output_emitted_draft_token_num", output_emitted_draft_token_num, (b,), torch.int32, draft_probs.device)
    check_same_device([("draft_probs", draft_probs), ("target_probs", target_probs), ("draft_token_ids", draft_token_ids)])
    check_rng(seed, offset, draft_probs)
