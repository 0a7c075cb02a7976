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
# ORDER=tests-first runs the tests first and the bench after them on the same
# inductor cache, where the tests' tiny parameters compile the kernels first: the
# bench then shows whether a kernel loaded from that cache is built for its
# size. Either way the generated Triton kernels are kept (kernels.tar.gz).
set -uo pipefail
out=${1:?usage: benchmarks/gpu.sh OUTDIR [SCALE]}
scale=${2:-4}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' \
    | tee -a "$out/gpu.txt"
python3 -c 'from descentlab.optim import _flat; print("size hints given:", _flat._HINTS)' | tee -a "$out/gpu.txt"
cache=$(mktemp -d)

run_bench() {
    TORCHINDUCTOR_CACHE_DIR=$cache timeout "${BENCH_LIMIT:-300}" python3 -m descentlab bench --device cuda \
        --scale "$scale" --out "$out/bench-cuda.json" 2>&1 | tee "$out/bench.log"
    bench=${PIPESTATUS[0]}
}

# every test that needs a CUDA device: the fast path's and lean state's parity on
# the device with the per-tensor path, and parameters on two devices
run_tests() {
    TORCHINDUCTOR_CACHE_DIR=$cache timeout "${TESTS_LIMIT:-240}" python3 -m pytest -q -rfE ${PYTEST_ARGS:-} \
        tests/optim/test_fast_path.py tests/optim/test_lean_state.py -k "cuda or two_devices" \
        2>&1 | tee "$out/cuda-tests.log"
    tests=${PIPESTATUS[0]}
}

# by default the bench first, on a fresh inductor cache: each kernel compiled for the bench's buffers
if [ "${ORDER:-bench-first}" = tests-first ]; then run_tests; run_bench; else run_bench; run_tests; fi
find "$cache" -name '*.py' -print0 | xargs -0 grep -l '@triton' | tar czf "$out/kernels.tar.gz" -T - 2>/dev/null

echo "gpu.sh: tests exit $tests, bench exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
