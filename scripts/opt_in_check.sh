#!/usr/bin/env bash
# One device call for the three opt-in attention paths of 2026-12-06 (NOTES.md, Decisions): build,
# time each against the default path in one run with the outputs compared
# (benchmarks.tune --what opt_in), pick the switches that were correct and faster
# (scripts/decide_opt_in.py), run the attention benchmark with those switches on, then the GPU
# tests that cover the three paths with all of them switched on.
#   OUT=$OUT bash scripts/opt_in_check.sh      (fits one 10-minute call on an H100 / H200)
set -u -o pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
PHASES=build bash scripts/device_check.sh >/dev/null 2>&1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
timeout ${TUNE_TIMEOUT:-220} python -m benchmarks.tune --what opt_in --out "$OUT/opt_in.jsonl" > "$OUT/opt_in.log" 2>&1
echo "tune rc=$? at ${SECONDS}s"
python - "$OUT/opt_in.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    row.pop("section", None)
    print(row)
PY
python scripts/decide_opt_in.py "$OUT/opt_in.jsonl" > "$OUT/decided.env"
echo "decided: $(tr '\n' ' ' < "$OUT/decided.env")"
if [ -s "$OUT/decided.env" ] && [ "${BENCH:-1}" = 1 ]; then
  env $(cat "$OUT/decided.env") timeout ${BENCH_TIMEOUT:-200} python -m benchmarks --ops attention --out "$OUT" > "$OUT/bench.log" 2>&1
  echo "bench rc=$? at ${SECONDS}s"
  grep -E "decode|prefill" "$OUT/bench.log" | tail -20
fi
FLASHINFER_PREFILL_STAGE=1 FLASHINFER_DECODE_FUSED_MERGE=1 FLASHINFER_PREFILL_DIAG_LOOP=1 \
  timeout $(( ${TOTAL:-580} - SECONDS )) python -m pytest -q -n 8 -p no:cacheprovider \
  tests/kernels/test_attention_prefill.py tests/kernels/test_attention_decode.py \
  tests/api/test_prefill_api.py tests/api/test_decode_api.py \
  -k "paged or diagonal or ragged or single_prefill or descriptors or fused or split or merge or graph or wrappers or counters or stages" \
  2>&1 | tee "$OUT/opt_in_tests.txt" | tail -8
echo "done at ${SECONDS}s"
