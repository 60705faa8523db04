import numpy as np
import torch

from flashinfer_ops.configs import sm_count
from flashinfer_ops.configs.attention.prefill import deal_grid
from flashinfer_ops.launch.attention.prefill import block_m_for, build_work, deal_pairs
from helpers import strided

# fp8 K/V are not sampled: opcheck's schema check compares inputs with torch.allclose, which has no
# fp8 kernel ("mul_cpu_reduced_float not implemented for Float8_e4m3fn"). fp8 K/V are covered by
# tests/kernels/test_attention_prefill.py and tests/api/test_prefill_api.py.


def _rand(shape, dtype, device):
    return torch.randn(shape, device=device).to(dtype)


def _single(device):
    out = []
    for dtype, kvdt, mode, lay in ((torch.float16, torch.float16, 1, 0), (torch.bfloat16, torch.bfloat16, 0, 1)):
        q = _rand((5, 4, 64), dtype, device)
        k = _rand((9, 2, 64) if lay == 0 else (2, 9, 64), kvdt, device)
        v = _rand((9, 2, 64) if lay == 0 else (2, 9, 64), kvdt, device)
        out.append((torch.empty(5, 4, 64, dtype=dtype, device=device), torch.empty(5, 4, device=device), q, k, v,
                    None, mode, lay, 0, 0.125, -1, 0.0, 1.0, 1e4, 1.0))
    # non-contiguous q, custom mask, soft cap, ALiBi, no lse
    q = strided(_rand((3, 2, 64), torch.float16, device))
    k, v = _rand((7, 1, 64), torch.float16, device), _rand((7, 1, 64), torch.float16, device)
    mask = torch.randint(0, 256, (3,), dtype=torch.uint8, device=device)
    out.append((torch.empty(3, 2, 64, dtype=torch.float16, device=device), None, q, k, v, mask, 2, 0, 2, 0.125, 3,
                20.0, 1.0, 1e4, 0.5))
    # empty
    out.append((torch.empty(0, 2, 64, dtype=torch.float16, device=device), torch.empty(0, 2, device=device),
                _rand((0, 2, 64), torch.float16, device), _rand((4, 2, 64), torch.float16, device),
                _rand((4, 2, 64), torch.float16, device), None, 0, 0, 0, 0.125, -1, 0.0, 1.0, 1e4, 1.0))
    return out


def _work(device, qo, kv_lens, kv_starts, group, d_qk, d_vo, causal, byte_off=None, paged=False):
    bm = block_m_for(torch.device(device), d_qk, d_vo, paged)
    b = len(kv_lens)
    w = build_work(np.asarray(qo), np.asarray(kv_lens), np.asarray(kv_starts),
                   np.zeros(b, np.int64) if byte_off is None else np.asarray(byte_off), group, bm, causal)
    full = np.zeros((max(1, w.shape[0]) + 3, 8), np.int32)  # spare (unused) slots, as in graph mode
    full[: w.shape[0]] = w
    return torch.from_numpy(full).to(device), bm


def _deal(work, h_kv, device):
    """A persistent schedule of every (row, kv head) pair of `work` (plan()'s deal_pairs), costed
    by the rows' kv_len."""
    w = work.cpu().numpy()
    d = deal_pairs(w[:, 4], w[:, 2] > 0, h_kv, deal_grid(sm_count(torch.device(device))), 64)
    return torch.from_numpy(d.copy()).to(device)


def _ragged(device):
    out = []
    qo, kv = [0, 3, 3, 8], [5, 0, 6]
    kv_ip = np.concatenate([[0], np.cumsum(kv)])
    for dtype, kvdt, mode, lay in ((torch.float16, torch.float16, 1, 0), (torch.bfloat16, torch.bfloat16, 0, 1)):
        work, bm = _work(device, qo, kv, kv_ip[:-1], 2, 64, 64, mode == 1)
        q = _rand((8, 4, 64), dtype, device)
        shp = (11, 2, 64) if lay == 0 else (2, 11, 64)
        out.append((torch.empty(8, 4, 64, dtype=dtype, device=device), torch.empty(8, 4, device=device), q,
                    _rand(shp, kvdt, device), _rand(shp, kvdt, device), work, None, bm, mode, lay, 0, 0.125, -1, 0.0,
                    1.0, 1e4, 1.0))
    # the persistent form over a deal of the same pairs
    out.append(out[0][:-1] + (1.0, _deal(out[0][5], 2, device)))
    # non-contiguous q, d_qk 192 / d_vo 128, custom mask (one byte-aligned segment per request), RoPE
    work, bm = _work(device, [0, 2, 5], [3, 4], [0, 3], 1, 192, 128, False, byte_off=[0, 1])
    q = strided(_rand((5, 2, 192), torch.float16, device))
    out.append((torch.empty(5, 2, 128, dtype=torch.float16, device=device), None, q,
                _rand((7, 2, 192), torch.float16, device), _rand((7, 2, 128), torch.float16, device), work,
                torch.randint(0, 256, (3,), dtype=torch.uint8, device=device), bm, 2, 0, 1, 0.1, -1, 0.0, 1.0, 1e4,
                1.0))
    # empty batch
    work, bm = _work(device, [0], [], [], 2, 64, 64, True)
    out.append((torch.empty(0, 4, 64, dtype=torch.float16, device=device), torch.empty(0, 4, device=device),
                _rand((0, 4, 64), torch.float16, device), _rand((0, 2, 64), torch.float16, device),
                _rand((0, 2, 64), torch.float16, device), work, None, bm, 1, 0, 0, 0.125, -1, 0.0, 1.0, 1e4, 1.0))
    return out


def _paged(device):
    out = []
    page = 4
    qo, kv = [0, 3, 5], [6, 9]
    pages = [-(-x // page) for x in kv]
    ip = np.concatenate([[0], np.cumsum(pages)])
    idx = torch.tensor([4, 0, 2, 5, 1], dtype=torch.int32, device=device)
    for dtype, kvdt, lay, five_d in ((torch.float16, torch.float16, 0, True), (torch.bfloat16, torch.bfloat16, 1, False)):
        work, bm = _work(device, qo, kv, ip[:-1], 2, 64, 64, True, paged=True)
        shp = (6, page, 2, 64) if lay == 0 else (6, 2, page, 64)
        if five_d:
            kc, vc = _rand((6, 2) + shp[1:], kvdt, device).unbind(1)  # strided views of one 5-D cache
        else:
            kc, vc = _rand(shp, kvdt, device), _rand(shp, kvdt, device)
        out.append((torch.empty(5, 4, 64, dtype=dtype, device=device), torch.empty(5, 4, device=device),
                    strided(_rand((5, 4, 64), dtype, device)), kc, vc, work, idx, None, bm, 1, lay, 0, 0.125, -1, 0.0,
                    1.0, 1e4, 1.0))
    # staged: the dense kernel's schedule and a staging buffer (len(idx) * page * H_kv * (64 + 64) * 2 bytes)
    work, bm = _work(device, qo, kv, ip[:-1], 2, 64, 64, True)
    kc, vc = _rand((6, page, 2, 64), torch.float16, device), _rand((6, page, 2, 64), torch.float16, device)
    out.append((torch.empty(5, 4, 64, dtype=torch.float16, device=device), torch.empty(5, 4, device=device),
                _rand((5, 4, 64), torch.float16, device), kc, vc, work, idx, None, bm, 1, 0, 0, 0.125, -1, 0.0,
                1.0, 1e4, 1.0, torch.empty(5 * page * 2 * 128 * 2 + 16, dtype=torch.uint8, device=device)))
    out.append(out[-1] + (_deal(work, 2, device),))  # staged, persistent form
    work, bm = _work(device, [0], [], [], 2, 64, 64, False, paged=True)
    out.append((torch.empty(0, 4, 64, dtype=torch.float16, device=device), None,
                _rand((0, 4, 64), torch.float16, device), _rand((2, page, 2, 64), torch.float16, device),
                _rand((2, page, 2, 64), torch.float16, device), work, torch.zeros(1, dtype=torch.int32, device=device),
                None, bm, 0, 0, 0, 0.125, -1, 0.0, 1.0, 1e4, 1.0))
    return out


SAMPLES = {
    "single_prefill.default": _single,
    "batch_prefill_ragged.default": _ragged,
    "batch_prefill_paged.default": _paged,
}
