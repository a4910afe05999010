// Text of a status returned by the launchers (a cudaError_t value).
#include <cuda_runtime.h>

#include "maed_kernels/api.h"

extern "C" const char* maed_cuda_error_string(int status) {
    return cudaGetErrorString(static_cast<cudaError_t>(status));
}
