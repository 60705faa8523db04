#!/usr/bin/env bash
# One GPU call for the in-place paged prefill forms (sm90; kernels/attention/prefill_paged_sm90.py):
#   OUT=$OUT bash scripts/inplace_check.sh
# build; correctness checks of the FORMS (a hung barrier pipeline ends at the timeout); the prefill
# benchmark rows with main's defaults; the prefill GPU tests (every form through the API tests);
# the timing A/B of the TFORMS against the staged run(). Logs in $OUT.
set -u -o pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
FORMS=${FORMS:-ws_overlap}
TFORMS=${TFORMS:-ws,ws_overlap}
TIMING_ARGS=${TIMING_ARGS:-}
python -m pip install --no-build-isolation --no-deps -e . -q 2>&1 | tail -3
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/env.txt"
for f in ${FORMS//,/ }; do
  timeout 90 python scripts/gluon_paged_ab.py "$f" --check 2>&1 | tail -3 | tee -a "$OUT/check.txt"
  echo "check $f rc=$?" | tee -a "$OUT/check.txt"
done
timeout 120 python -m benchmarks --ops attention_prefill --out "$OUT" 2>&1 | tail -14 | tee "$OUT/bench.txt"
timeout ${TESTS_TIMEOUT:-150} python -m pytest -q -n 8 -p no:cacheprovider ${TESTS:-tests/api/test_prefill_api.py} \
  2>&1 | tail -8 | tee "$OUT/tests.txt"
timeout 150 python scripts/gluon_paged_ab.py "$TFORMS" --timing $TIMING_ARGS 2>&1 | tail -6 | tee "$OUT/timing.txt"
