"""AMD compile gate: compile every registered kernel variant for gfx942 and gfx950 and check it.

    python -m flashinfer_ops.tools.amd_report [--json PATH] [--arch gfx942,gfx950] [--kernel SUBSTR]

Runs on any machine with Triton (no GPU): triton.compile(ASTSource(...), target=GPUTarget("hip",
arch, 64)). For each (kernel, variant, arch) it prints VGPRs, AGPRs, scratch bytes, LDS bytes,
occupancy (waves per SIMD) and the number of MFMA instructions, and fails (exit 1) on a compile
error, scratch > 0, LDS over the arch limit, occupancy under the variant's floor, or a kernel with
a tl.dot whose AMDGCN has no MFMA.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silence triton>=3.9's notice; same default

LDS_LIMIT = {"gfx942": 64 * 1024, "gfx950": 160 * 1024}


def _stat(asm: str, key: str) -> int:
    m = re.search(r";\s*%s:\s*(\d+)" % key, asm)
    return int(m.group(1)) if m else -1


def _uses_dot(fn) -> bool:
    try:
        src = inspect.getsource(fn.fn if hasattr(fn, "fn") else fn)
    except (OSError, TypeError):
        return False
    return "tl.dot(" in src


def compile_one(index: int, arch: str) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import flashinfer_ops  # noqa: F401  (fills the registry)
    from flashinfer_ops._library import VARIANTS

    v = VARIANTS[index]
    row = dict(kernel=v.kernel, variant=v.variant, arch=arch, vgprs=-1, agprs=-1, scratch=-1, lds=-1,
               occupancy=-1, mfma=0, min_occupancy=v.min_occupancy, ok=False, error="")
    try:
        src = ASTSource(fn=v.fn, signature=dict(v.signature), constexprs=dict(v.constexprs))
        compiled = triton.compile(src, target=GPUTarget("hip", arch, 64), options=v.options(arch))
        asm = compiled.asm["amdgcn"]
        row.update(vgprs=_stat(asm, "NumVgprs"), agprs=_stat(asm, "NumAgprs"), scratch=_stat(asm, "ScratchSize"),
                   occupancy=_stat(asm, "Occupancy"), lds=int(compiled.metadata.shared),
                   mfma=len(re.findall(r"\bv_mfma", asm)))
        problems = []
        if row["scratch"] != 0:
            problems.append(f"scratch {row['scratch']} B")
        if row["lds"] > LDS_LIMIT[arch]:
            problems.append(f"LDS {row['lds']} > {LDS_LIMIT[arch]}")
        if row["occupancy"] < v.min_occupancy:
            problems.append(f"occupancy {row['occupancy']} < floor {v.min_occupancy}")
        if _uses_dot(v.fn) and row["mfma"] == 0:
            problems.append("tl.dot kernel without MFMA")
        row["ok"] = not problems
        row["error"] = "; ".join(problems)
    except Exception as e:  # a compile failure is a gate failure, reported per row
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the rows as a JSON list here")
    p.add_argument("--arch", default="gfx942,gfx950")
    p.add_argument("--kernel", default="", help="only kernels whose name contains this")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)))
    args = p.parse_args(argv)

    import triton

    import flashinfer_ops  # noqa: F401
    from flashinfer_ops._library import VARIANTS

    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    for a in archs:
        if a not in LDS_LIMIT:
            p.error(f"--arch: unknown arch {a!r}; expected gfx942 and/or gfx950")
    work = [(i, a) for i, v in enumerate(VARIANTS) if args.kernel in v.kernel for a in archs
            if not v.families or a in v.families]
    if not work:
        print("no kernel variants registered (or none matched --kernel)", file=sys.stderr)
        return 1
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(compile_one, *zip(*work)))
    hdr = f"{'kernel':40} {'variant':34} {'arch':7} {'vgpr':>5} {'agpr':>5} {'scratch':>7} {'lds':>7} {'occ':>4} {'mfma':>5}  status"
    print(f"AMD compile gate: triton {triton.__version__}, {len(rows)} compiles in {time.time() - t0:.0f}s")
    print(hdr)
    for r in rows:
        status = "ok" if r["ok"] else "FAIL " + r["error"]
        print(f"{r['kernel'][:40]:40} {r['variant'][:34]:34} {r['arch']:7} {r['vgprs']:5} {r['agprs']:5} "
              f"{r['scratch']:7} {r['lds']:7} {r['occupancy']:4} {r['mfma']:5}  {status}")
    bad = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} ok, {len(bad)} failed (triton {triton.__version__})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: r[k] for k in ("kernel", "variant", "arch", "vgprs", "agprs", "scratch", "lds",
                                          "occupancy", "mfma", "ok", "error", "min_occupancy")} | {"triton": triton.__version__}
                       for r in rows], f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
