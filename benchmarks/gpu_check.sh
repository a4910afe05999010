#!/bin/sh
# The GPU checks in one go, for a machine with a CUDA GPU and a short lease on it: builds the CUDA
# kernels for that GPU (build/gpu), runs their C++ tests (ctest), the same C++ test of the kernels
# under compute-sanitizer (out-of-bounds and uninitialised reads, races, barrier misuse), the pytest
# files that hold the `gpu` tests (kernels through ctypes, TensorRT), and the GPU benchmarks (`maed bench`: kernels against
# torch, torch on CUDA, ONNX Runtime on CUDA and TensorRT where installed; each skipped case says why).
# Every step runs even when one before it fails; each writes its log into OUTDIR, and the last line
# names the steps that failed. OUTDIR/RESULTS.md is the page to keep as benchmarks/RESULTS-gpu.md
# (docs/engines.md, "On a GPU", says what the first run found).
#
#   sh benchmarks/gpu_check.sh OUTDIR
#
# PYTHON (default python3) must import maed; CUDA_ARCH (default native) is CMAKE_CUDA_ARCHITECTURES;
# BENCH_BUDGET (default 1) is the timed seconds per benchmark; BENCH_SELECT (default "cuda or kernel or
# tensorrt") the benchmarks run (pytest -k).
set -u
out=${1:?usage: sh benchmarks/gpu_check.sh OUTDIR}
py=${PYTHON:-python3}
mkdir -p "$out"
failed=""

step() {  # step NAME COMMAND...: runs COMMAND with its output in OUTDIR/NAME.log, remembering a failure
    name=$1
    shift
    start=$(date +%s)
    if "$@" >"$out/$name.log" 2>&1; then status=ok; else status="failed ($?)"; failed="$failed $name"; fi
    echo "gpu_check: $name: $status in $(($(date +%s) - start)) s"
    tail -n 4 "$out/$name.log"
}

machine() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    nvcc --version | tail -n 2
    "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
}

native() {
    cmake -S . -B build/gpu -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" &&
        cmake --build build/gpu -j "$(nproc)" &&
        ctest --test-dir build/gpu --output-on-failure
}

sanitize() {
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in memcheck initcheck racecheck synccheck; do
        echo "== $tool"
        timeout 120 "$sanitizer" --tool "$tool" --error-exitcode 1 build/gpu/cuda_kernels/test_cuda_kernels || return 1
    done
}

export MAED_NATIVE_BUILD=build/gpu
step machine machine
step native native
step sanitizer sanitize
step gpu_tests "$py" -m pytest -p no:cacheprovider -rs tests/test_cuda_kernels.py tests/test_tensorrt.py
step bench "$py" -m maed.cli bench --budget "${BENCH_BUDGET:-1}" -k "${BENCH_SELECT:-cuda or kernel or tensorrt}" \
    --out "$out/RESULTS.md" --json "$out/bench.json"
echo "gpu_check: failed:${failed:- none}"
