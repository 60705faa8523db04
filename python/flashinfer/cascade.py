"""Cascade attention: merging attention states (``merge_state``, ``merge_state_in_place``,
``merge_states``). A state is ``(v, s)``: ``v`` the normalised partial attention output and ``s``
its log-sum-exp in **base 2**; merging two states gives the attention over the union of their keys.
Each function is one ``torch.ops.flashinfer`` operator (Triton on the GPU).

Not here yet: ``MultiLevelCascadeAttentionWrapper`` and the shared-prefix wrappers.
"""
from typing import Optional, Tuple

import torch

import flashinfer_ops  # noqa: F401  (registers torch.ops.flashinfer)

_ops = torch.ops.flashinfer


def merge_state(
    v_a: torch.Tensor, s_a: torch.Tensor, v_b: torch.Tensor, s_b: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Merge two attention states.

    Args:
        v_a: ``[seq_len, num_heads, head_dim]`` fp16/bf16/fp32 (head_dim <= 512).
        s_a: ``[seq_len, num_heads]`` base-2 LSE (converted to float32).
        v_b, s_b: the other state, same shapes and ``v`` dtype.

    Returns:
        ``(v_merged [seq_len, num_heads, head_dim]`` in ``v_a``'s dtype,
        ``s_merged [seq_len, num_heads]`` float32).
    """
    s_a, s_b = s_a.to(torch.float32), s_b.to(torch.float32)
    v_out = torch.empty_like(v_a)
    s_out = torch.empty(v_a.shape[:2], dtype=torch.float32, device=v_a.device)
    _ops.merge_state.default(v_out, s_out, v_a, s_a, v_b, s_b)
    return v_out, s_out


def merge_state_in_place(
    v: torch.Tensor, s: torch.Tensor, v_other: torch.Tensor, s_other: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
) -> None:
    r"""Merge ``(v_other, s_other)`` into ``(v, s)`` in place.

    Args:
        v: ``[seq_len, num_heads, head_dim]``, updated in place.
        s: ``[seq_len, num_heads]`` float32, updated in place (must already be float32: upstream
            converts it first, so a non-float32 ``s`` was silently updated in a temporary).
        v_other, s_other: the other state (``s_other`` is converted to float32).
        mask: optional bool/uint8 ``[seq_len]``; rows with False are left untouched.
    """
    if s.dtype != torch.float32:
        raise ValueError(f"s: must be float32 to be updated in place, got {s.dtype}")
    _ops.merge_state_in_place.default(v, s, v_other, s_other.to(torch.float32), mask)


def merge_states(v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Merge several attention states per row.

    Args:
        v: ``[seq_len, num_states, num_heads, head_dim]``.
        s: ``[seq_len, num_states, num_heads]`` (converted to float32).

    Returns:
        ``(v_merged [seq_len, num_heads, head_dim]`` in ``v``'s dtype,
        ``s_merged [seq_len, num_heads]`` float32).
    """
    s = s.to(torch.float32)
    seq, _, h, d = v.shape
    v_out = torch.empty(seq, h, d, dtype=v.dtype, device=v.device)
    s_out = torch.empty(seq, h, dtype=torch.float32, device=v.device)
    _ops.merge_states.default(v_out, s_out, v, s)
    return v_out, s_out


__all__ = ["merge_state", "merge_state_in_place", "merge_states"]
