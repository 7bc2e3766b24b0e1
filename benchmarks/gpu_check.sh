#!/usr/bin/env bash
# On a GPU machine: build the package with its CUDA kernels, run the CUDA tests,
# then the codec benchmark on the GPU, whose table is printed last.
# Logs are copied into "$OUT" when that variable is set.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=$(mktemp -d)
status=0

nvidia-smi 2>&1 | tee "$LOGS/nvidia-smi.log"

echo "== build"
python3 -m pip install --no-build-isolation --no-deps . >"$LOGS/build.log" 2>&1 || status=1
tail -n 3 "$LOGS/build.log"
python3 -c "import unlearn; print(unlearn.backend())" 2>&1 | tee "$LOGS/backend.log"

if [ "$status" -eq 0 ]; then
  echo "== tests"
  python3 -m pytest -q tests/test_cuda.py tests/test_cuda_lcodec_ops.py 2>&1 | tee "$LOGS/test_cuda.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "== benchmark"
  python3 benchmarks/bench_codec.py --device cuda >"$LOGS/bench_codec.log" 2>&1 || status=1
fi

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && cp "$LOGS"/*.log "$OUT"/
fi
[ -f "$LOGS/bench_codec.log" ] && cat "$LOGS/bench_codec.log"
exit "$status"
