"""Read the rows of `python -m benchmarks.tune --what opt_in` and print the opt-in switches that
were both correct (output within bf16 rounding of the default path's) and faster, as shell
assignments (`FLASHINFER_...=1`), one a line; the reasons go to stderr.

    python scripts/decide_opt_in.py OUT/opt_in.jsonl

Rules: the diagonal loop must not be slower than the default at any ragged shape (2% noise
allowed) and faster at (16, 1024); staging must be faster at every square paged shape it staged;
the fused merge must be faster at 16 x 4096 (mean of its two cold timings against the unfused
path's two).
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

TOL = 0.03  # bf16 outputs of O(1): a few ulps apart when the summation order differs
NOISE = 1.02


def main(path: str) -> int:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    us = defaultdict(dict)      # (case, b, l) -> {env value: us}
    staged = {}
    diff = {}
    dec = defaultdict(list)     # (batch, kv) -> [(fused, us)]
    for r in rows:
        if "error" in r:
            print("error row (its path is not chosen):", r, file=sys.stderr)
            continue
        if "case" in r and "env" in r:
            us[(r["case"], r["b"], r["l"])][r["env"].split("=")[1]] = r["us"]  # "0" and the opt-in value
            if r["env"].split("=")[1] != "0":
                staged[(r["case"], r["b"], r["l"])] = r.get("staged")
        elif "case" in r and "max_abs_diff" in r:
            diff[(r["case"], r["b"], r["l"])] = r["max_abs_diff"]
        elif "batch" in r and str(r.get("setting", "")).startswith("fused="):
            dec[(r["batch"], r["kv"])].append((r["setting"], r["cold_us"]))
        elif "batch" in r and "max_abs_diff" in r:
            diff[("decode", r["batch"], r["kv"])] = r["max_abs_diff"]
    bad = {k: v for k, v in diff.items() if not v <= TOL}
    if bad:
        print("outputs disagree:", bad, file=sys.stderr)
    chosen = []
    us = {k: v for k, v in us.items() if "0" in v and len(v) == 2}
    ragged = {k: v for k, v in us.items() if k[0] == "ragged"}
    if len(ragged) == 3 and not any(k[0] == "ragged" for k in bad):
        ok = all(v["1"] <= v["0"] * NOISE for v in ragged.values())
        gain = ragged.get(("ragged", 16, 1024), {"0": 0, "1": 1})
        print("diag loop:", {k[1:]: (v["0"], v["1"]) for k, v in ragged.items()}, file=sys.stderr)
        if ok and gain["1"] < gain["0"]:
            chosen.append("FLASHINFER_PREFILL_DIAG_LOOP=1")
    paged = {k: v for k, v in us.items() if k[0] == "paged" and staged.get(k)}
    if paged and not any(k[0].startswith("paged") for k in bad):
        print("staging:", {k[1:]: (v["0"], v["1"]) for k, v in paged.items()}, file=sys.stderr)
        if all(v["1"] < v["0"] for v in paged.values()):
            chosen.append("FLASHINFER_PREFILL_STAGE=1")
    d = dec.get((16, 4096))
    if d and ("decode", 16, 4096) not in bad:
        mean = lambda s: sum(u for f, u in d if f == s) / max(1, sum(1 for f, _ in d if f == s))
        print("fused merge 16x4096:", mean("fused=0"), mean("fused=1"), file=sys.stderr)
        if mean("fused=1") < mean("fused=0"):
            chosen.append("FLASHINFER_DECODE_FUSED_MERGE=1")
    for c in chosen:
        print(c)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
