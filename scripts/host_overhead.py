"""Where the eager host time of a small op goes (GPU): facade -> torch.ops dispatch -> our checks ->
Triton's launcher. Prints microseconds per call for each layer, rmsnorm 1 x 4096 bf16.

    python scripts/host_overhead.py
"""
import statistics
import time

import torch
import triton

import flashinfer
from flashinfer_ops.configs import arch_family
from flashinfer_ops.fake import norm as contract
from flashinfer_ops.kernels.norm import norm_kernel
from flashinfer_ops.launch import norm as launch


def per_call_us(fn, n=2000):
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n // 5):
            fn()
        samples.append((time.perf_counter() - t0) * 1e6 / (n // 5))
        torch.cuda.synchronize()
    return statistics.median(samples)


def main():
    x = torch.randn(1, 4096, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(4096, dtype=torch.bfloat16, device="cuda")
    out = torch.empty_like(x)
    fam = arch_family(x.device)
    bm, bn, single, opts = launch._launch_plan(fam, 4096)

    def raw():
        norm_kernel[(1,)](out, x, x, w, w, 1, 1, 4096, out.stride(0), 0, x.stride(0), 0, x.stride(0), 0, 1e-6, 0.0,
                          LAYERNORM=False, FUSED_ADD=False, SINGLE_PASS=single, BLOCK_M=bm, BLOCK_N=bn, **opts)

    args = (out, x, x, w, w, 1, 1, 4096, out.stride(0), 0, x.stride(0), 0, x.stride(0), 0, 1e-6, 0.0,
            False, False, single, bm, bn)
    compiled = norm_kernel[(1,)](*args[:16], LAYERNORM=False, FUSED_ADD=False, SINGLE_PASS=single, BLOCK_M=bm,
                                 BLOCK_N=bn, **opts)
    runner = compiled[(1, 1, 1)]
    stream = torch.cuda.current_stream().cuda_stream

    def compiled_run():
        compiled.run(1, 1, 1, stream, compiled.function, compiled.packed_metadata, None, None, None, *args)

    rows = [
        ("CompiledKernel[grid](*args) (skips the binder)", lambda: runner(*args)),
        ("CompiledKernel.run(...) (C launcher only)", compiled_run),
        ("torch empty_like (allocator)", lambda: torch.empty_like(x)),
        ("checks (fake/norm.check_rmsnorm)", lambda: contract.check_rmsnorm(out, x, w, 1e-6)),
        ("Triton launch, kernel[grid](...) direct", raw),
        ("launch.rmsnorm_cuda (checks + plan + launch)", lambda: launch.rmsnorm_cuda(out, x, w, 1e-6)),
        ("torch.ops.flashinfer.rmsnorm (dispatcher + the above)", lambda: torch.ops.flashinfer.rmsnorm(out, x, w, 1e-6)),
        ("flashinfer.rmsnorm(x, w, out=out) (facade)", lambda: flashinfer.rmsnorm(x, w, out=out)),
        ("flashinfer.rmsnorm(x, w) (facade + allocation)", lambda: flashinfer.rmsnorm(x, w)),
        ("torch.nn.functional.rms_norm (peer, eager)", lambda: torch.nn.functional.rms_norm(x, (4096,), w, 1e-6)),
        ("x.add_(1) (one trivial PyTorch kernel)", lambda: out.add_(1)),
    ]
    print(f"host us per call (median), triton {triton.__version__}, torch {torch.__version__}")
    for name, fn in rows:
        try:
            print(f"  {per_call_us(fn):8.2f}  {name}")
        except Exception as e:  # an API that differs in this Triton version
            print(f"       n/a  {name}: {type(e).__name__}: {e}")
    ref = torch.empty_like(out)
    launch.rmsnorm_cuda(ref, x, w, 1e-6)
    out.zero_()
    compiled_run()
    torch.cuda.synchronize()
    print("  direct launch result matches:", torch.equal(out, ref))


if __name__ == "__main__":
    main()
