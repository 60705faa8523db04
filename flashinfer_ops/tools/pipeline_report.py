"""Compile one registered kernel variant for sm90 on any machine (no GPU) and report how Triton
pipelined its loads: the shared-memory buffers (leading dim = tiles in flight), async copies,
16-byte vector loads, MMA instructions and divisions.

    python -m flashinfer_ops.tools.pipeline_report attention_decode.decode_kernel bf16_bfloat16_d128 \\
        BLOCK_N=32 num_warps=4 num_stages=3 [PAGES_AHEAD=False] [--dump DIR]

Extra KEY=VALUE arguments override constexprs (ints, True/False, or strings) and the options
num_warps / num_stages; `sig:NAME=TYPE` overrides one signature entry (e.g. `sig:k_ptr=*fp8e4nv`);
`div16:NAME` marks one more integer argument 16-divisible (e.g. `div16:vocab`, as a launch with a
vocabulary that is a multiple of 16 specialises it).
Pointers and stride arguments (names starting with s_ or stride) are marked 16-divisible, as the
launcher's specialisation does on the device; without that nothing vectorises. Use the Triton the
GPU machine runs (its pipeliner decides the buffers). Not under TRITON_INTERPRET=1 (the
interpreter's kernels cannot be compiled).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys


def _value(text: str):
    if text in ("True", "False"):
        return text == "True"
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def report(kernel: str, variant: str, overrides=(), dump: str = "") -> dict:
    """Compile `kernel` / `variant` (registry names) for sm90 with KEY=VALUE overrides; returns
    buffers (shared-memory allocations, e.g. '2x32x128xbf16') and instruction counts."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import flashinfer_ops  # noqa: F401  (fills the registry)
    from flashinfer_ops._library import VARIANTS

    found = [v for v in VARIANTS if v.kernel == kernel and v.variant == variant]
    if not found:
        raise ValueError(f"variant: no registered {kernel} / {variant}")
    v = found[0]
    sig, ce, opts = dict(v.signature), dict(v.constexprs), v.options("sm90")
    extra_div16 = []
    for item in overrides:
        key, _, val = item.partition("=")
        if key.startswith("div16:"):
            extra_div16.append(key[6:])
        elif key.startswith("sig:"):
            sig[key[4:]] = val
        elif key in ("num_warps", "num_stages", "maxnreg"):
            opts[key] = int(val)
        else:
            ce[key] = _value(val)
    names = list(sig)
    div16 = [n for n in names if n not in ce and (sig[n].startswith("*") or n.startswith(("s_", "stride"))
                                                  or n in extra_div16)]
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in div16}
    compiled = triton.compile(ASTSource(fn=v.fn, signature=sig, constexprs=ce, attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options=opts)
    ttgir, ptx = compiled.asm["ttgir"], compiled.asm["ptx"]
    if dump:
        os.makedirs(dump, exist_ok=True)
        for ext, text in (("ttgir", ttgir), ("ptx", ptx)):
            with open(os.path.join(dump, f"{v.kernel}.{v.variant}.{ext}"), "w") as f:
                f.write(text)
        with open(os.path.join(dump, f"{v.kernel}.{v.variant}.cubin"), "wb") as f:
            f.write(compiled.asm["cubin"])
    return {
        "triton": triton.__version__, "options": opts, **_resources(compiled.asm.get("cubin")),
        "buffers": re.findall(r"local_alloc : \(\) -> !ttg\.memdesc<([0-9x]+[a-z0-9]+)", ttgir),
        "async_copies": ttgir.count("async_copy_global_to_local"),
        "cp_async": ptx.count("cp.async.c"),
        "ld_global_v4": len(re.findall(r"ld\.global\S*\.v4", ptx)),
        "mma_sync": ptx.count("mma.sync"),
        "ldmatrix": ptx.count("ldmatrix"),
        "ld_shared_b8": ptx.count("ld.shared.b8"),
        "cp_async_bulk_tensor": ptx.count("cp.async.bulk.tensor"),
        "wgmma": ptx.count("wgmma.mma_async"),
        "div": len(re.findall(r"\bdiv\.[su](32|64)", ptx)),
        "shared_bytes": compiled.metadata.shared,
        **_pipelined_loop(ptx),
    }


def _pipelined_loop(ptx: str) -> dict:
    """PTX counts of the first loop that issues async copies (the software-pipelined K/V loop):
    its instructions and its plain ld.global (a load whose result the loop waits on, e.g. a
    page-table load feeding the next copies' addresses). {} when no loop issues cp.async."""
    lines = ptx.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) for m in [re.match(r"^\$(L__BB\w+):", line)] if m}
    for i, line in enumerate(lines):
        m = re.search(r"\bbra(?:\.uni)?\s+\$(L__BB\w+);", line)
        if not m or labels.get(m.group(1), i) >= i:
            continue
        body = [x.strip() for x in lines[labels[m.group(1)]:i + 1]]
        body = [x for x in body if x and not x.startswith(("$", "//", "{", "}", ".")) and not x.endswith(":")]
        if any(x.startswith("cp.async.c") or "cp.async.c" in x for x in body):
            return {"loop_instructions": len(body), "loop_ld_global": sum("ld.global" in x for x in body),
                    "loop_cp_async": sum("cp.async.c" in x for x in body)}
    return {}


def _resources(cubin) -> dict:
    """Registers per thread and spill bytes of the compiled cubin (cuobjdump -res-usage, shipped
    with Triton's NVIDIA backend); {} where the tool is missing."""
    import subprocess
    import tempfile

    try:
        from triton.backends.nvidia.compiler import get_ptxas

        tool = os.path.join(os.path.dirname(get_ptxas(90).path), "cuobjdump")
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(cubin)
            f.flush()
            text = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    except Exception:
        return {}
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", text)
    return {"regs": int(m.group(1)), "stack_local": int(m.group(2)) + int(m.group(3))} if m else {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kernel")
    p.add_argument("variant")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--dump", help="write the TTGIR, PTX and cubin here")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = p.parse_args(argv)
    try:
        r = report(args.kernel, args.variant, args.overrides, args.dump or "")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"triton {r.pop('triton')}; {args.kernel} {args.variant}; options {r.pop('options')}")
    print("shared-memory buffers:", r.pop("buffers"))
    for k, val in r.items():
        print(f"  {k:16s} {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
