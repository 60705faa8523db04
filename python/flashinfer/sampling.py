"""Sampling: softmax, sorting-free samplers, top-k / top-p filters, chain speculative sampling.

FlashInfer's ``flashinfer.sampling`` API on torch.ops.flashinfer operators. Every sampler is one
operator call (``top_k_first`` orders compose two or three), capturable in a CUDA graph and
traceable by ``torch.compile(fullgraph=True)``.

Random numbers (how ``generator`` maps onto the ops' ``seed`` / ``offset`` tensors)
------------------------------------------------------------------------------------
Each op takes two int64 ``[1]`` device tensors, ``seed`` and ``offset``; the kernel draws Philox
numbers keyed by ``(seed, offset + counter)`` and advances ``offset`` on the device by the call's
increment (FlashInfer's: ``batch`` for sampling_from_probs and min-p, ``batch*vocab`` for
sampling_from_logits, ``batch*32`` for the top-k / top-p rejection samplers, ``batch*(n+1)`` for
chain speculative sampling, each rounded up to a multiple of 4).

For a CUDA device there is one such pair per ``(device, generator)``; ``generator=None`` means
PyTorch's default generator of that device (``torch.cuda.default_generators[i]``), so
``torch.manual_seed`` reproduces a run and two calls draw different numbers (FlashInfer 0.5.3's
fresh-generator-per-call behaviour, spec §17 row 6, is deliberately not copied).

* Eager call (not capturing, not compiling): if the generator's ``(initial_seed(), get_offset())``
  differs from what the pair last mirrored (``torch.manual_seed``, ``generator.manual_seed``,
  ``set_offset`` or any other PyTorch op that used the generator), the pair is re-filled from the
  generator (two tiny fills, no host sync). The generator's offset is then advanced on the host by
  the increment, exactly as FlashInfer does, and the kernel advances the device offset by the same
  amount, so the two stay equal and steady-state calls launch nothing extra.
* CUDA-graph capture and ``torch.compile`` tracing: the seed is drawn by PyTorch's own RNG on the
  device (``torch.randint(..., generator=generator)``, one tiny kernel) and the offset is a fresh
  zero tensor. PyTorch's graph-safe Philox bookkeeping then gives fresh numbers on every replay
  (and on every call of a compiled function), and ``torch.manual_seed(s)`` before a series of
  replays reproduces the series. An explicit generator inside a capture must be registered with
  the graph (``graph.register_generator_state(generator)``), as for any PyTorch RNG op.

On CPU tensors the facade takes the seed the same way from the CPU generator (offset 0) and the CPU
kernels (flashinfer_ops/reference/sampling.py) draw from a torch.Generator seeded from
``(seed, offset)``, so ``torch.manual_seed`` reproduces CPU runs too.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import torch

import flashinfer_ops  # noqa: F401  (registers torch.ops.flashinfer)
from flashinfer_ops.configs.sampling import split_enabled
from flashinfer_ops.launch.sampling import f32_dummy, ticket
from flashinfer_ops.launch.sampling_split import workspace
from flashinfer_ops.reference.sampling import ROUNDS_PER_ROW, rng_increment

_ops = torch.ops.flashinfer

__all__ = [
    "softmax", "sampling_from_logits", "sampling_from_probs", "top_p_sampling_from_probs",
    "top_k_sampling_from_probs", "min_p_sampling_from_probs", "top_k_top_p_sampling_from_probs",
    "top_k_top_p_sampling_from_logits", "top_p_renorm_probs", "top_k_renorm_probs", "top_p_renorm_prob",
    "top_k_renorm_prob", "top_k_mask_logits", "chain_speculative_sampling",
]


# ---- random state ---------------------------------------------------------------------------

class _DeviceRng:
    __slots__ = ("generator", "seed", "offset", "mirror")

    def __init__(self, generator: torch.Generator, device: torch.device):
        self.generator = generator  # kept alive so id() keys stay unique
        self.seed = torch.zeros(1, dtype=torch.int64, device=device)
        self.offset = torch.zeros(1, dtype=torch.int64, device=device)
        self.mirror: Optional[Tuple[int, int]] = None


_RNG: Dict[Tuple[torch.device, int], _DeviceRng] = {}


def _signed64(x: int) -> int:
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= (1 << 63) else x


def _busy() -> bool:
    if torch.compiler.is_compiling():
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _fresh_seed(device: torch.device, generator: Optional[torch.Generator]):
    """A seed drawn by PyTorch's own RNG (graph-safe and traceable) and a zero offset."""
    if generator is None:
        seed = torch.randint(0, 1 << 62, (1,), dtype=torch.int64, device=device)
    else:
        seed = torch.randint(0, 1 << 62, (1,), dtype=torch.int64, device=device, generator=generator)
    return seed, torch.zeros(1, dtype=torch.int64, device=device)


def _seed_offset(device: torch.device, generator: Optional[torch.Generator], increment: int):
    """The (seed, offset) tensors for one op call on `device` (see the module docstring)."""
    if device.type != "cuda" or _busy():
        return _fresh_seed(device, generator)
    index = device.index if device.index is not None else torch.cuda.current_device()
    device = torch.device("cuda", index)
    gen = generator if generator is not None else torch.cuda.default_generators[index]
    key = (device, id(gen))
    st = _RNG.get(key)
    if st is None:
        st = _DeviceRng(gen, device)
        _RNG[key] = st
        ticket(device)
        f32_dummy(device)
        workspace(device, 1)
    state = (gen.initial_seed(), gen.get_offset())
    if state != st.mirror:
        st.seed.fill_(_signed64(state[0]))
        st.offset.fill_(_signed64(state[1]))
    new_offset = state[1] + rng_increment(increment)
    gen.set_offset(new_offset)
    st.mirror = (state[0], new_offset)
    return st.seed, st.offset


# ---- argument handling (FlashInfer's conventions, spec §11.1) -------------------------------

def _check_tensor_param(param, tensor: torch.Tensor) -> None:
    if isinstance(param, torch.Tensor):
        if param.dim() == 0:
            raise ValueError(
                "Expected a 1D tensor of shape (batch_size,) or scalar for the sampling parameter, "
                f"but got a 0-dimensional tensor with shape {tuple(param.shape)}."
            )
        if param.dim() > 1:
            raise ValueError(
                "Expected a 1D tensor or scalar for the sampling parameter, "
                f"but got a {param.dim()}D tensor with shape {tuple(param.shape)}."
            )
        if param.shape[0] != tensor.shape[0]:
            raise ValueError(
                "Sampling parameter tensor batch size mismatch: "
                f"expected length {tensor.shape[0]} to match the reference tensor batch size, "
                f"but got length {param.shape[0]} with shape {tuple(param.shape)}."
            )


def _float_param(param, tensor) -> Tuple[Optional[torch.Tensor], float]:
    _check_tensor_param(param, tensor)
    if isinstance(param, torch.Tensor):
        return param.to(device=tensor.device, dtype=torch.float32), 0.0
    return None, float(param)


def _int_param(param, tensor) -> Tuple[Optional[torch.Tensor], int]:
    _check_tensor_param(param, tensor)
    if isinstance(param, torch.Tensor):
        return param.to(device=tensor.device, dtype=torch.int32), 0
    return None, int(param)


def _indices(indices: Optional[torch.Tensor], tensor: torch.Tensor) -> Optional[torch.Tensor]:
    if indices is None:
        return None
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"indices: expected a tensor or None, got {type(indices).__name__}")
    return indices if indices.dtype == torch.int32 else indices.to(torch.int32)


def _check_nan(x: torch.Tensor, what: str) -> None:
    if torch.isnan(x).any():
        raise ValueError(f"Input {what} contains NaN.")


def _samples_out(x: torch.Tensor, indices: Optional[torch.Tensor]) -> torch.Tensor:
    n = indices.shape[0] if indices is not None else x.shape[0]
    return torch.empty(n, dtype=torch.int32, device=x.device)


def _rows(x: torch.Tensor) -> int:
    return x.shape[0] if x.dim() > 0 else 0


# ---- public API -----------------------------------------------------------------------------

def _sample_filtered(op, probs, threshold, indices, deterministic, generator, check_nan, rng_per_row):
    """Shared body of the single-threshold samplers: validate, allocate the int32 samples, draw
    (seed, offset) advancing the generator by rng_per_row per sample, run `op`."""
    if check_nan:
        _check_nan(probs, "probs")
    arr, val = threshold
    indices = _indices(indices, probs)
    samples = _samples_out(probs, indices)
    seed, offset = _seed_offset(probs.device, generator, samples.shape[0] * rng_per_row)
    op(samples, probs, indices, arr, val, deterministic, seed, offset)
    return samples


def softmax(
    logits: torch.Tensor,
    temperature: Optional[Union[torch.Tensor, float]] = None,
    enable_pdl: Optional[bool] = None,
) -> torch.Tensor:
    r"""Safe softmax of ``logits / temperature`` (online max and sum; ``-inf`` entries give 0).

    Args:
        logits: ``[batch_size, vocab_size]`` (fp32 / fp16 / bf16).
        temperature: ``None`` (1.0), a float, or a ``[batch_size]`` tensor of per-row temperatures.
        enable_pdl: ignored (no PDL on AMD).

    Returns:
        ``[batch_size, vocab_size]`` float32 probabilities.
    """
    if temperature is None:
        temperature = 1.0
    t_arr, t_val = _float_param(temperature, logits)
    out = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    _ops.softmax.default(out, logits, t_arr, t_val)
    return out


def sampling_from_logits(
    logits: torch.Tensor,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Categorical sample from ``softmax(logits)`` without materialising the probabilities.

    Args:
        logits: ``[batch_size, vocab_size]``.
        indices: optional int32 ``[batch_out]``: output row ``i`` samples from row ``indices[i]``.
        deterministic: accepted; the kernels are always deterministic for a given (seed, offset).
        generator: torch.Generator of the device (``None``: the default one).
        check_nan: raise ``ValueError`` if ``logits`` contains NaN (synchronises the host).

    Returns:
        int32 ``[batch_out]`` token ids.
    """
    if check_nan:
        _check_nan(logits, "logits")
    indices = _indices(indices, logits)
    samples = _samples_out(logits, indices)
    seed, offset = _seed_offset(logits.device, generator, samples.shape[0] * logits.shape[-1])
    _ops.sampling_from_logits.default(samples, logits, indices, deterministic, seed, offset)
    return samples


def sampling_from_probs(
    probs: torch.Tensor,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Inverse-CDF sample from ``probs`` (``[batch_size, vocab_size]``); zero-probability tokens
    are never chosen. ``indices``, ``generator``, ``check_nan`` as in :func:`sampling_from_logits`.

    Returns:
        int32 ``[batch_out]``.
    """
    if check_nan:
        _check_nan(probs, "probs")
    indices = _indices(indices, probs)
    samples = _samples_out(probs, indices)
    seed, offset = _seed_offset(probs.device, generator, samples.shape[0])
    _ops.sampling_from_probs.default(samples, probs, indices, deterministic, seed, offset)
    return samples


def top_p_sampling_from_probs(
    probs: torch.Tensor,
    top_p: Union[torch.Tensor, float],
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Nucleus (top-p) sampling by rejection sampling with pivots (no sort).

    A token is in the nucleus when the mass of strictly more probable tokens is ``< top_p``.

    Args:
        probs: ``[batch_size, vocab_size]``.
        top_p: float or ``[batch_size]`` tensor (one per *input* row).
        indices, deterministic, generator, check_nan: as in :func:`sampling_from_probs`.

    Returns:
        int32 ``[batch_out]``.
    """
    return _sample_filtered(_ops.top_p_sampling_from_probs.default, probs, _float_param(top_p, probs), indices,
                            deterministic, generator, check_nan, ROUNDS_PER_ROW)


def top_k_sampling_from_probs(
    probs: torch.Tensor,
    top_k: Union[torch.Tensor, int],
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Top-k sampling: sample among the tokens ``>=`` the k-th largest probability (ties kept;
    ``top_k <= 0`` or ``>= vocab_size`` keeps every token).

    Args:
        probs: ``[batch_size, vocab_size]``.
        top_k: int or ``[batch_size]`` tensor.
        indices, deterministic, generator, check_nan: as in :func:`sampling_from_probs`.

    Returns:
        int32 ``[batch_out]``.
    """
    return _sample_filtered(_ops.top_k_sampling_from_probs.default, probs, _int_param(top_k, probs), indices,
                            deterministic, generator, check_nan, ROUNDS_PER_ROW)


def min_p_sampling_from_probs(
    probs: torch.Tensor,
    min_p: Union[torch.Tensor, float],
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Min-p sampling: keep tokens with ``p >= min_p * max(p)``, then sample.

    Args:
        probs: ``[batch_size, vocab_size]``.
        min_p: float or ``[batch_size]`` tensor.
        indices, deterministic, generator, check_nan: as in :func:`sampling_from_probs`.

    Returns:
        int32 ``[batch_out]``.
    """
    return _sample_filtered(_ops.min_p_sampling_from_probs.default, probs, _float_param(min_p, probs), indices,
                            deterministic, generator, check_nan, 1)


def top_k_top_p_sampling_from_probs(
    probs: torch.Tensor,
    top_k: Union[torch.Tensor, int],
    top_p: Union[torch.Tensor, float],
    indices: Optional[torch.Tensor] = None,
    filter_apply_order: str = "top_k_first",
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Top-k and top-p sampling from probabilities.

    ``filter_apply_order="top_k_first"``: :func:`top_k_renorm_probs` then
    :func:`top_p_sampling_from_probs` (top-p on the renormalised top-k mass). ``"joint"``: one
    kernel; a token is eligible when it is in the top-k and in the top-p nucleus of ``probs``.

    Args:
        probs: ``[batch_size, vocab_size]``.
        top_k: int or ``[batch_size]`` tensor; top_p: float or ``[batch_size]`` tensor.
        indices, deterministic, generator, check_nan: as in :func:`sampling_from_probs`.

    Returns:
        int32 ``[batch_out]``.
    """
    if filter_apply_order == "top_k_first":
        renorm = top_k_renorm_probs(probs, top_k)
        return top_p_sampling_from_probs(renorm, top_p, indices, deterministic, generator=generator,
                                         check_nan=check_nan)
    if filter_apply_order != "joint":
        raise ValueError(f"Invalid filter_apply_order {filter_apply_order}")
    return _top_k_top_p_op(_ops.top_k_top_p_sampling_from_probs, probs, "probs", top_k, top_p, indices,
                           deterministic, generator, check_nan)


def _top_k_top_p_op(op, x, name, top_k, top_p, indices, deterministic, generator, check_nan):
    """One call of a top-k + top-p sampling op over `x` ([batch, vocab] probs or logits)."""
    if check_nan:
        _check_nan(x, name)
    k_arr, k_val = _int_param(top_k, x)
    p_arr, p_val = _float_param(top_p, x)
    indices = _indices(indices, x)
    samples = _samples_out(x, indices)
    seed, offset = _seed_offset(x.device, generator, samples.shape[0] * ROUNDS_PER_ROW)
    op.default(samples, x, indices, k_arr, k_val, p_arr, p_val, deterministic, seed, offset)
    return samples


def top_k_top_p_sampling_from_logits(
    logits: torch.Tensor,
    top_k: Union[torch.Tensor, int],
    top_p: Union[torch.Tensor, float],
    indices: Optional[torch.Tensor] = None,
    filter_apply_order: str = "top_k_first",
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Top-k and top-p sampling from logits.

    ``"top_k_first"``: top-p sampling (the rule of :func:`top_p_sampling_from_probs`) from
    ``softmax(top_k_mask_logits(logits, top_k))``, in one operator: for a scalar ``top_k`` below
    ``vocab_size`` (up to 256) a vocabulary-split radix select of the k-th largest logit, then one
    draw from the survivors; otherwise mask -> softmax -> rejection sampling. The generator
    advances as for :func:`top_p_sampling_from_probs`. (``FLASHINFER_SAMPLING_SPLIT=0``: the three
    separate ops, as before.)
    ``"joint"``: softmax -> the joint kernel of :func:`top_k_top_p_sampling_from_probs`.

    Args:
        logits: ``[batch_size, vocab_size]``; other arguments as in
        :func:`top_k_top_p_sampling_from_probs` (``check_nan`` checks ``logits`` for
        ``"top_k_first"``, the probabilities for ``"joint"``).

    Returns:
        int32 ``[batch_out]``.
    """
    if filter_apply_order == "top_k_first" and split_enabled():
        return _top_k_top_p_op(_ops.top_k_top_p_sampling_from_logits, logits, "logits", top_k, top_p, indices,
                               deterministic, generator, check_nan)
    if filter_apply_order == "top_k_first":
        masked = top_k_mask_logits(logits, top_k)
        probs = softmax(masked)
        return top_p_sampling_from_probs(probs, top_p, indices, deterministic, generator=generator,
                                         check_nan=check_nan)
    if filter_apply_order != "joint":
        raise ValueError(f"Invalid filter_apply_order {filter_apply_order}")
    probs = softmax(logits)
    return top_k_top_p_sampling_from_probs(probs, top_k, top_p, indices, "joint", deterministic,
                                           generator=generator, check_nan=check_nan)


def top_p_renorm_probs(probs: torch.Tensor, top_p: Union[torch.Tensor, float]) -> torch.Tensor:
    r"""Zero the tokens outside the top-p nucleus and renormalise (threshold found by bisection,
    no sort).

    Args:
        probs: ``[batch_size, vocab_size]``.
        top_p: float or ``[batch_size]`` tensor.

    Returns:
        float32 ``[batch_size, vocab_size]``.
    """
    p_arr, p_val = _float_param(top_p, probs)
    out = torch.empty(probs.shape, dtype=torch.float32, device=probs.device)
    _ops.top_p_renorm_probs.default(out, probs, p_arr, p_val)
    return out


def top_k_renorm_probs(probs: torch.Tensor, top_k: Union[torch.Tensor, int]) -> torch.Tensor:
    r"""Keep the tokens ``>=`` the k-th largest probability (ties kept) and renormalise.

    Args:
        probs: ``[batch_size, vocab_size]``.
        top_k: int or ``[batch_size]`` tensor (``<= 0`` or ``>= vocab_size``: keep all).

    Returns:
        float32 ``[batch_size, vocab_size]``.
    """
    k_arr, k_val = _int_param(top_k, probs)
    out = torch.empty(probs.shape, dtype=torch.float32, device=probs.device)
    _ops.top_k_renorm_probs.default(out, probs, k_arr, k_val)
    return out


top_p_renorm_prob = top_p_renorm_probs
top_k_renorm_prob = top_k_renorm_probs


def top_k_mask_logits(logits: torch.Tensor, top_k: Union[torch.Tensor, int]) -> torch.Tensor:
    r"""Set every logit below the k-th largest of its row to ``-inf`` (ties kept), so that
    ``softmax(top_k_mask_logits(x, k)) == top_k_renorm_probs(softmax(x), k)``.

    Args:
        logits: ``[batch_size, vocab_size]``.
        top_k: int or ``[batch_size]`` tensor.

    Returns:
        float32 ``[batch_size, vocab_size]``.
    """
    k_arr, k_val = _int_param(top_k, logits)
    out = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    _ops.top_k_mask_logits.default(out, logits, k_arr, k_val)
    return out


def chain_speculative_sampling(
    draft_probs: torch.Tensor,
    draft_token_ids: torch.Tensor,
    target_probs: torch.Tensor,
    maybe_output_accepted_token_num: Optional[torch.Tensor] = None,
    maybe_output_emitted_draft_token_num: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Speculative (rejection) sampling along a chain of draft tokens.

    Draft token ``i`` is accepted when ``u_i * q_i(d_i) < p_i(d_i)``; at the first rejection a
    token is drawn from ``relu(p_i - q_i)`` (renormalised) and the rest of the row is ``-1``; when
    every draft token is accepted a bonus token is drawn from ``p_n``.

    Args:
        draft_probs: ``[batch_size, num_speculate_tokens, vocab_size]``.
        draft_token_ids: int32 ``[batch_size, num_speculate_tokens]``.
        target_probs: ``[batch_size, num_speculate_tokens + 1, vocab_size]``.
        maybe_output_accepted_token_num: optional int32 ``[batch_size]``, added to in place: per
            request, the number of draft tokens that pass the test when each is tested on its own.
        maybe_output_emitted_draft_token_num: optional int32 ``[batch_size]``, added to in place:
            the number of draft tokens emitted (accepted before the first rejection).
        deterministic, generator: as in :func:`sampling_from_probs`.

    Returns:
        ``(output_token_ids [batch_size, num_speculate_tokens + 1] int32, accepted, emitted)``.
    """
    b = draft_probs.shape[0]
    n = draft_probs.shape[1] if draft_probs.dim() == 3 else 0
    dev = draft_probs.device
    acc = maybe_output_accepted_token_num
    if acc is None:
        acc = torch.zeros(b, dtype=torch.int32, device=dev)
    emit = maybe_output_emitted_draft_token_num
    if emit is None:
        emit = torch.zeros(b, dtype=torch.int32, device=dev)
    if isinstance(draft_token_ids, torch.Tensor) and draft_token_ids.dtype != torch.int32:
        draft_token_ids = draft_token_ids.to(torch.int32)
    out = torch.empty(b, n + 1, dtype=torch.int32, device=dev)
    seed, offset = _seed_offset(dev, generator, b * (n + 1))
    _ops.chain_speculative_sampling.default(out, acc, emit, draft_probs, draft_token_ids, target_probs,
                                            deterministic, seed, offset)
    return out, acc, emit


def get_sampling_module():
    """FlashInfer's raw-op namespace: functions ``(probs, indices, maybe_arr, scalar,
    deterministic, generator) -> samples`` over the same operators (AITER's calling convention)."""
    import types

    def _raw(op, rounds, *params):
        def fn(x, indices, *args):
            *vals, deterministic, generator = args
            samples = _samples_out(x, indices)
            inc = samples.shape[0] * rounds
            seed, offset = _seed_offset(x.device, generator, inc)
            flat = []
            for kind, (arr, val) in zip(params, zip(vals[0::2], vals[1::2])):
                if kind == "int":
                    flat += [arr.to(torch.int32) if arr is not None else None, int(val)]
                else:
                    flat += [arr.to(torch.float32) if arr is not None else None, float(val)]
            op(samples, x, _indices(indices, x), *flat, deterministic, seed, offset)
            return samples
        return fn

    return types.SimpleNamespace(
        sampling_from_probs=_raw(_ops.sampling_from_probs.default, 1),
        top_p_sampling_from_probs=_raw(_ops.top_p_sampling_from_probs.default, ROUNDS_PER_ROW, "float"),
        top_k_sampling_from_probs=_raw(_ops.top_k_sampling_from_probs.default, ROUNDS_PER_ROW, "int"),
        min_p_sampling_from_probs=_raw(_ops.min_p_sampling_from_probs.default, 1, "float"),
        top_k_top_p_sampling_from_probs=_raw(_ops.top_k_top_p_sampling_from_probs.default, ROUNDS_PER_ROW, "int",
                                             "float"),
    )
