"""CUDA-key (Triton) and CPU-key (reference) implementations of the prefill ops, and the shipped
kernel variants."""
import math
from typing import Optional, Tuple

import numpy as np

import torch
import triton

from ... import _C
from ..._launch import repeat_launcher
from ..._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ...configs import FAMILIES, arch_family, has_tensor_copy_engine, sm_count
from ...configs.attention.prefill import (
    HEAD_DIMS, LEAN_HEAD_DIMS, STAGE_LAUNCH, STAGE_ROWS, deal_grid, diag_in_loop, inplace_setting, lean_persistent,
    padded_dims, page_pow2, paged_inplace, prefetch_pages, prefill_config, shared_rows, stage_pdl, tma_enabled,
    use_deal,
)
from ...fake.attention import prefill as contract
from ...kernels.attention.prefill import LOG2E, prefill_kernel, prefill_persistent_kernel, stage_paged_kv_kernel
from ...reference import attention as ref

# fp8 format -> (exponent bits, mantissa bits, exponent bias) for the in-kernel decode.
FP8_FORMAT = {}
for _n, _f in (("float8_e4m3fn", (4, 3, 7)), ("float8_e5m2", (5, 2, 15)),
               ("float8_e4m3fnuz", (4, 3, 8)), ("float8_e5m2fnuz", (5, 2, 16))):
    if hasattr(torch, _n):
        FP8_FORMAT[getattr(torch, _n)] = _f


def alibi_n(num_qo_heads: int) -> int:
    """2^floor(log2(H)): the ALiBi slope base (see reference.attention.alibi_slopes)."""
    return 2 ** math.floor(math.log2(num_qo_heads))


_DUMMIES = {}


def _dummy(device, dtype):
    """A 1-element placeholder for a pointer the kernel does not touch (never written)."""
    t = _DUMMIES.get((device, dtype))
    if t is None:
        t = _DUMMIES[(device, dtype)] = torch.empty(1, dtype=dtype, device=device)
    return t


try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # Triton without host tensor descriptors: pointer loads only
    TensorDescriptor = None


def tma_view(t, strides, n_tok: int, head_dim: int):
    """(rows_per_head, cols_per_head, n_rows, n_cols) of a 2-D view of dense K or V `t` in which
    token `tok` of kv head `h` starts at row tok + h * rows_per_head, column h * cols_per_head,
    rows `strides[1]` elements apart; None where no such view meets the copy engine's rules
    (16-byte-aligned base, row stride and head offset; unit last stride). strides: _dense_strides."""
    s_n, s_h, h = strides[1], strides[2], strides[3]
    esz = t.element_size()
    if TensorDescriptor is None or t.stride(-1) != 1 or t.data_ptr() % 16 or (s_n * esz) % 16 or n_tok == 0:
        return None
    if (h - 1) * s_h + head_dim <= s_n and (s_h * esz) % 16 == 0:
        return 0, s_h, n_tok, (h - 1) * s_h + head_dim
    if s_h % s_n == 0 and s_h >= s_n and head_dim <= s_n:
        return s_h // s_n, 0, (h - 1) * (s_h // s_n) + n_tok, head_dim
    return None


def _extra(pos_encoding_mode, logits_soft_cap, mask_mode) -> bool:
    """The schedule needs prefill_kernel's EXTRA features (RoPE, ALiBi, soft cap, custom mask)."""
    return pos_encoding_mode in (1, 2) or logits_soft_cap > 0 or mask_mode == 2


def _launch(out, lse, q, k, v, work, kv_indices, mask, *, n_programs, deal=None, **kw):
    """One prefill_kernel launch of n_programs schedule items (see _prefill_launcher)."""
    _prefill_launcher(out, lse, q, k, v, kv_indices, mask, **kw)(work, n_programs, deal)


def _no_launch(work, n_programs, deal=None):
    return None


def _prefill_launcher(out, lse, q, k, v, kv_indices, mask, *, paged, single, qo_len, kv_len, page_size,
                      k_strides, v_strides, mask_mode, pos_encoding_mode, sm_scale, window_left, logits_soft_cap,
                      rope_scale, rope_theta, v_scale, n_tok=0, kv_start_mul=1, pdl=False, dense_tile=False):
    """A function go(work, n_programs, deal=None) that launches prefill_kernel over that schedule
    (None: the single-request form) with everything else fixed here: config, strides,
    descriptors; with plan()'s `deal` (deal_pairs) it runs the persistent form instead. Its second
    and later calls reuse the first call's compiled kernel (repeat_launcher), so several slices of
    one schedule launch at a fraction of a launch's host cost. pdl (NVIDIA): launch as a
    programmatic dependent of the kernel launched just before on the stream (prefill_kernel
    PDL_WAIT). dense_tile: a paged launch at the dense kernel's tile (a schedule planned for the
    in-place pages, over a cache the copy engine cannot address)."""
    h_qo, d_qk = q.shape[1], q.shape[2]
    d_vo = out.shape[2]
    h_kv = k_strides[3]
    if h_qo == 0 or q.shape[0] == 0:
        return _no_launch
    family = arch_family(q.device)
    bdqk, bdvo = padded_dims(d_qk, d_vo)
    fp8 = k.dtype in FP8_FORMAT
    exp_bits, man_bits, bias = FP8_FORMAT.get(k.dtype, (0, 0, 0))
    if fp8:
        k, v = k.view(torch.uint8), v.view(torch.uint8)
    dev = q.device
    if lse is None:
        lse_t, s_ln, s_lh, write_lse = _dummy(dev, torch.float32), 0, 0, 0
    else:
        lse_t, s_ln, s_lh, write_lse = lse, lse.stride(0), lse.stride(1), 1
    mask_t = mask if mask is not None else _dummy(dev, torch.uint8)
    rope = pos_encoding_mode == 1
    extra = _extra(pos_encoding_mode, logits_soft_cap, mask_mode)
    cfg = prefill_config(family, d_qk, d_vo, extra, fp8, paged and not dense_tile)
    k_desc, v_desc, k_view, v_view = k, v, None, None
    if tma_enabled(family, paged, fp8, extra, d_qk, d_vo) and has_tensor_copy_engine(q.device):
        k_view = tma_view(k, k_strides, n_tok, d_qk)
        v_view = tma_view(v, v_strides, n_tok, d_vo)
    tma = k_view is not None and v_view is not None
    if tma:
        k_desc = TensorDescriptor(k, [k_view[2], k_view[3]], [k_strides[1], 1], [cfg.block_n, d_qk])
        v_desc = TensorDescriptor(v, [v_view[2], v_view[3]], [v_strides[1], 1], [cfg.block_n, d_vo])
    else:
        k_view = v_view = (0, 0)
    head = (q, k, v, out, lse_t)
    tail = (mask_t,
        q.stride(0), q.stride(1), k_strides[0], k_strides[1], k_strides[2], v_strides[0], v_strides[1], v_strides[2],
        out.stride(0), out.stride(1), s_ln, s_lh,
        int(single), qo_len, kv_len, page_size, max(page_size, 1).bit_length() - 1, h_qo // h_kv, kv_start_mul,
        mask_mode, window_left, float(sm_scale), float(logits_soft_cap) if logits_soft_cap > 0 else 0.0,
        float(v_scale), alibi_n(h_qo) if pos_encoding_mode == 2 else 0, int(rope),
        1.0 / rope_scale if rope else 1.0, math.log2(rope_theta) if rope else 0.0,
        write_lse, exp_bits, man_bits, bias,
        k_desc, v_desc, k_view[0], k_view[1], v_view[0], v_view[1])
    kwargs = dict(
        HEAD_DIM_QK=d_qk, HEAD_DIM_VO=d_vo, PAGED=paged, KV_FP8=fp8, EXTRA=extra, BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n, BLOCK_DQK=bdqk, BLOCK_DVO=bdvo, PREFETCH_PAGES=paged and prefetch_pages(),
        PAGE_POW2=paged and page_pow2(page_size), SHARED_ROWS=paged and shared_rows(page_size, k_strides, v_strides),
        TMA=tma, DIAG_IN_LOOP=diag_in_loop(tma), **cfg.launch.options(family),
    )
    if pdl:
        kwargs.update(PDL_WAIT=True, launch_pdl=True)
    run = repeat_launcher(prefill_kernel, **kwargs)
    run_dealt = None

    def dealt_launcher():
        """The persistent form's launch over a deal: prefill_persistent_kernel where the features
        allow (lean_persistent; descriptors over the same 2-D views, built here in the interpreter,
        which has no copy engine), else prefill_kernel PERSISTENT."""
        if not single and lean_persistent(family, paged, fp8, extra, window_left, d_qk, d_vo):
            kd, vd, kw, vw = k_desc, v_desc, k_view, v_view
            if not tma:
                kw, vw = tma_view(k, k_strides, n_tok, d_qk), tma_view(v, v_strides, n_tok, d_vo)
                if kw is not None and vw is not None:
                    kd = TensorDescriptor(k, [kw[2], kw[3]], [k_strides[1], 1], [cfg.block_n, d_qk])
                    vd = TensorDescriptor(v, [vw[2], vw[3]], [v_strides[1], 1], [cfg.block_n, d_vo])
            if kw is not None and vw is not None:
                lean = repeat_launcher(prefill_persistent_kernel, HEAD_DIM_QK=d_qk, HEAD_DIM_VO=d_vo,
                                       BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, WRITE_LSE=bool(write_lse),
                                       **({"PDL_WAIT": True, "launch_pdl": True} if pdl else {}),
                                       **cfg.launch.options(family))
                lean_args = (q, k, v, out, lse_t)
                lean_tail = (kd, vd, q.stride(0), q.stride(1), k_strides[1], k_strides[2], v_strides[1],
                             v_strides[2], out.stride(0), out.stride(1), s_ln, s_lh)
                lean_scal = (h_qo // h_kv, kv_start_mul, mask_mode, float(sm_scale) * LOG2E, float(v_scale),
                             kw[0], kw[1], vw[0], vw[1])
                return lambda grid, work, n_programs, deal: lean(
                    grid, *lean_args, work, deal, *lean_tail, n_programs, *lean_scal)
        full = repeat_launcher(prefill_kernel, **dict(kwargs, PERSISTENT=True))
        idx = kv_indices
        return lambda grid, work, n_programs, deal: full(grid, *head, work, idx if idx is not None else work, *tail,
                                                         n_programs, deal)

    def go(work, n_programs, deal=None):
        nonlocal run_dealt
        if n_programs == 0:
            return
        if work is None:
            work = _dummy(dev, torch.int32)
        if deal is not None and not single and family == "sm90":
            # the persistent form over plan()'s deal (_check_deal: deal_grid programs); the deal
            # is only a schedule, so other families run the same pairs on the 2-D grid (use_deal)
            if run_dealt is None:
                run_dealt = dealt_launcher()
            run_dealt((deal_grid(sm_count(dev)), 1), work, n_programs, deal)
        else:
            run((n_programs, h_kv), *head, work, kv_indices if kv_indices is not None else work, *tail, n_programs,
                work)
    return go


def paged_inplace_launch(out, lse, q, k_cache, v_cache, kv_indices, work, deal, *, page_size: int, hnd: bool,
                         mask_mode: int, sm_scale: float, v_scale: float = 1.0, form: Optional[str] = None) -> None:
    """The in-place paged prefill kernel of `form` (INPLACE_FORMS; default inplace_setting()'s)
    over plan()'s deal: K / V pages read in place, no staging copy.
    k_cache / v_cache: [pages, page_size, H_kv, 128] (NHD) or [pages, H_kv, page_size, 128] (HND),
    16-bit, last dim contiguous, 16-byte-aligned base and strides; q / out [nnz, H_qo, 128]; lse
    [nnz, H_qo] fp32 or None; work / deal as prefill_persistent_kernel takes them (work rows'
    kv_start: the request's first entry in kv_indices). The caller has checked paged_inplace()."""
    from ...kernels.attention.prefill_paged_sm90 import (
        GluonTensorDescriptor, gl, paged_inplace_kernel, paged_prefill_sm90_ws_kernel, q_box,
    )

    kernel, consts, opts = paged_inplace_kernel(form or inplace_setting()[0] or "ws")
    layout = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=4)
    block = [1, 1, page_size, 64] if hnd else [1, page_size, 1, 64]
    kd = GluonTensorDescriptor(k_cache, list(k_cache.shape), list(k_cache.stride()), block, layout)
    vd = GluonTensorDescriptor(v_cache, list(v_cache.shape), list(v_cache.stride()), block, layout)
    if lse is None:
        lse_t, s_ln, s_lh, write_lse = _dummy(q.device, torch.float32), 0, 0, False
    else:
        lse_t, s_ln, s_lh, write_lse = lse, lse.stride(0), lse.stride(1), True
    h_kv = k_cache.shape[1] if hnd else k_cache.shape[2]
    group = q.shape[1] // h_kv
    descs = [kd, vd]
    if kernel is paged_prefill_sm90_ws_kernel:
        # Q by the copy warp where q can be described: [nnz, H_kv, group, 128] over q's strides
        box = q_box(group) if consts["Q_TMA"] else None
        if box is not None and _descriptor_ready(q):
            descs.append(GluonTensorDescriptor(q, [q.shape[0], h_kv, group, q.shape[2]],
                                               [q.stride(0), group * q.stride(1), q.stride(1), 1], box, layout))
        else:
            consts = dict(consts, Q_TMA=False)
            descs.append(None)
    kernel[(deal_grid(sm_count(q.device)),)](
        q, out, lse_t, work, deal, kv_indices, *descs, q.stride(0), q.stride(1), out.stride(0), out.stride(1),
        s_ln, s_lh, work.shape[0], k_cache.shape[0], group, mask_mode, float(sm_scale) * LOG2E,
        float(v_scale), PAGE=page_size, HND=bool(hnd), WRITE_LSE=write_lse, num_warps=4, **consts, **opts)


def _check_deal(deal, device) -> None:
    """A deal must hold at least the offsets of this device's persistent grid (deal_grid) and a
    spare entry; checked before any launch, so nothing is written."""
    if deal is not None:
        n_prog = deal_grid(sm_count(device))
        if deal.shape[0] < n_prog + 2:
            raise ValueError(f"deal: expected a schedule for this device's {n_prog} persistent programs "
                             f"(>= {n_prog + 2} entries), got {deal.shape[0]}")


def deal_pairs(reads: np.ndarray, live: np.ndarray, h_kv: int, n_prog: int, block_n: int) -> np.ndarray:
    """The persistent schedule (int32 [n_prog + 1 + listed + 1]: offsets, pair numbers, a spare 0)
    of the work rows' (row, kv head) pairs, pair s = kv head * rows + row taken in that order (the
    2-D grid's dispatch order: kv head outer, the schedule's most expensive first inner), each to
    the program whose dealt work is least so far (list scheduling; ties to the program that got
    there first). A pair costs its K / V tiles plus one (its fixed cost); dead rows are left out.
    reads: K / V rows each work row reads (build_work's cost), live: the rows with queries."""
    tiles = -(-np.asarray(reads, np.int64) // block_n) + 1
    top = int(tiles.max(initial=1))
    if top > 1 << 20:  # lpt_deal keeps a bucket per cost value: coarsen huge costs
        tiles = -(-tiles * (1 << 20) // top)
    costs = np.ascontiguousarray(np.tile(np.where(live, tiles, -1), h_kv), dtype=np.int32)
    return np.frombuffer(_C.lpt_deal(costs, n_prog), dtype=np.int32)


def _dense_strides(t, kv_layout):
    """(page, seq, head, num_heads) strides of a 3-D K/V tensor."""
    if kv_layout == 0:
        return (0, t.stride(0), t.stride(1), t.shape[1])
    return (0, t.stride(1), t.stride(0), t.shape[0])


def _paged_strides(t, kv_layout):
    if kv_layout == 0:
        return (t.stride(0), t.stride(1), t.stride(2), t.shape[2])
    return (t.stride(0), t.stride(2), t.stride(1), t.shape[1])


def block_m_for(device: torch.device, head_dim_qk: int, head_dim_vo: int, paged: bool = False) -> int:
    """Tile height (packed rows) of the kernel on `device`; plan() schedules with it."""
    return prefill_config(arch_family(device), head_dim_qk, head_dim_vo, paged=paged).block_m


def build_work(qo_indptr, kv_lens, kv_starts, mask_byte_off, group: int, block_m: int, causal: bool,
               window_left: int = -1, with_cost: bool = False):
    """The schedule (numpy int32 [n, WORK_WORDS]): one item per (request, tile of block_m packed
    (query, head-in-group) rows), the most expensive first (tile_kv_reads). qo_indptr [B+1],
    kv_lens / kv_starts / mask_byte_off [B] (kv_start: first K/V row for ragged, first kv_indices
    entry for paged). with_cost: also return each item's K / V rows read (int64 [n])."""
    qo = np.asarray(qo_indptr, dtype=np.int64)
    kv_lens = np.asarray(kv_lens, dtype=np.int64)
    qo_lens = np.diff(qo)
    req, row0, cost = tile_kv_reads(qo_lens, kv_lens, group, block_m, causal, window_left)
    total = req.shape[0]
    w = np.zeros((total, contract.WORK_WORDS), dtype=np.int32)
    w[:, 0] = row0
    w[:, 1] = qo[:-1][req]
    w[:, 2] = qo_lens[req]
    w[:, 3] = np.asarray(kv_starts, dtype=np.int64)[req]
    w[:, 4] = kv_lens[req]
    w[:, 5] = np.asarray(mask_byte_off, dtype=np.int64)[req]
    w[:, 6] = req
    order = np.argsort(-cost, kind="stable")
    return (w[order], cost[order]) if with_cost else w[order]


def group_staged_work(work: np.ndarray, cost: np.ndarray, n_groups: int) -> np.ndarray:
    """Lay a staged schedule out as request groups (int32 [G, rows, WORK_WORDS], G <= n_groups
    non-empty groups, dead rows zero): the op copies and attends group by group, so each request's
    items sit in one group. Group g aims at a share of the K / V reads (plus one a tile for its
    fixed cost) proportional to 1, 1, 2, 4, ...: the first group's copy is the one nothing
    overlaps, so it is kept small (measured on the H100 in session 11: no faster than one group,
    and equal shares overlapped better in device time; NOTES.md). Requests go heaviest first to the group furthest below its share; within a group
    the items keep the schedule's most-expensive-first order. work / cost: build_work(...,
    with_cost=True)."""
    live = work[:, 2] > 0
    work, cost = work[live], cost[live]
    reqs, inv = np.unique(work[:, 6], return_inverse=True)
    g = min(n_groups, reqs.shape[0])
    if g <= 1:
        return work[None]
    req_cost = np.bincount(inv, weights=cost + 1)
    share = np.array([1.0] + [2.0 ** i for i in range(g - 1)])
    target = share / share.sum() * req_cost.sum()
    load = np.zeros(g)
    owner = np.empty(reqs.shape[0], np.int64)
    for r in np.argsort(-req_cost, kind="stable"):
        j = int(np.argmax(target - load))
        owner[r] = j
        load[j] += req_cost[r]
    row_group = owner[inv]
    parts = [p for p in (work[row_group == j] for j in range(g)) if p.shape[0]]
    out = np.zeros((len(parts), max(p.shape[0] for p in parts), contract.WORK_WORDS), np.int32)
    for j, p in enumerate(parts):
        out[j, :p.shape[0]] = p
    return out


def short_pairs(family: str, n_prog: int, reads: np.ndarray, h_kv: int, head_dims: Tuple[int, int],
                graph: bool = False) -> bool:
    """plan() would deal this batch's (tile, kv head) pairs of the dense kernel to the persistent
    grid of n_prog programs (use_deal on the K / V rows each tile of the dense kernel's height
    reads, `reads` from tile_kv_reads): the pairs are short, so a staging copy of K / V would be a
    large share of the work. The paged wrapper reads the pages in place by default exactly there."""
    block_n = prefill_config(family, *head_dims).block_n
    mean_tiles = float((-(-reads // block_n)).mean()) if reads.size else 0.0
    return use_deal(family, n_prog, int(reads.size) * h_kv, mean_tiles, graph, True, head_dims)


def tile_kv_reads(qo_lens, kv_lens, group: int, block_m: int, causal: bool, window_left: int = -1):
    """Per tile of block_m packed rows (request by request): (request, first packed row, K / V
    rows the tile reads). Query i of a request sits at K / V position i + kv_len - qo_len; a tile
    reads up to kv_len, or under a causal mask up to the diagonal of its last query, and with a
    sliding window (window_left >= 0) from its first query's position - window_left on (the
    kernel skips the tiles left of it)."""
    qo_lens = np.asarray(qo_lens, dtype=np.int64)
    kv_lens = np.asarray(kv_lens, dtype=np.int64)
    tiles = -(-qo_lens * group // block_m)
    total = int(tiles.sum())
    req = np.repeat(np.arange(qo_lens.shape[0]), tiles)
    first = np.repeat(np.cumsum(tiles) - tiles, tiles)
    row0 = (np.arange(total) - first) * block_m
    offset = kv_lens[req] - qo_lens[req]
    cost = kv_lens[req]
    if causal:
        cost = np.minimum(cost, np.maximum((row0 + block_m - 1) // group + offset + 1, 0))
    if window_left >= 0:
        cost = np.maximum(cost - np.maximum(row0 // group + offset - window_left, 0), 0)
    return req, row0, cost


def _check_block_m(q, block_m, d_vo, paged=False):
    want = block_m_for(q.device, q.shape[2], d_vo, paged)
    if block_m != want:
        raise ValueError(f"block_m: the schedule was built for {block_m}, the kernel on {q.device} uses {want}")


# ---- CUDA key (Triton) ------------------------------------------------------------------------

def single_prefill_cuda(out, lse, q, k, v, packed_custom_mask, mask_mode, kv_layout, pos_encoding_mode, sm_scale,
                        window_left, logits_soft_cap, rope_scale, rope_theta, v_scale):
    contract.check_single_prefill(out, lse, q, k, v, packed_custom_mask, mask_mode, kv_layout, pos_encoding_mode,
                                  sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta, v_scale)
    qo_len = q.shape[0]
    ks, vs = _dense_strides(k, kv_layout), _dense_strides(v, kv_layout)
    kv_len = k.shape[0] if kv_layout == 0 else k.shape[1]
    group = q.shape[1] // ks[3]
    bm = block_m_for(q.device, q.shape[2], out.shape[2])
    _launch(out, lse, q, k, v, None, None, packed_custom_mask, paged=False, single=True, qo_len=qo_len,
            kv_len=kv_len, n_programs=triton.cdiv(qo_len * group, bm), page_size=1, k_strides=ks, v_strides=vs,
            mask_mode=mask_mode, pos_encoding_mode=pos_encoding_mode, sm_scale=sm_scale, window_left=window_left,
            logits_soft_cap=logits_soft_cap, rope_scale=rope_scale, rope_theta=rope_theta, v_scale=v_scale,
            n_tok=kv_len)


def batch_prefill_ragged_cuda(out, lse, q, k, v, work, packed_custom_mask, block_m, mask_mode, kv_layout,
                              pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta,
                              v_scale, deal=None):
    contract.check_batch_prefill_ragged(out, lse, q, k, v, work, packed_custom_mask, block_m, mask_mode, kv_layout,
                                        pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale,
                                        rope_theta, v_scale, deal)
    _check_block_m(q, block_m, out.shape[2])
    _check_deal(deal, q.device)
    _launch(out, lse, q, k, v, work, None, packed_custom_mask, paged=False, single=False, qo_len=0, kv_len=0,
            n_programs=work.shape[0], deal=deal, page_size=1, k_strides=_dense_strides(k, kv_layout),
            v_strides=_dense_strides(v, kv_layout), mask_mode=mask_mode, pos_encoding_mode=pos_encoding_mode,
            sm_scale=sm_scale, window_left=window_left, logits_soft_cap=logits_soft_cap, rope_scale=rope_scale,
            rope_theta=rope_theta, v_scale=v_scale, n_tok=k.shape[0] if kv_layout == 0 else k.shape[1])


def _stage_launcher(k_cache, v_cache, kv_indices, staging, block_m, group, k_strides, v_strides, page_size,
                    pdl=False):
    """(ks, vs, copy): the contiguous NHD views of `staging` the dense kernel reads, and a function
    copy(work) that launches stage_paged_kv_kernel over that schedule (later calls reuse the first
    call's compiled kernel, as _prefill_launcher's do). pdl: the copy lets a programmatic dependent
    launch (the dense kernel) start early (stage_paged_kv_kernel PDL_SIGNAL)."""
    h_kv = k_strides[3]
    d_qk, d_vo = k_cache.shape[3], v_cache.shape[3]
    rows = kv_indices.shape[0] * page_size
    nk = rows * h_kv * d_qk * k_cache.element_size()
    nv = rows * h_kv * d_vo * v_cache.element_size()
    # K's region is a multiple of 16 bytes when d_qk * element size is (every shipped head dim)
    ks = staging[:nk].view(k_cache.dtype).view(rows, h_kv, d_qk)
    vs = staging[nk:nk + nv].view(v_cache.dtype).view(rows, h_kv, d_vo)
    bdqk, bdvo = padded_dims(d_qk, d_vo)
    kb, vb = k_cache, v_cache
    if k_cache.dtype in FP8_FORMAT:
        kb, vb, ks_b, vs_b = k_cache.view(torch.uint8), v_cache.view(torch.uint8), ks.view(torch.uint8), vs.view(torch.uint8)
    else:
        ks_b, vs_b = ks, vs
    tail = (kv_indices, k_strides[0], k_strides[1], k_strides[2], v_strides[0], v_strides[1], v_strides[2],
            page_size, max(page_size, 1).bit_length() - 1, group, block_m)
    kwargs = dict(HEAD_DIM_QK=d_qk, HEAD_DIM_VO=d_vo, BLOCK_DQK=bdqk, BLOCK_DVO=bdvo, ROWS=STAGE_ROWS,
                  PAGE_POW2=page_pow2(page_size), PDL_SIGNAL=pdl,
                  **STAGE_LAUNCH.options(arch_family(k_cache.device)))
    run = repeat_launcher(stage_paged_kv_kernel, **kwargs)

    def copy(work):
        if work.shape[0]:
            run((work.shape[0], h_kv), kb, vb, ks_b, vs_b, work, *tail)
    return ks, vs, copy


_SIDE_STREAMS = {}


def _side_streams(device):
    """(copy stream, second dense stream) of `device`, made once: the copy stream at a higher
    priority, so freed SM slots go to the memory-bound copy before more attention programs."""
    s = _SIDE_STREAMS.get(device.index)
    if s is None:
        s = _SIDE_STREAMS[device.index] = (torch.cuda.Stream(device, priority=-1), torch.cuda.Stream(device))
    return s


def _staged_groups(device, groups, copy, attend):
    """copy(work) then attend(work, n_programs) for each request group's schedule in `groups`. One
    group: in order on the current stream, back to back (a dependent launch, pdl, depends on the
    kernel just before it). Several: every copy on the copy stream, in order, each
    followed by an event; group g's attention waits for its copy's event, alternating between the
    current stream and a second one (so group g + 1 starts while group g drains); the current
    stream then waits for both side streams (the op's writes are ordered before whatever the caller
    runs next, and a CUDA-graph capture joins the forked streams)."""
    if len(groups) == 1 or device.type != "cuda":
        for work in groups:
            copy(work)
            attend(work, work.shape[0])
        return
    main = torch.cuda.current_stream(device)
    copy_stream, dense_stream = _side_streams(device)
    copy_stream.wait_stream(main)
    dense_stream.wait_stream(main)
    done = []
    with torch.cuda.stream(copy_stream):
        for work in groups:
            copy(work)
            done.append(copy_stream.record_event())
    for g, (work, event) in enumerate(zip(groups, done)):
        stream = dense_stream if g % 2 else main
        stream.wait_event(event)
        with torch.cuda.stream(stream):
            attend(work, work.shape[0])
    main.wait_stream(dense_stream)
    main.wait_stream(copy_stream)


def batch_prefill_paged_cuda(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, block_m, mask_mode,
                             kv_layout, pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale,
                             rope_theta, v_scale, kv_staging=None, deal=None):
    contract.check_batch_prefill_paged(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, block_m,
                                       mask_mode, kv_layout, pos_encoding_mode, sm_scale, window_left,
                                       logits_soft_cap, rope_scale, rope_theta, v_scale, kv_staging, deal)
    _check_deal(deal, q.device)
    page_size = k_cache.shape[1] if kv_layout == 0 else k_cache.shape[2]
    k_strides, v_strides = _paged_strides(k_cache, kv_layout), _paged_strides(v_cache, kv_layout)
    scal = dict(mask_mode=mask_mode, pos_encoding_mode=pos_encoding_mode, sm_scale=sm_scale, window_left=window_left,
                logits_soft_cap=logits_soft_cap, rope_scale=rope_scale, rope_theta=rope_theta, v_scale=v_scale)
    if kv_staging is not None:
        # plan() chose staging and scheduled with the dense kernel's tile height
        _check_block_m(q, block_m, out.shape[2])
        if kv_staging.data_ptr() % 16:
            raise ValueError("kv_staging: expected a 16-byte-aligned buffer")
        groups = work if work.dim() == 3 else work.unsqueeze(0)
        if groups.shape[1] == 0 or q.shape[0] == 0:
            return
        family = arch_family(q.device)
        pdl = groups.shape[0] == 1 and q.device.type == "cuda" and stage_pdl(family)
        ks, vs, copy = _stage_launcher(k_cache, v_cache, kv_indices, kv_staging, block_m, q.shape[1] // k_strides[3],
                                       k_strides, v_strides, page_size, pdl=pdl)
        attend = _prefill_launcher(out, lse, q, ks, vs, None, packed_custom_mask, paged=False, single=False, qo_len=0,
                                   kv_len=0, page_size=1, k_strides=_dense_strides(ks, 0),
                                   v_strides=_dense_strides(vs, 0), n_tok=ks.shape[0], kv_start_mul=page_size,
                                   pdl=pdl, **scal)
        # (a deal comes with one group only: check_deal)
        _staged_groups(q.device, [groups[g] for g in range(groups.shape[0])], copy,
                       lambda w, n: attend(w, n, deal))
        return
    family = arch_family(q.device)
    d_qk, d_vo = q.shape[2], out.shape[2]
    if (deal is not None and work.dim() == 2 and block_m == block_m_for(q.device, d_qk, d_vo)
            and has_tensor_copy_engine(q.device)
            and paged_inplace(family, k_cache.dtype in FP8_FORMAT, _extra(pos_encoding_mode, logits_soft_cap, mask_mode),
                              window_left, d_qk, d_vo, page_size)):
        # plan() chose the in-place pages (the dense kernel's tile height, a deal)
        if work.shape[0] == 0 or q.shape[0] == 0:
            return
        if _descriptor_ready(k_cache) and _descriptor_ready(v_cache) and k_cache.dtype == q.dtype:
            paged_inplace_launch(out, lse, q, k_cache, v_cache, kv_indices, work, deal, page_size=page_size,
                                 hnd=kv_layout == 1, mask_mode=mask_mode, sm_scale=sm_scale, v_scale=v_scale)
            return
        # a cache the copy engine cannot address (unaligned base or strides): the paged kernel at
        # the schedule's tile height reads it instead
        _launch(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, paged=True, single=False,
                qo_len=0, kv_len=0, n_programs=work.shape[0], deal=deal, page_size=page_size, k_strides=k_strides,
                v_strides=v_strides, dense_tile=True, **scal)
        return
    _check_block_m(q, block_m, out.shape[2], paged=True)
    _launch(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, paged=True, single=False, qo_len=0,
            kv_len=0, n_programs=work.shape[0], deal=deal, page_size=page_size, k_strides=k_strides, v_strides=v_strides, **scal)


def _descriptor_ready(t) -> bool:
    """`t` meets the copy engine's rules: unit last stride, 16-byte-aligned base and strides."""
    esz = t.element_size()
    return t.stride(-1) == 1 and t.data_ptr() % 16 == 0 and all((s * esz) % 16 == 0 for s in t.stride()[:-1])


# ---- CPU key (reference) ----------------------------------------------------------------------

def _one_request(q, k, v, mask_bits, mask_mode, pos_encoding_mode, sm_scale, window_left, cap, rope_scale,
                 rope_theta, v_scale):
    o, lse = ref.single_attention(
        q, k, v, causal=mask_mode == 1, sm_scale=sm_scale, window_left=window_left, logits_soft_cap=cap,
        alibi=pos_encoding_mode == 2, rope=pos_encoding_mode == 1, rope_scale=rope_scale, rope_theta=rope_theta,
        custom_mask=mask_bits, v_scale=v_scale)
    return o, lse


def _write(out, lse, rows, o, l):
    out.narrow(0, rows.start, rows.stop - rows.start).copy_(o)
    if lse is not None:
        lse.narrow(0, rows.start, rows.stop - rows.start).copy_(l)


def single_prefill_cpu(out, lse, q, k, v, packed_custom_mask, mask_mode, kv_layout, pos_encoding_mode, sm_scale,
                       window_left, logits_soft_cap, rope_scale, rope_theta, v_scale):
    contract.check_single_prefill(out, lse, q, k, v, packed_custom_mask, mask_mode, kv_layout, pos_encoding_mode,
                                  sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta, v_scale)
    if kv_layout == 1:
        k, v = k.transpose(0, 1), v.transpose(0, 1)
    mask = None
    if mask_mode == 2:
        mask = ref.unpack_mask_bits(packed_custom_mask, 0, q.shape[0] * k.shape[0])
    o, l = _one_request(q, k, v, mask, mask_mode, pos_encoding_mode, sm_scale, window_left, logits_soft_cap,
                        rope_scale, rope_theta, v_scale)
    _write(out, lse, range(0, q.shape[0]), o, l)


def _requests(work):
    """Distinct requests of a schedule (flat or grouped): (qo_start, qo_len, kv_start, kv_len,
    mask_byte) per request."""
    w = work.reshape(-1, work.shape[-1]).tolist()
    return [tuple(x[1:6]) for x in w if x[2] > 0 and x[0] == 0]


def batch_prefill_ragged_cpu(out, lse, q, k, v, work, packed_custom_mask, block_m, mask_mode, kv_layout,
                             pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta,
                             v_scale, deal=None):
    """Reference path (`deal`, a persistent schedule of the same items, changes nothing here)."""
    contract.check_batch_prefill_ragged(out, lse, q, k, v, work, packed_custom_mask, block_m, mask_mode, kv_layout,
                                        pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale,
                                        rope_theta, v_scale, deal)
    if kv_layout == 1:
        k, v = k.transpose(0, 1), v.transpose(0, 1)
    for qs, ql, ks, kl, mb in _requests(work):
        mask = ref.unpack_mask_bits(packed_custom_mask, mb, ql * kl) if mask_mode == 2 else None
        o, l = _one_request(q[qs:qs + ql], k[ks:ks + kl], v[ks:ks + kl], mask, mask_mode, pos_encoding_mode,
                            sm_scale, window_left, logits_soft_cap, rope_scale, rope_theta, v_scale)
        _write(out, lse, range(qs, qs + ql), o, l)


def batch_prefill_paged_cpu(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, block_m, mask_mode,
                            kv_layout, pos_encoding_mode, sm_scale, window_left, logits_soft_cap, rope_scale,
                            rope_theta, v_scale, kv_staging=None, deal=None):
    """Reference path: reads the pages directly (kv_staging is scratch the GPU path may use, deal a
    persistent schedule of the same items)."""
    contract.check_batch_prefill_paged(out, lse, q, k_cache, v_cache, work, kv_indices, packed_custom_mask, block_m,
                                       mask_mode, kv_layout, pos_encoding_mode, sm_scale, window_left,
                                       logits_soft_cap, rope_scale, rope_theta, v_scale, kv_staging, deal)
    if kv_layout == 1:
        k_cache, v_cache = k_cache.transpose(1, 2), v_cache.transpose(1, 2)
    page = k_cache.shape[1]
    for qs, ql, ks, kl, mb in _requests(work):
        npages = -(-kl // page)
        sel = kv_indices[ks:ks + npages].long()
        k = k_cache[sel].reshape(-1, *k_cache.shape[2:])[:kl]
        v = v_cache[sel].reshape(-1, *v_cache.shape[2:])[:kl]
        mask = ref.unpack_mask_bits(packed_custom_mask, mb, ql * kl) if mask_mode == 2 else None
        o, l = _one_request(q[qs:qs + ql], k, v, mask, mask_mode, pos_encoding_mode, sm_scale, window_left,
                            logits_soft_cap, rope_scale, rope_theta, v_scale)
        _write(out, lse, range(qs, qs + ql), o, l)


register_op("single_prefill", cuda=single_prefill_cuda, cpu=single_prefill_cpu, fake=contract.single_prefill_fake)
register_op("batch_prefill_ragged", cuda=batch_prefill_ragged_cuda, cpu=batch_prefill_ragged_cpu,
            fake=contract.batch_prefill_ragged_fake)
register_op("batch_prefill_paged", cuda=batch_prefill_paged_cuda, cpu=batch_prefill_paged_cpu,
            fake=contract.batch_prefill_paged_fake)


# ---- shipped variants (AMD gate / AOT list) ---------------------------------------------------

def _register_variants():
    for qdt in (torch.float16, torch.bfloat16):
        q = TRITON_DTYPE[qdt]
        for kv in (q, "u8"):
            for d_qk, d_vo in HEAD_DIMS:
                bdqk, bdvo = padded_dims(d_qk, d_vo)
                for paged, pow2, rows in ((False, False, False), (True, True, True), (True, False, True),
                                          (True, True, False), (True, False, False)):
                    for extra in (False, True):
                        _register_one(q, kv, d_qk, d_vo, paged, extra, pow2, rows)
                if kv == q and (bdqk, bdvo) == (d_qk, d_vo):
                    _register_one(q, kv, d_qk, d_vo, False, False, False, False, tma=True)
                    if d_qk == d_vo and d_qk in LEAN_HEAD_DIMS:
                        _register_lean(q, d_qk, d_vo)


def _register_one(q, kv, d_qk, d_vo, paged, extra, pow2, rows=False, tma=False):
    bdqk, bdvo = padded_dims(d_qk, d_vo)
    sig = {
        "q_ptr": f"*{q}", "k_ptr": f"*{kv}", "v_ptr": f"*{kv}", "o_ptr": f"*{q}", "lse_ptr": "*fp32",
        "work_ptr": "*i32", "idx_ptr": "*i32", "mask_ptr": "*u8",
    }
    for n in ("stride_qn", "stride_qh", "stride_kp", "stride_kn", "stride_kh", "stride_vp", "stride_vn", "stride_vh",
              "stride_on", "stride_oh", "stride_ln", "stride_lh", "single", "single_qo_len", "single_kv_len",
              "page_size", "page_shift", "group", "kv_start_mul", "mask_mode", "window_left"):
        sig[n] = "i32"
    for n in ("sm_scale", "soft_cap", "v_scale"):
        sig[n] = "fp32"
    sig.update({"alibi_n": "i32", "use_rope": "i32", "rope_rcp_scale": "fp32", "rope_log2_theta": "fp32",
                "write_lse": "i32", "fp8_exp": "i32", "fp8_man": "i32", "fp8_bias": "i32",
                "k_desc": f"*{kv}", "v_desc": f"*{kv}", "k_rows_per_head": "i32", "k_cols_per_head": "i32",
                "v_rows_per_head": "i32", "v_cols_per_head": "i32", "n_work": "i32", "deal_ptr": "*i32"})
    for n in ("HEAD_DIM_QK", "HEAD_DIM_VO", "PAGED", "KV_FP8", "EXTRA", "BLOCK_M", "BLOCK_N", "BLOCK_DQK", "BLOCK_DVO",
              "PREFETCH_PAGES", "PAGE_POW2", "SHARED_ROWS", "TMA", "DIAG_IN_LOOP", "PERSISTENT",
              "PDL_WAIT"):
        sig[n] = "constexpr"

    fp8 = kv == "u8"
    families = ()  # every family
    if tma:
        # sm90 only (the copy engine's descriptors): for the sm90 compile report, not the AMD gate
        bn = prefill_config("sm90", d_qk, d_vo).block_n
        sig["k_desc"] = f"tensordesc<{q}[{bn}, {d_qk}]>"
        sig["v_desc"] = f"tensordesc<{q}[{bn}, {d_vo}]>"
        families = ("sm90",)

    def options(fam):
        return prefill_config(fam, d_qk, d_vo, extra, fp8, paged).launch.options(fam)

    # gfx942 and gfx950 share the tile (BLOCK_M, BLOCK_N); only launch options differ.
    cfg = prefill_config("sm90" if tma else "gfx942", d_qk, d_vo, extra, fp8, paged)
    assert tma or prefill_config("gfx950", d_qk, d_vo, extra, fp8, paged).block_n == cfg.block_n
    # each variant also in its persistent form (over plan()'s deal: use_deal), sm90 only (the sm90
    # compile report; on AMD the op runs the 2-D grid)
    for persistent in (False, True):
        register_variant(KernelVariant(
            kernel="attention.prefill_kernel",
            variant=f"{q}_kv{kv}_d{d_qk}x{d_vo}_{'paged' if paged else 'dense'}{'_pow2' if pow2 else ''}"
                    f"{'_rows' if rows else ''}{'_extra' if extra else ''}{'_tma' if tma else ''}"
                    f"{'_dealt' if persistent else ''}",
            fn=prefill_kernel, signature=sig,
            constexprs=dict(HEAD_DIM_QK=d_qk, HEAD_DIM_VO=d_vo, PAGED=paged, KV_FP8=kv == "u8", EXTRA=extra,
                            BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
                            BLOCK_DQK=bdqk, BLOCK_DVO=bdvo, PREFETCH_PAGES=paged,
                            PAGE_POW2=pow2, SHARED_ROWS=rows, TMA=tma,
                            DIAG_IN_LOOP=tma,  # as diag_in_loop(tma) by default
                            PERSISTENT=persistent,
                            PDL_WAIT=False),  # dependent launches: sm90 staged path only (stage_pdl)
            options=options, min_occupancy=cfg.min_occupancy, families=("sm90",) if persistent else families,
        ))


def _register_lean(q, d_qk, d_vo):
    """prefill_persistent_kernel's variants (lean_persistent: sm90 only, for the sm90 compile
    report), lse or not."""
    cfg = prefill_config("sm90", d_qk, d_vo)
    sig = {"q_ptr": f"*{q}", "k_ptr": f"*{q}", "v_ptr": f"*{q}", "o_ptr": f"*{q}", "lse_ptr": "*fp32",
           "work_ptr": "*i32", "deal_ptr": "*i32", "k_desc": f"tensordesc<{q}[{cfg.block_n}, {d_qk}]>",
           "v_desc": f"tensordesc<{q}[{cfg.block_n}, {d_vo}]>"}
    for n in ("stride_qn", "stride_qh", "stride_kn", "stride_kh", "stride_vn", "stride_vh", "stride_on",
              "stride_oh", "stride_ln", "stride_lh", "n_work", "group", "kv_start_mul", "mask_mode"):
        sig[n] = "i32"
    sig.update({"qk_scale": "fp32", "v_scale": "fp32", "k_rows_per_head": "i32", "k_cols_per_head": "i32",
                "v_rows_per_head": "i32", "v_cols_per_head": "i32"})
    for write_lse in (False, True):
        ce = dict(HEAD_DIM_QK=d_qk, HEAD_DIM_VO=d_vo, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
                  WRITE_LSE=write_lse, PDL_WAIT=False)
        sig.update({n: "constexpr" for n in ce})
        register_variant(KernelVariant(
            kernel="attention.prefill_persistent_kernel",
            variant=f"{q}_d{d_qk}x{d_vo}{'_lse' if write_lse else ''}",
            fn=prefill_persistent_kernel, signature=dict(sig), constexprs=ce, options=cfg.launch.options,
            min_occupancy=cfg.min_occupancy, families=("sm90",),
        ))


def _register_stage_variants():
    for dt in ("fp16", "bf16", "u8"):
        for d_qk, d_vo in HEAD_DIMS:
            bdqk, bdvo = padded_dims(d_qk, d_vo)
            for pow2 in (True, False):
                sig = {"k_ptr": f"*{dt}", "v_ptr": f"*{dt}", "ks_ptr": f"*{dt}", "vs_ptr": f"*{dt}",
                       "work_ptr": "*i32", "idx_ptr": "*i32"}
                for n in ("stride_kp", "stride_kn", "stride_kh", "stride_vp", "stride_vn", "stride_vh", "page_size",
                          "page_shift", "group", "block_m"):
                    sig[n] = "i32"
                # PDL_SIGNAL: sm90 only (stage_pdl)
                ce = dict(HEAD_DIM_QK=d_qk, HEAD_DIM_VO=d_vo, BLOCK_DQK=bdqk, BLOCK_DVO=bdvo, ROWS=STAGE_ROWS,
                          PAGE_POW2=pow2, PDL_SIGNAL=False)
                sig.update({n: "constexpr" for n in ce})
                register_variant(KernelVariant(
                    kernel="attention.stage_paged_kv_kernel",
                    variant=f"{dt}_d{d_qk}x{d_vo}{'_pow2' if pow2 else ''}",
                    fn=stage_paged_kv_kernel, signature=sig, constexprs=ce, options=STAGE_LAUNCH.options,
                    min_occupancy=1,
                ))


_register_variants()
_register_stage_variants()
assert set(FAMILIES) >= {"gfx942", "gfx950"}
