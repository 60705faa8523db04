"""CUDA-key (Triton) and CPU-key (reference) implementations of the sampling ops."""
from typing import Dict

import torch
import triton

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ..configs import arch_family, sm_count
from ..configs.sampling import (
    BIG_BLOCK, NB_BUCKETS, SAMPLER_BLOCK, SMALL_BLOCK, SOFTMAX_ROWS_BLOCK, SPEC_BLOCK, row_block, sampler_tile,
    sampler_unroll, sampling_config, softmax_rows_block, softmax_rows_config, softmax_rows_grid, softmax_rows_pipe,
    spec_block,
    split_block, split_enabled, topk_cap,
)
from ..fake import sampling as contract
from ..kernels import sampling as K
from ..reference import sampling as ref
from . import sampling_split as split

MAX_ROUNDS = 32
MAX_ITERS = 40
_TICKETS: Dict[torch.device, torch.Tensor] = {}
_F32_DUMMY: Dict[torch.device, torch.Tensor] = {}


def ticket(device: torch.device) -> torch.Tensor:
    """A per-device int32 counter the kernels use to elect the program that advances offset; it is
    always back to 0 after a launch. Created on first use (outside graph capture)."""
    t = _TICKETS.get(device)
    if t is None:
        t = torch.zeros(1, dtype=torch.int32, device=device)
        _TICKETS[device] = t
    return t


def f32_dummy(device: torch.device) -> torch.Tensor:
    """A float32 placeholder for absent per-row float parameters (never read)."""
    t = _F32_DUMMY.get(device)
    if t is None:
        t = torch.zeros(1, dtype=torch.float32, device=device)
        _F32_DUMMY[device] = t
    return t


def _opts(device, block):
    fam = arch_family(device)
    return sampling_config(fam, block).options(fam)


def _launch_sampler(mode, samples, probs, indices, k_arr, k_val, p_arr, p_val, seed, offset, inc):
    n_out = samples.shape[0]
    vocab = probs.shape[1]
    if n_out == 0:
        return
    block, nb = sampler_tile(vocab)
    dummy = samples
    launch(K.sample_probs_kernel, (n_out,),
        samples, probs, indices if indices is not None else dummy,
        k_arr if k_arr is not None else dummy, p_arr if p_arr is not None else f32_dummy(probs.device),
        seed, offset, ticket(probs.device),
        n_out, vocab, probs.stride(0), int(k_val), float(p_val), ref.rng_increment(inc),
        int(indices is not None), int(k_arr is not None), int(p_arr is not None),
        MODE=mode, MAX_ROUNDS=MAX_ROUNDS, BLOCK=block, NB=nb, UNROLL=sampler_unroll(block),
        **_opts(probs.device, block),
    )


# ---- CUDA key ---------------------------------------------------------------------------------

def sampling_from_probs_cuda(samples, probs, indices, deterministic, seed, offset):
    contract.check_sampling_from_probs(samples, probs, indices, deterministic, seed, offset)
    _launch_sampler(K.MODE_PLAIN, samples, probs, indices, None, 0, None, 0.0, seed, offset, samples.shape[0])


def top_p_sampling_from_probs_cuda(samples, probs, indices, maybe_top_p_arr, top_p_val, deterministic, seed, offset):
    contract.check_top_p_sampling(samples, probs, indices, maybe_top_p_arr, top_p_val, deterministic, seed, offset)
    _launch_sampler(K.MODE_TOP_P, samples, probs, indices, None, 0, maybe_top_p_arr, top_p_val, seed, offset,
                    samples.shape[0] * ref.ROUNDS_PER_ROW)


def top_k_sampling_from_probs_cuda(samples, probs, indices, maybe_top_k_arr, top_k_val, deterministic, seed, offset):
    contract.check_top_k_sampling(samples, probs, indices, maybe_top_k_arr, top_k_val, deterministic, seed, offset)
    _launch_sampler(K.MODE_TOP_K, samples, probs, indices, maybe_top_k_arr, top_k_val, None, 0.0, seed, offset,
                    samples.shape[0] * ref.ROUNDS_PER_ROW)


def min_p_sampling_from_probs_cuda(samples, probs, indices, maybe_min_p_arr, min_p_val, deterministic, seed, offset):
    contract.check_min_p_sampling(samples, probs, indices, maybe_min_p_arr, min_p_val, deterministic, seed, offset)
    _launch_sampler(K.MODE_MIN_P, samples, probs, indices, None, 0, maybe_min_p_arr, min_p_val, seed, offset,
                    samples.shape[0])


def top_k_top_p_sampling_from_probs_cuda(samples, probs, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                         top_p_val, deterministic, seed, offset):
    contract.check_top_k_top_p_sampling(samples, probs, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                        top_p_val, deterministic, seed, offset)
    _launch_sampler(K.MODE_JOINT, samples, probs, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr, top_p_val,
                    seed, offset, samples.shape[0] * ref.ROUNDS_PER_ROW)


def sampling_from_logits_cuda(samples, logits, indices, deterministic, seed, offset):
    contract.check_sampling_from_logits(samples, logits, indices, deterministic, seed, offset)
    n_out, vocab = samples.shape[0], logits.shape[1]
    if n_out == 0:
        return
    block, nb = sampler_tile(vocab)
    launch(K.sample_logits_kernel, (n_out,),
        samples, logits, indices if indices is not None else samples, seed, offset, ticket(logits.device),
        n_out, vocab, logits.stride(0), ref.rng_increment(n_out * vocab), int(indices is not None),
        BLOCK=block, NB=nb, **_opts(logits.device, block),
    )


def softmax_cuda(out, logits, maybe_temperature_arr, temperature_val):
    contract.check_softmax(out, logits, maybe_temperature_arr, temperature_val)
    _softmax(out, logits, maybe_temperature_arr, temperature_val)


def _softmax(out, logits, maybe_temperature_arr, temperature_val):
    rows, vocab = logits.shape
    if rows == 0 or vocab == 0:
        return
    grid = softmax_rows_grid(rows, vocab, sm_count(logits.device)) if split_enabled() else None
    if grid is not None:
        softmax_rows(out, logits, maybe_temperature_arr, temperature_val, grid)
        return
    block = row_block(vocab)
    sblock = split_block(rows, vocab) if block != SMALL_BLOCK and split_enabled() else None
    if sblock is not None:
        split.softmax_split(out, logits, maybe_temperature_arr, temperature_val, sblock)
        return
    launch(K.softmax_kernel, (rows,),
        out, logits, maybe_temperature_arr if maybe_temperature_arr is not None else out,
        float(temperature_val), vocab, logits.stride(0), out.stride(0), int(maybe_temperature_arr is not None),
        BLOCK=block, **_opts(logits.device, block),
    )


def softmax_rows(out, logits, t_arr, t_val, grid):
    """out = softmax(logits / T) with the row-persistent kernel on `grid` programs (kernels/sampling.py
    softmax_rows_kernel; 1 <= grid <= rows)."""
    rows, vocab = logits.shape
    fam = arch_family(logits.device)
    depth, ahead = softmax_rows_pipe(fam)
    launch(K.softmax_rows_kernel, (grid,), out, logits, t_arr if t_arr is not None else out, float(t_val), vocab,
           logits.stride(0), out.stride(0), int(t_arr is not None), rows, BLOCK=softmax_rows_block(fam),
           STATS_DEPTH=depth, WRITE_AHEAD=ahead, **softmax_rows_config(fam).options(fam))


def top_k_top_p_sampling_from_logits_cuda(samples, logits, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                          top_p_val, deterministic, seed, offset):
    """top_k_first from logits: the vocabulary-split path for a scalar 0 < k < vocab (k <= the
    largest survivor list); otherwise top_k_mask_logits -> softmax -> top-p rejection sampling
    through float32 temporaries. Either way offset advances by n_out * ROUNDS_PER_ROW."""
    contract.check_top_k_top_p_sampling_from_logits(samples, logits, indices, maybe_top_k_arr, top_k_val,
                                                    maybe_top_p_arr, top_p_val, deterministic, seed, offset)
    n_out = samples.shape[0]
    rows, vocab = logits.shape
    if n_out == 0:
        return
    inc = n_out * ref.ROUNDS_PER_ROW
    k = int(top_k_val)
    cap = topk_cap(k) if maybe_top_k_arr is None and 0 < k < vocab else None
    block = split_block(rows, vocab) if cap is not None and split_enabled() else None
    if block is not None:
        split.top_k_top_p_from_logits_split(samples, logits, indices, k, maybe_top_p_arr, top_p_val, seed, offset,
                                            ticket(logits.device), f32_dummy(logits.device), block, cap, inc)
        return
    masked = torch.empty(rows, vocab, dtype=torch.float32, device=logits.device)
    _launch_top_k(masked, logits, maybe_top_k_arr, top_k_val, True)
    probs = torch.empty_like(masked)
    _softmax(probs, masked, None, 1.0)
    _launch_sampler(K.MODE_TOP_P, samples, probs, indices, None, 0, maybe_top_p_arr, top_p_val, seed, offset, inc)


def top_p_renorm_probs_cuda(renorm_probs, probs, maybe_top_p_arr, top_p_val):
    contract.check_top_p_renorm(renorm_probs, probs, maybe_top_p_arr, top_p_val)
    rows, vocab = probs.shape
    if rows == 0 or vocab == 0:
        return
    block = row_block(vocab)
    launch(K.top_p_renorm_kernel, (rows,),
        renorm_probs, probs, maybe_top_p_arr if maybe_top_p_arr is not None else renorm_probs, vocab, probs.stride(0),
        renorm_probs.stride(0), float(top_p_val), int(maybe_top_p_arr is not None), MAX_ITERS=MAX_ITERS, BLOCK=block,
        **_opts(probs.device, block),
    )


def _launch_top_k(out, x, arr, k_val, is_mask):
    rows, vocab = x.shape
    if rows == 0 or vocab == 0:
        return
    block = row_block(vocab)
    use_split = block != SMALL_BLOCK and split_enabled()
    sblock = split_block(rows, vocab) if use_split else None
    if sblock is not None:
        split.top_k_filter_split(out, x, arr, k_val, is_mask, sblock)
        return
    launch(K.top_k_filter_kernel, (rows,),
        out, x, arr if arr is not None else ticket(x.device), vocab, x.stride(0), out.stride(0), int(k_val),
        int(arr is not None), IS_MASK=is_mask, BLOCK=block, **_opts(x.device, block),
    )


def top_k_renorm_probs_cuda(renorm_probs, probs, maybe_top_k_arr, top_k_val):
    contract.check_top_k_renorm(renorm_probs, probs, maybe_top_k_arr, top_k_val)
    _launch_top_k(renorm_probs, probs, maybe_top_k_arr, top_k_val, False)


def top_k_mask_logits_cuda(mask_logits, logits, maybe_top_k_arr, top_k_val):
    contract.check_top_k_mask_logits(mask_logits, logits, maybe_top_k_arr, top_k_val)
    _launch_top_k(mask_logits, logits, maybe_top_k_arr, top_k_val, True)


def chain_speculative_sampling_cuda(output_token_ids, output_accepted_token_num, output_emitted_draft_token_num,
                                    draft_probs, draft_token_ids, target_probs, deterministic, seed, offset):
    contract.check_chain_speculative(output_token_ids, output_accepted_token_num, output_emitted_draft_token_num,
                                     draft_probs, draft_token_ids, target_probs, deterministic, seed, offset)
    b, n, vocab = draft_probs.shape
    if b == 0:
        return
    block = spec_block()
    launch(K.chain_speculative_kernel, (b,),
        output_token_ids, output_accepted_token_num, output_emitted_draft_token_num, draft_probs, draft_token_ids,
        target_probs, seed, offset, ticket(draft_probs.device),
        b, n, vocab, draft_probs.stride(0), draft_probs.stride(1), draft_token_ids.stride(0),
        target_probs.stride(0), target_probs.stride(1), output_token_ids.stride(0), ref.rng_increment(b * (n + 1)),
        BLOCK=block, **_opts(draft_probs.device, block),
    )


# ---- CPU key (reference) ----------------------------------------------------------------------

def _param(arr, val):
    return arr if arr is not None else val


def _cpu_sample(samples, dist, indices, seed, offset, inc):
    gen = ref.cpu_generator(seed, offset)
    samples.copy_(ref.sample_rows(dist, indices, gen))
    ref.advance(offset, inc)


def sampling_from_probs_cpu(samples, probs, indices, deterministic, seed, offset):
    contract.check_sampling_from_probs(samples, probs, indices, deterministic, seed, offset)
    _cpu_sample(samples, ref.filtered_distribution("plain", probs), indices, seed, offset, samples.shape[0])


def sampling_from_logits_cpu(samples, logits, indices, deterministic, seed, offset):
    contract.check_sampling_from_logits(samples, logits, indices, deterministic, seed, offset)
    _cpu_sample(samples, ref.softmax(logits), indices, seed, offset, samples.shape[0] * logits.shape[1])


def top_p_sampling_from_probs_cpu(samples, probs, indices, maybe_top_p_arr, top_p_val, deterministic, seed, offset):
    contract.check_top_p_sampling(samples, probs, indices, maybe_top_p_arr, top_p_val, deterministic, seed, offset)
    dist = ref.filtered_distribution("top_p", probs, top_p=_param(maybe_top_p_arr, top_p_val))
    _cpu_sample(samples, dist, indices, seed, offset, samples.shape[0] * ref.ROUNDS_PER_ROW)


def top_k_sampling_from_probs_cpu(samples, probs, indices, maybe_top_k_arr, top_k_val, deterministic, seed, offset):
    contract.check_top_k_sampling(samples, probs, indices, maybe_top_k_arr, top_k_val, deterministic, seed, offset)
    dist = ref.filtered_distribution("top_k", probs, top_k=_param(maybe_top_k_arr, top_k_val))
    _cpu_sample(samples, dist, indices, seed, offset, samples.shape[0] * ref.ROUNDS_PER_ROW)


def min_p_sampling_from_probs_cpu(samples, probs, indices, maybe_min_p_arr, min_p_val, deterministic, seed, offset):
    contract.check_min_p_sampling(samples, probs, indices, maybe_min_p_arr, min_p_val, deterministic, seed, offset)
    dist = ref.filtered_distribution("min_p", probs, min_p=_param(maybe_min_p_arr, min_p_val))
    _cpu_sample(samples, dist, indices, seed, offset, samples.shape[0])


def top_k_top_p_sampling_from_probs_cpu(samples, probs, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                        top_p_val, deterministic, seed, offset):
    contract.check_top_k_top_p_sampling(samples, probs, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                        top_p_val, deterministic, seed, offset)
    dist = ref.filtered_distribution("top_k_top_p", probs, top_k=_param(maybe_top_k_arr, top_k_val),
                                     top_p=_param(maybe_top_p_arr, top_p_val), filter_apply_order="joint")
    _cpu_sample(samples, dist, indices, seed, offset, samples.shape[0] * ref.ROUNDS_PER_ROW)


def top_k_top_p_sampling_from_logits_cpu(samples, logits, indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr,
                                         top_p_val, deterministic, seed, offset):
    contract.check_top_k_top_p_sampling_from_logits(samples, logits, indices, maybe_top_k_arr, top_k_val,
                                                    maybe_top_p_arr, top_p_val, deterministic, seed, offset)
    dist = ref.filtered_distribution("top_k_top_p", ref.softmax(logits), top_k=_param(maybe_top_k_arr, top_k_val),
                                     top_p=_param(maybe_top_p_arr, top_p_val), filter_apply_order="top_k_first")
    _cpu_sample(samples, dist, indices, seed, offset, samples.shape[0] * ref.ROUNDS_PER_ROW)


def softmax_cpu(out, logits, maybe_temperature_arr, temperature_val):
    contract.check_softmax(out, logits, maybe_temperature_arr, temperature_val)
    out.copy_(ref.softmax(logits, _param(maybe_temperature_arr, temperature_val)))


def top_p_renorm_probs_cpu(renorm_probs, probs, maybe_top_p_arr, top_p_val):
    contract.check_top_p_renorm(renorm_probs, probs, maybe_top_p_arr, top_p_val)
    renorm_probs.copy_(ref.top_p_renorm_probs(probs, _param(maybe_top_p_arr, top_p_val)))


def top_k_renorm_probs_cpu(renorm_probs, probs, maybe_top_k_arr, top_k_val):
    contract.check_top_k_renorm(renorm_probs, probs, maybe_top_k_arr, top_k_val)
    renorm_probs.copy_(ref.top_k_renorm_probs(probs, _param(maybe_top_k_arr, top_k_val)))


def top_k_mask_logits_cpu(mask_logits, logits, maybe_top_k_arr, top_k_val):
    contract.check_top_k_mask_logits(mask_logits, logits, maybe_top_k_arr, top_k_val)
    mask_logits.copy_(ref.top_k_mask_logits(logits, _param(maybe_top_k_arr, top_k_val)))


def chain_speculative_sampling_cpu(output_token_ids, output_accepted_token_num, output_emitted_draft_token_num,
                                   draft_probs, draft_token_ids, target_probs, deterministic, seed, offset):
    contract.check_chain_speculative(output_token_ids, output_accepted_token_num, output_emitted_draft_token_num,
                                     draft_probs, draft_token_ids, target_probs, deterministic, seed, offset)
    gen = ref.cpu_generator(seed, offset)
    out, acc, emit = ref.chain_speculative_sampling(draft_probs, draft_token_ids, target_probs, gen)
    output_token_ids.copy_(out)
    output_accepted_token_num.add_(acc)
    output_emitted_draft_token_num.add_(emit)
    ref.advance(offset, draft_probs.shape[0] * (draft_probs.shape[1] + 1))


def _fake(check):
    def fake(*args):
        check(*args)
    return fake


for _name, _check in (
    ("sampling_from_probs", contract.check_sampling_from_probs),
    ("sampling_from_logits", contract.check_sampling_from_logits),
    ("top_p_sampling_from_probs", contract.check_top_p_sampling),
    ("top_k_sampling_from_probs", contract.check_top_k_sampling),
    ("min_p_sampling_from_probs", contract.check_min_p_sampling),
    ("top_k_top_p_sampling_from_probs", contract.check_top_k_top_p_sampling),
    ("top_k_top_p_sampling_from_logits", contract.check_top_k_top_p_sampling_from_logits),
    ("softmax", contract.check_softmax),
    ("top_p_renorm_probs", contract.check_top_p_renorm),
    ("top_k_renorm_probs", contract.check_top_k_renorm),
    ("top_k_mask_logits", contract.check_top_k_mask_logits),
    ("chain_speculative_sampling", contract.check_chain_speculative),
):
    register_op(_name, cuda=globals()[f"{_name}_cuda"], cpu=globals()[f"{_name}_cpu"], fake=_fake(_check))


# ---- shipped variants (AMD gate / AOT list) ---------------------------------------------------

_DIST = (torch.float32, torch.float16, torch.bfloat16)


def _register_variants():
    def opts(block):
        return lambda fam: sampling_config(fam, block).options(fam)

    for dtype in _DIST:
        dt = TRITON_DTYPE[dtype]
        for block in (SAMPLER_BLOCK, SMALL_BLOCK):
            for nb in NB_BUCKETS[block]:
                for mode, mname in ((K.MODE_PLAIN, "plain"), (K.MODE_TOP_P, "top_p"), (K.MODE_TOP_K, "top_k"),
                                    (K.MODE_JOINT, "joint"), (K.MODE_MIN_P, "min_p")):
                    sig = {"out_ptr": "*i32", "probs_ptr": f"*{dt}", "idx_ptr": "*i32", "k_arr_ptr": "*i32",
                           "p_arr_ptr": "*fp32", "seed_ptr": "*i64", "offset_ptr": "*i64", "ticket_ptr": "*i32",
                           "n_out": "i32", "vocab": "i32", "stride_row": "i32", "k_val": "i32", "p_val": "fp32",
                           "inc": "i64", "has_indices": "i32", "has_k_arr": "i32", "has_p_arr": "i32",
                           "MODE": "constexpr", "MAX_ROUNDS": "constexpr", "BLOCK": "constexpr", "NB": "constexpr",
                           "UNROLL": "constexpr"}
                    for unroll in ((1,) if block == SMALL_BLOCK else (1, 2)):
                        register_variant(KernelVariant(
                            kernel="sampling.sample_probs_kernel", variant=f"{mname}_{dt}_b{block}_nb{nb}_u{unroll}",
                            fn=K.sample_probs_kernel, signature=sig,
                            constexprs=dict(MODE=mode, MAX_ROUNDS=MAX_ROUNDS, BLOCK=block, NB=nb, UNROLL=unroll),
                            options=opts(block)))
                sig = {"out_ptr": "*i32", "logits_ptr": f"*{dt}", "idx_ptr": "*i32", "seed_ptr": "*i64",
                       "offset_ptr": "*i64", "ticket_ptr": "*i32", "n_out": "i32", "vocab": "i32",
                       "stride_row": "i32", "inc": "i64", "has_indices": "i32", "BLOCK": "constexpr", "NB": "constexpr"}
                register_variant(KernelVariant(
                    kernel="sampling.sample_logits_kernel", variant=f"{dt}_b{block}_nb{nb}", fn=K.sample_logits_kernel,
                    signature=sig, constexprs=dict(BLOCK=block, NB=nb), options=opts(block)))
        sig = {"out_ptr": "*fp32", "x_ptr": f"*{dt}", "t_arr_ptr": "*fp32", "t_val": "fp32", "vocab": "i32",
               "stride_x": "i32", "stride_out": "i32", "has_t_arr": "i32", "rows": "i32", "BLOCK": "constexpr",
               "STATS_DEPTH": "constexpr", "WRITE_AHEAD": "constexpr"}
        # one variant per distinct (BLOCK, STATS_DEPTH, WRITE_AHEAD), gated on the families that launch it
        rows_tiles = {f: (b, *softmax_rows_pipe(f)) for f, b in SOFTMAX_ROWS_BLOCK.items()}
        for block, depth, ahead in sorted(set(rows_tiles.values())):
            register_variant(KernelVariant(
                kernel="sampling.softmax_rows_kernel", variant=f"{dt}_b{block}_d{depth}{'_wa' if ahead else ''}",
                fn=K.softmax_rows_kernel, signature=sig,
                constexprs=dict(BLOCK=block, STATS_DEPTH=depth, WRITE_AHEAD=ahead),
                options=lambda fam: softmax_rows_config(fam).options(fam),
                families=tuple(f for f, t in rows_tiles.items() if t == (block, depth, ahead))))
        for block in (BIG_BLOCK, SMALL_BLOCK):
            sig = {"out_ptr": "*fp32", "x_ptr": f"*{dt}", "t_arr_ptr": "*fp32", "t_val": "fp32", "vocab": "i32",
                   "stride_x": "i32", "stride_out": "i32", "has_t_arr": "i32", "BLOCK": "constexpr"}
            register_variant(KernelVariant(kernel="sampling.softmax_kernel", variant=f"{dt}_b{block}", fn=K.softmax_kernel,
                                           signature=sig, constexprs=dict(BLOCK=block), options=opts(block)))
            sig = {"out_ptr": "*fp32", "x_ptr": f"*{dt}", "arr_ptr": "*fp32", "vocab": "i32", "stride_x": "i32",
                   "stride_out": "i32", "p_val": "fp32", "has_arr": "i32", "MAX_ITERS": "constexpr", "BLOCK": "constexpr"}
            register_variant(KernelVariant(
                kernel="sampling.top_p_renorm_kernel", variant=f"{dt}_b{block}", fn=K.top_p_renorm_kernel, signature=sig,
                constexprs=dict(MAX_ITERS=MAX_ITERS, BLOCK=block), options=opts(block)))
            for name, mask in (("renorm", False), ("mask", True)):
                sig = {"out_ptr": "*fp32", "x_ptr": f"*{dt}", "arr_ptr": "*i32", "vocab": "i32", "stride_x": "i32",
                       "stride_out": "i32", "k_val": "i32", "has_arr": "i32", "IS_MASK": "constexpr",
                       "BLOCK": "constexpr"}
                register_variant(KernelVariant(
                    kernel="sampling.top_k_filter_kernel", variant=f"{name}_{dt}_b{block}", fn=K.top_k_filter_kernel,
                    signature=sig, constexprs=dict(IS_MASK=mask, BLOCK=block), options=opts(block)))
        sig = {"out_ptr": "*i32", "acc_ptr": "*i32", "emit_ptr": "*i32", "dprobs_ptr": f"*{dt}",
               "dids_ptr": "*i32", "tprobs_ptr": f"*{dt}", "seed_ptr": "*i64", "offset_ptr": "*i64",
               "ticket_ptr": "*i32", "batch": "i32", "n_spec": "i32", "vocab": "i32", "s_d0": "i32", "s_d1": "i32",
               "s_i0": "i32", "s_t0": "i32", "s_t1": "i32", "s_o0": "i32", "inc": "i64", "BLOCK": "constexpr"}
        register_variant(KernelVariant(
            kernel="sampling.chain_speculative_kernel", variant=dt, fn=K.chain_speculative_kernel,
            signature=sig, constexprs=dict(BLOCK=SPEC_BLOCK), options=opts(SPEC_BLOCK)))

    split.register_split_variants(_DIST)


_register_variants()
