#!/usr/bin/env bash
# One device call for the open paged (16, 1024) prefill figure (NOTES.md session 15, Missing / next):
# times the K-only staged copy with V read in place against the default staged path, runs the
# prefill GPU tests (as they are, then with the deal and the K-only copy forced on), then the
# prefill benchmark rows. Results under $OUT; ~8 min.
#   bash scripts/prefill_paged_check.sh          (PHASES="build ab tests bench" by default)
set -u -o pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
PHASES=${PHASES:-"build ab tests bench"}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
phase() { [[ " $PHASES " == *" $1 "* ]]; }
status=0
if phase build; then
  PHASES=build bash scripts/device_check.sh > /dev/null 2>&1 || { echo "build failed"; status=1; }
  nvidia-smi --query-gpu=name,clocks.sm --format=csv | tee "$OUT/gpu.txt"
fi
if phase ab; then
  timeout 90 python scripts/vpaged_ab.py 2>&1 | tail -3 | tee "$OUT/vpaged.txt"
  # settings D:P:L:K (scripts/persistent_check.py): 2-D grid; default; K only; K only + dependent launch
  timeout 240 python scripts/persistent_check.py 0:0 -:0 -:0:1:1 -:1:1:1 2>&1 | tail -8 | tee "$OUT/pcheck.txt"
fi
if phase tests; then
  timeout 200 python -m pytest -q -n 8 -p no:cacheprovider tests/kernels/test_attention_prefill.py \
    tests/api/test_prefill_api.py 2>&1 | tail -6 | tee "$OUT/tests.txt" || status=1
  # every dealt staged case on the K-only copy where it applies (page 16 / 32 / 64, D128)
  FLASHINFER_PREFILL_DEAL=1 FLASHINFER_PREFILL_STAGE_K_ONLY=1 timeout 150 python -m pytest -q -n 8 -p no:cacheprovider \
    tests/kernels/test_attention_prefill.py tests/api/test_prefill_api.py -k "paged or staged or deal or k_only" \
    2>&1 | tail -6 | tee "$OUT/tests_k_only.txt" || status=1
fi
if phase bench; then
  timeout 240 python -m benchmarks --ops attention_prefill --out "$OUT" > "$OUT/bench.txt" 2>&1 || status=1
  tail -20 "$OUT/bench.txt"
fi
exit $status
