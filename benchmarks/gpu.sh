#!/usr/bin/env bash
# On a machine with a CUDA GPU: `descentlab bench --device cuda`, then the CUDA tests.
#
#   benchmarks/gpu.sh OUTDIR [SCALE]
#
# Run from the repository root, with descentlab and its test dependencies
# importable (PYTHONPATH=src is enough beside an installed torch). Writes to
# OUTDIR the GPU's name and driver (gpu.txt), the bench's JSON (bench-cuda.json,
# written after each workload) and log, and the tests' log (cuda-tests.log).
# SCALE (default 4, the largest the bench takes) scales the workloads' tensors:
# at the CPU's size (15.8M parameters) a GPU step takes about a tenth of a
# millisecond, less than the host's share of a step, and the bench would time
# the launch more than the memory. PYTEST_ARGS adds pytest options (-n 8 with
# pytest-xdist); BENCH_LIMIT and TESTS_LIMIT are each part's limit in seconds.
set -uo pipefail
out=${1:?usage: benchmarks/gpu.sh OUTDIR [SCALE]}
scale=${2:-4}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' \
    | tee -a "$out/gpu.txt"

# the bench first, with an inductor cache of its own: each kernel compiled for the bench's buffers
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) timeout "${BENCH_LIMIT:-300}" python3 -m descentlab bench --device cuda --scale "$scale" \
    --out "$out/bench-cuda.json" 2>&1 | tee "$out/bench.log"
bench=$?

# every test that needs a CUDA device: the fast path's and lean state's parity on
# the device with the per-tensor path, and parameters on two devices
timeout "${TESTS_LIMIT:-240}" python3 -m pytest -q -rfE ${PYTEST_ARGS:-} \
    tests/optim/test_fast_path.py tests/optim/test_lean_state.py -k "cuda or two_devices" \
    2>&1 | tee "$out/cuda-tests.log"
tests=$?

echo "gpu.sh: tests exit $tests, bench exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
