#!/usr/bin/env bash
# On a GPU machine: build the package with its CUDA kernels, run the CUDA test cases,
# then the codec benchmark, the methods (each against retraining, and one L-CODEC
# request on a full-width ResNet-18) and the audit's batched ensemble training on the GPU.
# CUDA_ARCHS (e.g. 90) narrows the architectures built; logs (and RESULTS.md)
# go to "$OUT" when that variable is set, as they are written.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
LOGS=${OUT:-$(mktemp -d)}
mkdir -p "$LOGS"
status=0

nvidia-smi 2>&1 | tee "$LOGS/nvidia-smi.log"

echo "== build"
args=()
[ -n "${CUDA_ARCHS:-}" ] && args+=(-C "cmake.define.CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS}")
python3 -m pip install --no-build-isolation --no-deps "${args[@]}" . >"$LOGS/build.log" 2>&1 || status=1
tail -n 40 "$LOGS/build.log"
(cd /tmp && python3 -c "import unlearn; print(unlearn.backend())") 2>&1 | tee "$LOGS/backend.log"

if [ "$status" -eq 0 ]; then
  echo "== tests"
  # The CUDA cases carry the `cuda` marker; -rs names any that were skipped, and why.
  python3 -m pytest -q -rs -p no:cacheprovider -m cuda tests 2>&1 | tee "$LOGS/test_cuda.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "== benchmark"
  python3 benchmarks/bench_codec.py --device cuda 2>&1 | tee "$LOGS/bench_codec.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  python3 benchmarks/bench_gpu_methods.py --device cuda 2>&1 | tee "$LOGS/bench_gpu_methods.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  python3 benchmarks/bench_audit.py --device cuda 2>&1 | tee "$LOGS/bench_audit.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

cp benchmarks/RESULTS.md "$LOGS"/
exit "$status"
