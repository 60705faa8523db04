#!/usr/bin/env bash
# The whole GPU check, run from a fresh copy of the repo on the GPU test machine (H100 / H200):
#   bash scripts/device_check.sh            (all phases, benchmarks of BENCH_OPS)
# Environment knobs:
#   PHASES="build env tests sanitizer serve serve_compile serve_bench overhead bench"
#                                              which phases to run (default: all)
#   SERVE_TIMEOUT / BENCH_TIMEOUT / TESTS_TIMEOUT / SANITIZE_TIMEOUT   per-phase limits in seconds
#   TESTS="tests"                              pytest targets for the GPU test phase
#   PYTEST_ARGS="-x -q"                        extra pytest arguments
#   SANITIZE_TESTS="tests/kernels/test_norm.py" kernel tests run under compute-sanitizer
#   SANITIZE_K="19 and 111"                     pytest -k subset for those
#   BENCH_OPS="norm,activation,quantization"   benchmark domains;  BENCH_ARGS="--quick" for a smoke run
# Logs and JSON land in $OUT (default ./out): env.txt, tests.txt, sanitizer.txt, bench.txt,
# <gpu>.json, performance.md. Exits non-zero if any phase failed.
set -u -o pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
PHASES=${PHASES:-"build env tests sanitizer serve serve_compile serve_bench overhead bench"}
TESTS=${TESTS:-tests}
PYTEST_ARGS=${PYTEST_ARGS:-"-q"}
SANITIZE_TESTS=${SANITIZE_TESTS:-tests/kernels}
# One small slice per domain: odd shapes, strided inputs, split-KV, paged gathers, stray writes.
SANITIZE_K=${SANITIZE_K:-"(test_rmsnorm and 19-111) or test_packbits or test_kernel_never_writes_outside_named_slots or test_append_paged_mla or test_non_contiguous_q_and_kv or test_split_kv_and_merge or test_small_batch_long_kv_is_split or test_page_size_one_4d_cache or test_filters_on_strided_rows or test_chain_speculative_equal or test_same_seed_offset or (test_single_prefill and 37)"}
BENCH_OPS=${BENCH_OPS:-norm,activation,quantization}
BENCH_ARGS=${BENCH_ARGS:-}
export PYTHONUNBUFFERED=1
status=0
phase() { [[ " $PHASES " == *" $1 "* ]]; }
fail() { echo "PHASE FAILED: $1"; status=1; }

if phase build; then
  python -m pip install --no-build-isolation --no-deps -e . -q 2>&1 | tail -5 || fail build
fi
if phase env; then
  { nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>/dev/null; python -m flashinfer; } 2>&1 | tee "$OUT/env.txt" || fail env
fi
if phase tests; then
  timeout ${TESTS_TIMEOUT:-3600} python -m pytest $TESTS $PYTEST_ARGS -p no:cacheprovider 2>&1 | tee "$OUT/tests.txt" | tail -25 || fail tests
fi
if phase sanitizer; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$CS" ]; then
    echo "compute-sanitizer not found" | tee "$OUT/sanitizer.txt"; fail sanitizer
  else
    # Without the caching allocator an out-of-bounds access inside a cached block is reported
    # (DESIGN.md §4).
    { PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout ${SANITIZE_TIMEOUT:-3600} "$CS" --tool memcheck --error-exitcode 9 python -m flashinfer_ops.selfcheck &&
      PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$CS" --tool memcheck --error-exitcode 9 python -m pytest $SANITIZE_TESTS -q -k "$SANITIZE_K" -p no:cacheprovider; } \
      2>&1 | tee "$OUT/sanitizer.txt" | grep -E "ERROR SUMMARY|passed|failed|FAIL|error" | tail -8 || fail sanitizer
  fi
fi
if phase serve; then
  timeout ${SERVE_TIMEOUT:-600} python examples/serve.py 2>&1 | tee "$OUT/serve.txt" | tail -8 || fail serve
fi
if phase serve_compile; then
  timeout ${SERVE_TIMEOUT:-600} python examples/serve.py --compile 2>&1 | tee "$OUT/serve_compile.txt" | tail -8 || fail serve_compile
fi
if phase serve_bench; then
  timeout ${SERVE_TIMEOUT:-600} python examples/serve.py --bench --out "$OUT" 2>&1 | tee "$OUT/serve_bench.txt" | tail -12 || fail serve_bench
fi
if phase overhead; then
  python scripts/host_overhead.py 2>&1 | tee "$OUT/overhead.txt" || fail overhead
fi
if phase bench; then
  timeout ${BENCH_TIMEOUT:-3600} python -m benchmarks --ops "$BENCH_OPS" $BENCH_ARGS --out "$OUT" 2>&1 | tee "$OUT/bench.txt" | tail -30 || fail bench
fi
echo "device_check: phases [$PHASES] -> $( [ $status = 0 ] && echo OK || echo FAILED )"
exit $status
