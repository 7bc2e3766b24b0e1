#!/usr/bin/env bash
# On a GPU machine: build the package with its CUDA kernels, run the CUDA test cases,
# then the codec benchmark, the methods (each against retraining, and one L-CODEC
# request on a full-width ResNet-18) and the audit's batched ensemble training on the GPU.
#
#   benchmarks/gpu_check.sh [build] [tests] [bench]    (no argument: all three, in order)
#
# The stages can go in separate calls on one machine (the build stays installed).
# Each step runs under a time limit (seconds: BUILD_LIMIT, TESTS_LIMIT, BENCH_LIMIT), so
# one slow step cannot take the time of the rest; the benchmarks print rows as they go.
# CUDA_ARCHS (e.g. 90) narrows the architectures built; logs (and RESULTS.md)
# go to "$OUT" when that variable is set, as they are written.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
LOGS=${OUT:-$(mktemp -d)}
mkdir -p "$LOGS"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build tests bench)
status=0

# step NAME LIMIT COMMAND...: runs COMMAND under LIMIT seconds, its output to the screen and NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit} s)"
  timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && echo "== $name: stopped after ${limit} s" | tee -a "$LOGS/$name.log"
  [ "$rc" -eq 0 ] || status=1
}

for stage in "${stages[@]}"; do
  case "$stage" in
    build)
      nvidia-smi 2>&1 | tee "$LOGS/nvidia-smi.log"
      args=()
      [ -n "${CUDA_ARCHS:-}" ] && args+=(-C "cmake.define.CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS}")
      step build "${BUILD_LIMIT:-300}" python3 -m pip install --no-build-isolation --no-deps "${args[@]}" .
      [ "$status" -eq 0 ] || exit 1  # the later stages would test what was installed before
      (cd /tmp && python3 -c "import unlearn; print(unlearn.backend())") 2>&1 | tee "$LOGS/backend.log"
      ;;
    tests)
      # The CUDA cases carry the `cuda` marker; -rs names any that were skipped, and why.
      step test_cuda "${TESTS_LIMIT:-300}" python3 -m pytest -q -rs -p no:cacheprovider -m cuda tests
      ;;
    bench)
      step bench_codec "${BENCH_LIMIT:-200}" python3 benchmarks/bench_codec.py --device cuda
      # The L-CODEC request first: each part writes its section of RESULTS.md when it ends.
      step bench_gpu_lcodec "${BENCH_LIMIT:-200}" python3 benchmarks/bench_gpu_methods.py --device cuda --only lcodec
      step bench_gpu_methods "${BENCH_LIMIT:-200}" python3 benchmarks/bench_gpu_methods.py --device cuda --only methods
      step bench_audit "${BENCH_LIMIT:-200}" python3 benchmarks/bench_audit.py --device cuda
      cp benchmarks/RESULTS.md "$LOGS"/
      ;;
    *)
      echo "unknown stage: $stage (build, tests or bench)" >&2
      exit 2
      ;;
  esac
done
exit "$status"
