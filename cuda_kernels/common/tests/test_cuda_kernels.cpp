// The CUDA kernels of every op against the host reference, on a GPU; exits 77 (ctest: skipped)
// without one. Each op's checks are in its folder (ops/<op>/tests/test_cuda.cpp), run here in a
// fixed order from one seed; outputs are poisoned with NaN before each launch so that an unwritten
// element fails.
#include <cuda_runtime.h>

#include <cstdio>
#include <random>

#include "op_tests.h"
#include "test_util.h"

using namespace maed_test;

int main() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("no CUDA device: skipped\n");
        return 77;
    }
    std::mt19937 rng(11);
    ds_block_cuda_cases(rng);
    se_fusion_cuda_cases(rng);
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
    return g_failures ? 1 : 0;
}
