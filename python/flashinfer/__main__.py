"""`python -m flashinfer`: environment report, then every registered op run once against its
reference on the best available device (the GPU, else the Triton interpreter on the CPU)."""
import os
import sys

import torch

if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    # `python -m flashinfer` has already imported the package (and defined its Triton kernels)
    # before this file runs, and TRITON_INTERPRET is read when a kernel is defined: start over
    # with it set so the self-check runs the real kernels in the interpreter.
    os.execve(sys.executable, [sys.executable, "-m", "flashinfer"] + sys.argv[1:],
              dict(os.environ, TRITON_INTERPRET="1"))


def main() -> int:
    import triton

    import flashinfer
    import flashinfer_ops
    from flashinfer_ops._library import VARIANTS, _IMPLEMENTED
    from flashinfer_ops.aiter import aiter_importable, aiter_overloads_loaded
    from flashinfer_ops.configs import arch_family
    from flashinfer_ops.selfcheck import main as selfcheck_main

    print(f"flashinfer {flashinfer.__version__} (Triton kernels behind torch.ops.flashinfer)")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        props = torch.cuda.get_device_properties(dev)
        arch = props.gcnArchName if torch.version.hip else f"sm_{props.major}{props.minor}"
        print(f"device: {props.name} ({arch}), {props.multi_processor_count} compute units, "
              f"{'ROCm ' + torch.version.hip if torch.version.hip else 'CUDA ' + str(torch.version.cuda)}; "
              f"config family {arch_family(dev)}")
    else:
        print("device: none (CPU only): ops dispatch to the PyTorch reference kernels; the self-check "
              "below runs the Triton kernels in Triton's interpreter")
    ops = sorted({k[0] for k in _IMPLEMENTED if k[1] in ("CUDA", "CPU")})
    print(f"ops: {len(ops)} overloads with kernels ({', '.join(ops)})")
    print(f"kernel variants registered for the AMD gate / AOT list: {len(VARIANTS)}")
    print(f"AITER: {'importable' if aiter_importable() else 'not installed'}; "
          f".aiter overloads {'live' if aiter_overloads_loaded() else 'not loaded'}")
    print(f"backends: Triton (.default) for every op" + ("; AITER (.aiter) where loaded" if aiter_overloads_loaded() else ""))
    del flashinfer_ops
    return selfcheck_main()


if __name__ == "__main__":
    sys.exit(main())
