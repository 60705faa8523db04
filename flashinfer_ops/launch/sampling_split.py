"""Launchers of the vocabulary-split sampling kernels (kernels/sampling_split.py) and their
shipped variants. Called from launch/sampling.py, which decides when the split path applies."""
from typing import Dict

import torch

from .._launch import launch
from .._library import TRITON_DTYPE, KernelVariant, register_variant
from ..configs import arch_family
from ..configs.sampling import (
    DRAW_SUB, SOFTMAX_STATS_BLOCK, SPLIT_BLOCKS, SPLIT_SMAX, TOPK_CAPS, draw_config, draw_jb,
    softmax_stats_tile, split_config,
)
from ..kernels import sampling_split as KS
from ..reference import sampling as ref

HIST_STRIDE = 1040  # int32 per workspace row: 4 digit histograms of 256 bins, the counter, padding
WORKSPACE_ROWS = 256  # rows of the persistent (self-cleaning) histogram workspace per device
_WORKSPACE: Dict[torch.device, torch.Tensor] = {}


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def workspace(device: torch.device, rows: int) -> torch.Tensor:
    """Zeroed int32 [rows, HIST_STRIDE] histograms + counters for the top-k radix select. The
    draw kernel zeroes the rows it used, so a persistent per-device buffer is reused without a
    memset; it is created outside graph capture (inside a capture, or for more rows, a zeroed
    buffer is allocated for the call). Shared per device like the offset ticket: concurrent
    launches on two streams of one device would race on it."""
    ws = _WORKSPACE.get(device)
    if ws is None and rows <= WORKSPACE_ROWS and not _capturing():
        ws = _WORKSPACE[device] = torch.zeros(WORKSPACE_ROWS, HIST_STRIDE, dtype=torch.int32, device=device)
    if ws is not None and rows <= ws.shape[0]:
        return ws
    return torch.zeros(rows, HIST_STRIDE, dtype=torch.int32, device=device)


def _opts(device, block):
    fam = arch_family(device)
    return split_config(fam, block).options(fam)


def softmax_split(out, logits, t_arr, t_val, block):
    """out = softmax(logits / T): the statistics launch (segments of softmax_stats_tile), then the
    write launch over BLOCK-wide chunks."""
    rows, vocab = logits.shape
    s = -(-vocab // block)
    sblock, seg_len = softmax_stats_tile(rows, vocab)
    n_segs = -(-vocab // seg_len)
    ws = torch.empty(rows, 2 * SPLIT_SMAX, dtype=torch.float32, device=logits.device)
    t = t_arr if t_arr is not None else ws
    launch(KS.softmax_stats_kernel, (n_segs, rows), ws, logits, t, float(t_val), vocab, logits.stride(0),
           int(t_arr is not None), seg_len, SMAX=SPLIT_SMAX, BLOCK=sblock, **_opts(logits.device, sblock))
    launch(KS.softmax_write_kernel, (s * rows,), out, ws, logits, t, float(t_val), vocab, logits.stride(0),
           out.stride(0), int(t_arr is not None), s, n_segs, rows, SMAX=SPLIT_SMAX, BLOCK=block,
           **_opts(logits.device, block))


def _keybits(dtype: torch.dtype) -> int:
    return 32 if dtype == torch.float32 else 16


def _radix(ws, x, k_arr, k_val, block, opts):
    """The radix-select launches (one per 8-bit digit of the key), alternating direction."""
    rows, vocab = x.shape
    s = -(-vocab // block)
    kb = _keybits(x.dtype)
    for digit in range(kb // 8):
        launch(KS.topk_radix_kernel, (s, rows), ws, x, k_arr if k_arr is not None else ws, vocab, x.stride(0),
               HIST_STRIDE, int(k_val), int(k_arr is not None), digit % 2, DIGIT=digit, KEYBITS=kb, BLOCK=block, **opts)


def top_k_filter_split(out, x, k_arr, k_val, is_mask, block):
    """top_k_mask_logits (is_mask) / top_k_renorm_probs with S = cdiv(vocab, block) programs per row:
    radix launches, the kept mass per chunk (renorm), the write; per-row k allowed."""
    rows, vocab = x.shape
    dev = x.device
    s = -(-vocab // block)
    kb = _keybits(x.dtype)
    d = kb // 8
    ws = workspace(dev, rows)
    opts = _opts(dev, block)
    _radix(ws, x, k_arr, k_val, block, opts)
    karr = k_arr if k_arr is not None else ws
    mass = out
    if not is_mask:
        mass = torch.empty(rows, SPLIT_SMAX, dtype=torch.float32, device=dev)
        launch(KS.topk_kept_mass_kernel, (s, rows), mass, ws, x, karr, vocab, x.stride(0), HIST_STRIDE, int(k_val),
               int(k_arr is not None), d % 2, SMAX=SPLIT_SMAX, KEYBITS=kb, BLOCK=block, **opts)
        d += 1
    launch(KS.topk_filter_write_kernel, (s, rows), out, mass, ws, x, karr, vocab, x.stride(0), out.stride(0),
           HIST_STRIDE, (kb // 8) * 256, int(k_val), int(k_arr is not None), s, d % 2,
           IS_MASK=is_mask, SMAX=SPLIT_SMAX, KEYBITS=kb, BLOCK=block, **opts)


def top_k_survivors(logits, k_val, block, cap):
    """The radix-select and compaction launches: returns (workspace, dense, meta) as the draw
    kernel reads them (kernels/sampling_split.py: topk_compact_kernel). The workspace rows stay
    dirty until the draw kernel runs."""
    rows, vocab = logits.shape
    dev = logits.device
    s = -(-vocab // block)
    kb = _keybits(logits.dtype)
    ws = workspace(dev, rows)
    dense = torch.empty(rows, cap, dtype=torch.int64, device=dev)
    meta = torch.empty(rows, 3 * SPLIT_SMAX + 1, dtype=torch.int32, device=dev)
    opts = _opts(dev, block)
    _radix(ws, logits, None, k_val, block, opts)
    launch(KS.topk_compact_kernel, (s, rows), dense, meta, ws, logits, vocab, logits.stride(0), HIST_STRIDE,
           int(k_val), cap, (kb // 8) % 2, SMAX=SPLIT_SMAX, KEYBITS=kb, BLOCK=block, **opts)
    return ws, dense, meta


def top_k_top_p_from_logits_split(samples, logits, indices, k_val, p_arr, p_val, seed, offset, ticket_t, p_dummy,
                                  block, cap, inc):
    """Top-k-first sampling from logits for a scalar 0 < k < vocab, k <= cap (module docstring of
    kernels/sampling_split.py): D radix launches, one compaction, one draw."""
    rows, vocab = logits.shape
    n_out = samples.shape[0]
    dev = logits.device
    s = -(-vocab // block)
    kb = _keybits(logits.dtype)
    ws, dense, meta = top_k_survivors(logits, k_val, block, cap)
    fam = arch_family(dev)
    launch(KS.topk_top_p_draw_kernel, (max(n_out, rows),),
           samples, dense, meta, ws, logits, indices if indices is not None else samples,
           p_arr if p_arr is not None else p_dummy, seed, offset, ticket_t,
           n_out, rows, s, block, vocab, logits.stride(0), HIST_STRIDE, (kb // 8) * 256, float(p_val),
           ref.rng_increment(inc), int(indices is not None), int(p_arr is not None),
           CAP=cap, SMAX=SPLIT_SMAX, SUB=DRAW_SUB, JB=draw_jb(cap), **draw_config(fam).options(fam))


# ---- shipped variants (AMD gate / AOT list) ---------------------------------------------------

def register_split_variants(dtypes):
    def opts(block):
        return lambda fam: split_config(fam, block).options(fam)

    for dtype in dtypes:
        dt = TRITON_DTYPE[dtype]
        kb = _keybits(dtype)
        sig = {"ws_ptr": "*fp32", "x_ptr": f"*{dt}", "t_arr_ptr": "*fp32", "t_val": "fp32", "vocab": "i32",
               "stride_x": "i32", "has_t_arr": "i32", "seg_len": "i32", "SMAX": "constexpr", "BLOCK": "constexpr"}
        register_variant(KernelVariant(
            kernel="sampling_split.softmax_stats_kernel", variant=f"{dt}_b{SOFTMAX_STATS_BLOCK}",
            fn=KS.softmax_stats_kernel, signature=sig, constexprs=dict(SMAX=SPLIT_SMAX, BLOCK=SOFTMAX_STATS_BLOCK),
            options=opts(SOFTMAX_STATS_BLOCK)))
        for block in SPLIT_BLOCKS:
            sig = {"out_ptr": "*fp32", "ws_ptr": "*fp32", "x_ptr": f"*{dt}", "t_arr_ptr": "*fp32", "t_val": "fp32",
                   "vocab": "i32", "stride_x": "i32", "stride_out": "i32", "has_t_arr": "i32", "n_chunks": "i32",
                   "n_segs": "i32", "rows": "i32", "SMAX": "constexpr", "BLOCK": "constexpr"}
            register_variant(KernelVariant(
                kernel="sampling_split.softmax_write_kernel", variant=f"{dt}_b{block}", fn=KS.softmax_write_kernel,
                signature=sig, constexprs=dict(SMAX=SPLIT_SMAX, BLOCK=block), options=opts(block)))
            for digit in range(kb // 8):
                sig = {"hist_ptr": "*i32", "x_ptr": f"*{dt}", "k_arr_ptr": "*i32", "vocab": "i32", "stride_x": "i32",
                       "hist_stride": "i32", "k_val": "i32", "has_k_arr": "i32", "reverse": "i32",
                       "DIGIT": "constexpr", "KEYBITS": "constexpr", "BLOCK": "constexpr"}
                register_variant(KernelVariant(
                    kernel="sampling_split.topk_radix_kernel", variant=f"{dt}_d{digit}_b{block}",
                    fn=KS.topk_radix_kernel, signature=sig, constexprs=dict(DIGIT=digit, KEYBITS=kb, BLOCK=block),
                    options=opts(block)))
            sig = {"mass_ptr": "*fp32", "hist_ptr": "*i32", "x_ptr": f"*{dt}", "k_arr_ptr": "*i32", "vocab": "i32",
                   "stride_x": "i32", "hist_stride": "i32", "k_val": "i32", "has_k_arr": "i32", "reverse": "i32",
                   "SMAX": "constexpr", "KEYBITS": "constexpr", "BLOCK": "constexpr"}
            register_variant(KernelVariant(
                kernel="sampling_split.topk_kept_mass_kernel", variant=f"{dt}_b{block}", fn=KS.topk_kept_mass_kernel,
                signature=sig, constexprs=dict(SMAX=SPLIT_SMAX, KEYBITS=kb, BLOCK=block), options=opts(block)))
            for name, mask in (("renorm", False), ("mask", True)):
                sig = {"out_ptr": "*fp32", "mass_ptr": "*fp32", "hist_ptr": "*i32", "x_ptr": f"*{dt}",
                       "k_arr_ptr": "*i32", "vocab": "i32", "stride_x": "i32", "stride_out": "i32",
                       "hist_stride": "i32", "hist_used": "i32", "k_val": "i32", "has_k_arr": "i32",
                       "n_chunks": "i32", "reverse": "i32", "IS_MASK": "constexpr", "SMAX": "constexpr",
                       "KEYBITS": "constexpr", "BLOCK": "constexpr"}
                register_variant(KernelVariant(
                    kernel="sampling_split.topk_filter_write_kernel", variant=f"{name}_{dt}_b{block}",
                    fn=KS.topk_filter_write_kernel, signature=sig,
                    constexprs=dict(IS_MASK=mask, SMAX=SPLIT_SMAX, KEYBITS=kb, BLOCK=block), options=opts(block)))
            sig = {"dense_ptr": "*i64", "meta_ptr": "*i32", "hist_ptr": "*i32", "x_ptr": f"*{dt}", "vocab": "i32",
                   "stride_x": "i32", "hist_stride": "i32", "k_val": "i32", "cap": "i32", "reverse": "i32",
                   "SMAX": "constexpr",
                   "KEYBITS": "constexpr", "BLOCK": "constexpr"}
            register_variant(KernelVariant(
                kernel="sampling_split.topk_compact_kernel", variant=f"{dt}_b{block}",
                fn=KS.topk_compact_kernel, signature=sig,
                constexprs=dict(SMAX=SPLIT_SMAX, KEYBITS=kb, BLOCK=block), options=opts(block)))
        for cap in TOPK_CAPS:
            sig = {"out_ptr": "*i32", "dense_ptr": "*i64", "meta_ptr": "*i32", "hist_ptr": "*i32", "x_ptr": f"*{dt}",
                   "idx_ptr": "*i32", "p_arr_ptr": "*fp32", "seed_ptr": "*i64", "offset_ptr": "*i64",
                   "ticket_ptr": "*i32", "n_out": "i32", "rows": "i32", "n_chunks": "i32", "chunk_size": "i32",
                   "vocab": "i32", "stride_x": "i32", "hist_stride": "i32", "hist_used": "i32", "p_val": "fp32",
                   "inc": "i64", "has_indices": "i32", "has_p_arr": "i32", "CAP": "constexpr", "SMAX": "constexpr",
                   "SUB": "constexpr", "JB": "constexpr"}
            register_variant(KernelVariant(
                kernel="sampling_split.topk_top_p_draw_kernel", variant=f"{dt}_cap{cap}",
                fn=KS.topk_top_p_draw_kernel, signature=sig,
                constexprs=dict(CAP=cap, SMAX=SPLIT_SMAX, SUB=DRAW_SUB, JB=draw_jb(cap)),
                options=lambda fam: draw_config(fam).options(fam)))
