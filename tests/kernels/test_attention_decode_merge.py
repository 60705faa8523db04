"""Triton attention-state merge (merge_state, merge_state_in_place, merge_states) against the
oracle: attention over the union of keys (reference single_attention), and reference.merge_states."""
import pytest
import torch

from flashinfer_ops.reference import attention as ref
from helpers import KERNEL_DEVICE, needs_kernels, poison, run_kernel, shapes, strided

pytestmark = needs_kernels

SEQS = shapes([1, 7, 130], [1, 3])
HEADS = shapes([1, 8, 32], [3])
DIMS = shapes([64, 128, 256, 192], [64, 40])
TOL = {torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2), torch.float32: (1e-5, 1e-5)}


def _states(seq, h, d, dtype, n_parts):
    """Per query row, attention over kv_len keys split into n_parts chunks: the chunk states and
    the full-attention oracle."""
    kv = 5 * n_parts + 3
    q = torch.randn(seq, h, d, device=KERNEL_DEVICE)
    k = torch.randn(kv, h, d, device=KERNEL_DEVICE)
    v = torch.randn(kv, h, d, device=KERNEL_DEVICE)
    bounds = [0, 4] + [4 + (kv - 4) * (i + 1) // (n_parts - 1) for i in range(n_parts - 1)]
    vs, ss = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        o, lse = zip(*[ref.single_attention(q[r:r + 1], k[a:b], v[a:b]) for r in range(seq)])
        vs.append(torch.cat(o).to(dtype))
        ss.append(torch.cat(lse))
    want = [ref.single_attention(q[r:r + 1], k, v) for r in range(seq)]
    return vs, ss, torch.cat([w[0] for w in want]), torch.cat([w[1] for w in want])


@pytest.mark.parametrize("seq", SEQS)
@pytest.mark.parametrize("h", HEADS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_merge_state(seq, h, d, dtype):
    (va, vb), (sa, sb), want_v, want_s = _states(seq, h, d, dtype, 2)
    vo = poison(torch.empty_like(va))
    so = poison(torch.empty_like(sa))
    run_kernel("merge_state", vo, so, strided(va), sa, vb, sb)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(vo.float(), want_v, rtol=rtol, atol=atol)
    torch.testing.assert_close(so, want_s, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("with_mask", [False, True])
def test_merge_state_in_place(dtype, with_mask):
    seq, h, d = shapes((33, 8, 128), (4, 2, 64))
    (va, vb), (sa, sb), want_v, want_s = _states(seq, h, d, dtype, 2)
    mask = (torch.rand(seq, device=KERNEL_DEVICE) > 0.5) if with_mask else None
    v0, s0 = va.clone(), sa.clone()
    run_kernel("merge_state_in_place", va, sa, vb, sb, mask)
    keep = mask if with_mask else torch.ones(seq, dtype=torch.bool, device=KERNEL_DEVICE)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(va[keep].float(), want_v[keep], rtol=rtol, atol=atol)
    torch.testing.assert_close(sa[keep], want_s[keep], rtol=1e-4, atol=1e-4)
    assert torch.equal(va[~keep], v0[~keep]) and torch.equal(sa[~keep], s0[~keep])


@pytest.mark.parametrize("n", shapes([1, 2, 5, 33], [1, 3]))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_merge_states(n, dtype):
    seq, h, d = shapes((17, 8, 128), (3, 2, 64))
    if n == 1:
        vs, ss, _, _ = _states(seq, h, d, dtype, 2)
        vs, ss = vs[:1], ss[:1]
        want_v, want_s = vs[0].float(), ss[0]
    else:
        vs, ss, want_v, want_s = _states(seq, h, d, dtype, n)
    v = torch.stack(vs, 1)
    s = torch.stack(ss, 1)
    vo = poison(torch.empty(seq, h, d, dtype=dtype, device=KERNEL_DEVICE))
    so = poison(torch.empty(seq, h, device=KERNEL_DEVICE))
    run_kernel("merge_states", vo, so, v, s)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(vo.float(), want_v, rtol=rtol, atol=atol)
    torch.testing.assert_close(so, want_s, rtol=1e-4, atol=1e-4)
    rv, rs = ref.merge_states(v, s)
    torch.testing.assert_close(vo.float(), rv, rtol=rtol, atol=atol)


def test_merge_with_empty_states():
    """-inf states weigh nothing; all -inf gives v 0, s -inf."""
    seq, h, d = 2, 2, 64
    va = torch.randn(seq, h, d, device=KERNEL_DEVICE).half()
    sa = torch.randn(seq, h, device=KERNEL_DEVICE)
    vb = torch.randn_like(va)
    sb = torch.full_like(sa, float("-inf"))
    vo, so = poison(torch.empty_like(va)), poison(torch.empty_like(sa))
    run_kernel("merge_state", vo, so, va, sa, vb, sb)
    torch.testing.assert_close(vo, va)
    torch.testing.assert_close(so, sa)
    run_kernel("merge_state", vo, so, va, sb, vb, sb)
    assert (vo == 0).all() and torch.isneginf(so).all()
