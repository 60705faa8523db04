#!/usr/bin/env bash
# Device call of 2026-12-06 session 8, after the three opt-in paths became defaults on sm90: the
# attention GPU tests with the new defaults, the benchmark rows, then a tile sweep at (16, 1024).
#   OUT=$OUT bash scripts/session8_check.sh
set -u -o pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
PHASES=build bash scripts/device_check.sh >/dev/null 2>&1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 200 python -m benchmarks --ops attention --out "$OUT" > "$OUT/bench.log" 2>&1
echo "bench rc=$? at ${SECONDS}s"
grep -E "op=" "$OUT/bench.log" | sed 's/tbps=.*peer=/peer=/' | tail -16
timeout 60 python scripts/plan_host_ab.py 2>&1 | tail -8
timeout ${TESTS_TIMEOUT:-220} python -m pytest -q -n 8 -p no:cacheprovider tests/kernels/test_attention_prefill.py \
  tests/kernels/test_attention_decode.py tests/kernels/test_attention_decode_merge.py tests/api/test_prefill_api.py \
  tests/api/test_decode_api.py tests/opcheck 2>&1 | tee "$OUT/tests.txt" | tail -6
echo "tests at ${SECONDS}s"
[ $SECONDS -lt ${TILE_BY:-300} ] && timeout $(( ${END:-420} - SECONDS )) python -m benchmarks.tune --what tile16 --out "$OUT/tile16.jsonl" > "$OUT/tile16.log" 2>&1
python -c "
import json,sys
for l in open('$OUT/tile16.jsonl'): r=json.loads(l); r.pop('section'); print(r)"
echo "done at ${SECONDS}s"
