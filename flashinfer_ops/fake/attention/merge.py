"""Metadata contracts (checks + fakes) of the attention-state merge ops."""
from typing import Optional

import torch

from ..._checks import check_dtype, check_last_dim_contiguous, check_ndim, check_out, check_same_device, check_shape

V_TYPES = (torch.float16, torch.bfloat16, torch.float32)


def _check_state(vname, v, sname, s, v_ndim):
    check_ndim(vname, v, (v_ndim,))
    check_dtype(vname, v, V_TYPES)
    check_last_dim_contiguous(vname, v)
    check_shape(sname, s, v.shape[:-1])
    check_dtype(sname, s, (torch.float32,))
    if v.shape[-1] > 512:
        raise ValueError(f"{vname}: head dim must be <= 512, got {v.shape[-1]}")


def check_merge_state(v_out, s_out, v_a, s_a, v_b, s_b) -> None:
    _check_state("v_a", v_a, "s_a", s_a, 3)
    check_out("v_b", v_b, v_a.shape, v_a.dtype, v_a.device)
    check_last_dim_contiguous("v_b", v_b)
    check_out("s_b", s_b, s_a.shape, torch.float32, v_a.device)
    check_out("v_out", v_out, v_a.shape, v_a.dtype, v_a.device)
    check_last_dim_contiguous("v_out", v_out)
    check_out("s_out", s_out, s_a.shape, torch.float32, v_a.device)
    check_same_device([("v_a", v_a), ("s_a", s_a), ("v_b", v_b), ("s_b", s_b)])


def check_merge_state_in_place(v, s, v_other, s_other, mask: Optional[torch.Tensor]) -> None:
    _check_state("v", v, "s", s, 3)
    check_out("v_other", v_other, v.shape, v.dtype, v.device)
    check_last_dim_contiguous("v_other", v_other)
    check_out("s_other", s_other, s.shape, torch.float32, v.device)
    if mask is not None:
        check_shape("mask", mask, v.shape[:1])
        check_dtype("mask", mask, (torch.bool, torch.uint8))
        check_same_device([("v", v), ("mask", mask)])
    check_same_device([("v", v), ("s", s), ("v_other", v_other), ("s_other", s_other)])


def check_merge_states(v_out, s_out, v, s) -> None:
    _check_state("v", v, "s", s, 4)
    seq, _, h, d = v.shape
    check_out("v_out", v_out, (seq, h, d), v.dtype, v.device)
    check_last_dim_contiguous("v_out", v_out)
    check_out("s_out", s_out, (seq, h), torch.float32, v.device)
    check_same_device([("v", v), ("s", s)])


merge_state_fake = check_merge_state
merge_state_in_place_fake = check_merge_state_in_place
merge_states_fake = check_merge_states
