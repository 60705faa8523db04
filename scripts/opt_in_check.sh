#!/usr/bin/env bash
# A/B of the three attention paths made sm90 defaults on 2026-12-06 (NOTES.md, Decisions): build,
# time each switched off and on in one run with the outputs compared (benchmarks.tune --what
# opt_in), then the GPU tests that cover them with all three forced on (every family).
#   OUT=$OUT bash scripts/opt_in_check.sh      (fits one 10-minute call on an H100 / H200)
# The attention rows with the defaults: PHASES="build bench" BENCH_OPS=attention bash scripts/device_check.sh
set -u -o pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
PHASES=build bash scripts/device_check.sh >/dev/null 2>&1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
timeout ${TUNE_TIMEOUT:-240} python -m benchmarks.tune --what opt_in --out "$OUT/opt_in.jsonl" > "$OUT/opt_in.log" 2>&1
echo "tune rc=$? at ${SECONDS}s"
python - "$OUT/opt_in.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    row.pop("section", None)
    print(row)
PY
FLASHINFER_PREFILL_STAGE=1 FLASHINFER_DECODE_FUSED_MERGE=1 FLASHINFER_PREFILL_DIAG_LOOP=1 \
  timeout $(( ${TOTAL:-580} - SECONDS )) python -m pytest -q -n 8 -p no:cacheprovider \
  tests/kernels/test_attention_prefill.py tests/kernels/test_attention_decode.py \
  tests/api/test_prefill_api.py tests/api/test_decode_api.py \
  -k "paged or diagonal or ragged or single_prefill or descriptors or fused or split or merge or graph or wrappers or counters or stages" \
  2>&1 | tee "$OUT/opt_in_tests.txt" | tail -8
echo "done at ${SECONDS}s"
