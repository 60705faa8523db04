"""The cached-compiled-kernel launch path (flashinfer_ops/_launch.py) must only reuse a kernel
where Triton would: tensors of another alignment or ints of another divisibility class get their
own compile, and results stay right when calls alternate between them."""
import pytest
import torch

import flashinfer
from flashinfer_ops import _launch
from flashinfer_ops.reference import norm as ref
from helpers import assert_close


@pytest.mark.gpu
def test_alternating_specialisations_stay_correct():
    w = torch.randn(4096, dtype=torch.bfloat16, device="cuda")
    base = torch.randn(64 * 4096 + 8, dtype=torch.bfloat16, device="cuda")
    aligned = base[: 64 * 4096].view(64, 4096)
    misaligned = base[1: 1 + 64 * 4096].view(64, 4096)  # data_ptr off by 2 bytes: not 16-aligned
    odd = torch.randn(33, 4000, dtype=torch.bfloat16, device="cuda")[:, :3999]  # odd hidden and row stride
    w_odd = torch.randn(3999, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        for x, ww in ((aligned, w), (misaligned, w), (odd, w_odd), (aligned[:1], w)):
            assert_close(flashinfer.rmsnorm(x, ww), ref.rmsnorm(x, ww, 1e-6))
    from flashinfer_ops.kernels.norm import norm_kernel

    keys = [k for k in _launch._CACHE if k[0] == id(norm_kernel)]
    assert len(keys) >= 3, "aligned, misaligned and odd-stride calls must not share one compiled kernel"


@pytest.mark.gpu
def test_fast_path_is_used_after_the_first_call(monkeypatch):
    x = torch.randn(8, 1024, dtype=torch.float16, device="cuda")
    w = torch.randn(1024, dtype=torch.float16, device="cuda")
    flashinfer.rmsnorm(x, w)
    calls = []
    from flashinfer_ops.kernels import norm as kn

    real_getitem = type(kn.norm_kernel).__getitem__
    monkeypatch.setattr(type(kn.norm_kernel), "__getitem__", lambda self, grid: calls.append(grid) or real_getitem(self, grid))
    out = flashinfer.rmsnorm(x, w)
    assert calls == [], "a cached specialisation should launch without Triton's binder"
    assert_close(out, ref.rmsnorm(x, w, 1e-6))


@pytest.mark.gpu
def test_descriptor_launches_take_the_fast_path(monkeypatch):
    """Kernels taking host tensor descriptors (sm90 dense prefill) are cached too, keyed on the
    descriptors' element type and block shape: two head dims alternate, each stays right, and a
    repeated call skips Triton's binder."""
    from flashinfer_ops.kernels.attention import prefill as kp
    from flashinfer_ops.launch.attention import prefill as P
    from flashinfer_ops.reference.attention import single_attention

    if P.TensorDescriptor is None or torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("needs sm90+ and a Triton with host tensor descriptors")
    monkeypatch.setattr(_launch, "_DESC_TYPE", P.TensorDescriptor)  # FLASHINFER_FAST_LAUNCH_DESCRIPTORS=1
    cases = []
    for n, d in ((301, 64), (77, 128)):
        q = torch.randn(n, 8, d, device="cuda").to(torch.bfloat16)
        k = torch.randn(n + 19, 2, d, device="cuda").to(torch.bfloat16)
        v = torch.randn(n + 19, 2, d, device="cuda").to(torch.bfloat16)
        cases.append((q, k, v, single_attention(q, k, v, causal=True)[0]))

    def check_all():
        for q, k, v, want in cases:
            got = flashinfer.single_prefill_with_kv_cache(q, k, v, causal=True)
            assert (got.float() - want).abs().max().item() < 3e-2

    for _ in range(2):
        check_all()
    calls = []
    real_getitem = type(kp.prefill_kernel).__getitem__
    monkeypatch.setattr(type(kp.prefill_kernel), "__getitem__",
                        lambda self, grid: calls.append(grid) or real_getitem(self, grid))
    check_all()
    assert calls == [], "a cached descriptor specialisation should launch without Triton's binder"


def test_trailing_parameters_take_keywords_then_declared_defaults():
    """The cached launch passes a kernel's parameters after the positional ones by keyword, or by
    their declared default where the caller leaves them out (a parameter added with a default must
    not break launchers that predate it); with neither, nothing is cached (None)."""
    import triton
    import triton.language as tl

    @triton.jit
    def kern(x_ptr, n, A: tl.constexpr, extra=None, B: tl.constexpr = 7):
        pass

    assert _launch._trailing(kern, 2, {"A": 1}) == [1, None, 7]
    assert _launch._trailing(kern, 2, {"A": 1, "B": 3, "extra": 5}) == [1, 5, 3]
    assert _launch._trailing(kern, 3, {"B": 3}) == [None, 3]
    assert _launch._trailing(kern, 2, {}) is None  # A has no default
