#!/usr/bin/env bash
# GPU benchmark for mfjax: one prepared script, no network, <= 6.5 minutes.
#
# Run from the repository root on a machine with an NVIDIA GPU and JAX with CUDA:
#
#     bash scripts/gpu_bench.sh                       # the full run; appends to benchmarks/RESULTS.md
#     GPU_BENCH_SMALL=1 bash scripts/gpu_bench.sh     # tiny shapes: a smoke test, also on a CPU
#
# mfjax need not be pip-installed: PYTHONPATH=. is used. Steps, each under its own
# timeout (a step that fails or times out is reported and the script goes on):
#   1. environment + scatter-add probe: jax/jaxlib versions, devices, whether jaxlib is in
#      0.10.2-0.11.0 (jax issue 38806: GPU f32 scatter-add compiled to a compare-and-swap
#      loop) and timings of contended, ftz-compiled and sorted segment sums;
#   2. scripts/check_grads.py (gradients against autodiff and finite differences);
#   3. scenario b, ML-20M shape (benchmarks/bench_ml20m.py; target on an H200: <= 50 ms/epoch);
#   4. scenario c, Netflix shape (benchmarks/bench_netflix.py);
#   5. the recommend benchmark (benchmarks/bench_recommend.py), when present;
#   6. the sharded code path on a 1x1 mesh against the plain path (benchmarks/bench_mesh.py);
#   7. iALS seconds per iteration at the ML-20M binarized shape, rank 64, exact and CG
#      (benchmarks/bench_ials_scale.py; implicit's published figure: 0.33 s on an A6000);
# then prints one table (benchmarks/gpu_summary.py). Environment:
#   GPU_BENCH_SMALL=1        tiny shapes (~1 minute on a 2-core CPU)
#   GPU_BENCH_OUT=DIR        keep the step outputs here (default: a temporary folder)
#   GPU_BENCH_NO_RESULTS=1   do not append to benchmarks/RESULTS.md (small runs never do)
#   PYTHON=python3           the interpreter
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python}"
SMALL="${GPU_BENCH_SMALL:-0}"
OUT="${GPU_BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mfjax-gpu-bench.XXXXXX")}"
mkdir -p "$OUT"
: > "$OUT/steps.tsv"
START=$SECONDS

if [[ "$SMALL" == "1" ]]; then
  # name           timeout (s)
  T_PROBE=60; T_GRADS=120; T_B=120; T_C=120; T_REC=90; T_MESH=90; T_IALS=120
  PROBE_ARGS=(--small)
  GRADS_ARGS=(--dtype float32 --order 1)
  SHAPE_B=(--users 3000 --items 1500 --ratings 300000 --test 20000 --epochs 3 --plain-epochs 2)
  SHAPE_C=(--users 6000 --items 800 --ratings 500000 --test 20000 --epochs 2)
  REC_ARGS=(--users 3000 --items 1500 --seen-per-user 40)
  MESH_ARGS=(--users 3000 --items 1500 --ratings 300000 --epochs 3)
  IALS_ARGS=(--users 3000 --items 1500 --nnz 100000 --iterations 3)
else
  # 6.5 minutes in all, worst case 30 + 40 + 65 + 100 + 35 + 30 + 90 = 390 s; b runs before c.
  T_PROBE=30; T_GRADS=40; T_B=65; T_C=100; T_REC=35; T_MESH=30; T_IALS=90
  PROBE_ARGS=()
  GRADS_ARGS=(--order 1)
  SHAPE_B=(--epochs 10 --plain-epochs 3)
  SHAPE_C=(--epochs 2)
  REC_ARGS=()
  MESH_ARGS=(--ratings 5000000 --epochs 4)
  IALS_ARGS=(--iterations 4)
fi

# step NAME TIMEOUT LOGFILE CMD...: run CMD under a timeout, tee its output, record the status.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS rc=0
  echo "=== [$name] (timeout ${limit}s): $*"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" > >(tee "$log") 2>&1 || rc=$?
  wait || true  # let tee finish
  local status=ok
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then status=timeout; elif [[ $rc -ne 0 ]]; then status="failed (exit $rc)"; fi
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" >> "$OUT/steps.tsv"
  echo "=== [$name] $status after $((SECONDS - t0)) s"
}

skip() {
  printf '%s\t%s\t0\n' "$1" "skipped: $2" >> "$OUT/steps.tsv"
  echo "=== [$1] skipped: $2"
}

if ! "$PYTHON" -c "import jax" 2>/dev/null; then
  echo "error: $PYTHON cannot import jax; install jax (with CUDA) first" >&2
  exit 2
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
elif [[ "$SMALL" != "1" ]]; then
  echo "warning: nvidia-smi not found; JAX may fall back to the CPU" >&2
fi

step probe "$T_PROBE" "$OUT/probe.txt" "$PYTHON" benchmarks/gpu_probe.py "${PROBE_ARGS[@]}" --json "$OUT/probe.json"
step check_grads "$T_GRADS" "$OUT/check_grads.txt" "$PYTHON" scripts/check_grads.py "${GRADS_ARGS[@]}"
step b_ml20m "$T_B" "$OUT/b.txt" "$PYTHON" benchmarks/bench_ml20m.py "${SHAPE_B[@]}" \
  --no-surprise --no-results --json "$OUT/b.json"
step c_netflix "$T_C" "$OUT/c.txt" "$PYTHON" benchmarks/bench_netflix.py "${SHAPE_C[@]}" \
  --no-results --json "$OUT/c.json"
if [[ -f benchmarks/bench_recommend.py ]]; then
  step recommend "$T_REC" "$OUT/recommend.txt" "$PYTHON" benchmarks/bench_recommend.py "${REC_ARGS[@]}"
else
  skip recommend "benchmarks/bench_recommend.py not found"
fi

step mesh_1x1 "$T_MESH" "$OUT/mesh.txt" "$PYTHON" benchmarks/bench_mesh.py "${MESH_ARGS[@]}" --no-record
step ials_ml20m "$T_IALS" "$OUT/ials.txt" "$PYTHON" benchmarks/bench_ials_scale.py "${IALS_ARGS[@]}" \
  --methods cholesky cg --json "$OUT/ials.json"

APPEND=(--append)
if [[ "$SMALL" == "1" || "${GPU_BENCH_NO_RESULTS:-0}" == "1" ]]; then APPEND=(); fi
echo
echo "=== mfjax GPU benchmark: $((SECONDS - START)) s in all; outputs in $OUT"
"$PYTHON" benchmarks/gpu_summary.py "$OUT" "${APPEND[@]}" \
  --command "$( [[ "$SMALL" == "1" ]] && echo "GPU_BENCH_SMALL=1 " )bash scripts/gpu_bench.sh"
