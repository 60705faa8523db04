"""Run every torch.ops.flashinfer op once against its reference: `python -m flashinfer_ops.selfcheck`.

Without a GPU, run it with TRITON_INTERPRET=1 (python -m flashinfer sets it) to execute the Triton
kernels in Triton's CPU interpreter. Used by `python -m flashinfer` (environment report) and, under compute-sanitizer memcheck, by
scripts/device_check.sh. Each entry builds odd-sized random inputs on `device`, runs the op through
the dispatcher and returns the max abs error against the float32 reference together with the
tolerance. An op with no entry is reported as unchecked (and fails --strict).
"""
from __future__ import annotations

import sys
from typing import Callable, Dict, List, Tuple

import torch

CHECKS: Dict[str, Callable[[str], Tuple[float, float]]] = {}


def call(name: str, *args) -> None:
    """Run the Triton implementation of flashinfer::<name>: through the dispatcher on a GPU, or
    (no GPU, TRITON_INTERPRET=1) by calling the CUDA-key implementation on CPU tensors, so the
    self-check exercises the real kernels either way rather than the CPU reference."""
    if args and isinstance(args[0], torch.Tensor) and args[0].device.type == "cuda":
        op, _, overload = name.partition(".")
        getattr(getattr(torch.ops.flashinfer, op), overload or "default")(*args)
        return
    from .configs import interpreting
    from ._library import implementation

    if not interpreting():
        raise RuntimeError("no GPU: set TRITON_INTERPRET=1 before importing flashinfer to check the kernels")
    implementation(name, "CUDA")(*args)


def selfcheck(*ops: str):
    def deco(fn):
        for op in ops:
            CHECKS[op] = fn
        return fn

    return deco


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to max(1, max |b|): bf16 outputs carry ~2^-8 relative rounding."""
    if not a.numel():
        return 0.0
    return (a.float().cpu() - b.float().cpu()).abs().max().item() / max(1.0, b.float().abs().max().item())


@selfcheck("rmsnorm", "gemma_rmsnorm", "fused_add_rmsnorm", "gemma_fused_add_rmsnorm", "layernorm")
def _norms(device):
    from .reference import norm as ref

    x = torch.randn(19, 999, dtype=torch.bfloat16, device=device)
    r = torch.randn_like(x)
    w = torch.randn(999, dtype=torch.bfloat16, device=device)
    out = torch.empty_like(x)
    errs = []
    call("rmsnorm", out, x, w, 1e-6)
    errs.append(_err(out, ref.rmsnorm(x, w, 1e-6)))
    call("gemma_rmsnorm", out, x, w, 1e-6)
    errs.append(_err(out, ref.rmsnorm(x, w, 1e-6, 1.0)))
    want_x, want_r = ref.fused_add_rmsnorm(x, r, w, 1e-6)
    xx, rr = x.clone(), r.clone()
    call("fused_add_rmsnorm", xx, rr, w, 1e-6)
    errs += [_err(xx, want_x), _err(rr, want_r)]
    g, b = torch.randn(999, device=device), torch.randn(999, device=device)
    call("layernorm", out, x, g, b, 1e-5)
    errs.append(_err(out, ref.layernorm(x, g, b, 1e-5)))
    return max(errs), 2e-2  # a few bf16 ulps of the largest output


@selfcheck("silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul")
def _acts(device):
    from .reference import activation as ref

    x = torch.randn(19, 2 * 989, dtype=torch.float16, device=device)
    out = torch.empty(19, 989, dtype=torch.float16, device=device)
    errs = []
    for name in ("silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul"):
        call(name, out, x)
        errs.append(_err(out, getattr(ref, name)(x)))
    return max(errs), 1e-2


@selfcheck("packbits", "segment_packbits")
def _pack(device):
    from .reference import quantization as ref

    x = torch.rand(989, device=device) > 0.5
    out = torch.empty(124, dtype=torch.uint8, device=device)
    call("packbits", out, x, "little")
    e1 = _err(out, ref.packbits(x, "little"))
    ip = torch.tensor([0, 19, 19, 500, 989], dtype=torch.int32, device=device)
    want, new_ip = ref.segment_packbits(x.cpu(), ip.cpu(), "big")
    seg = torch.empty(want.numel(), dtype=torch.uint8, device=device)
    call("segment_packbits", seg, x, ip, new_ip.to(device), "big")
    return max(e1, _err(seg, want)), 0.0


def registered_ops() -> List[str]:
    return sorted({s.name.split("::", 1)[1] for s in torch._C._jit_get_all_schemas() if s.name.startswith("flashinfer::")})


def run_all(device: str, verbose: bool = True) -> Tuple[int, int, List[str]]:
    """Returns (passed, failed, unchecked op names)."""
    import flashinfer  # noqa: F401  (registers every op)
    import flashinfer._selfchecks  # noqa: F401  (API-level checks of the other domains)

    done, passed, failed = set(), 0, 0
    ops = registered_ops()
    for op in ops:
        fn = CHECKS.get(op)
        if fn is None or fn in done:
            continue
        done.add(fn)
        names = [k for k, v in CHECKS.items() if v is fn]
        try:
            err, tol = fn(device)
            ok = err <= tol
        except Exception as e:  # report and keep going: one broken op must not hide the rest
            err, tol, ok = float("nan"), 0.0, False
            if verbose:
                print(f"  {','.join(names)}: {type(e).__name__}: {e}")
        passed += ok
        failed += not ok
        if verbose:
            print(f"  {'ok  ' if ok else 'FAIL'} {','.join(names):60} max|err| {err:.3g} (tol {tol:g})")
    unchecked = [op for op in ops if op not in CHECKS]
    return passed, failed, unchecked


def main() -> int:
    if __name__ == "__main__":
        # Under `python -m` this file is __main__, while the API-level checks register into the
        # importable flashinfer_ops.selfcheck: run that module's copy.
        from flashinfer_ops import selfcheck as importable

        return importable.main()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"self-check on {device}" + ("" if device == "cuda" else " (Triton interpreter)"))
    passed, failed, unchecked = run_all(device)
    print(f"{passed} passed, {failed} failed")
    if unchecked:
        print(f"ops without a self-check: {unchecked}")
    return 1 if failed or ("--strict" in sys.argv and unchecked) else 0


if __name__ == "__main__":
    sys.exit(main())
