// Scalar arithmetic shared by the CUDA kernels and the host reference.
//
// Everything here is __host__ __device__ so that the host reference (plain C++ compiled by the
// host compiler) runs exactly the arithmetic of the kernels. Sums are written as explicit fmaf
// calls: the CUDA compiler contracts a*b+c into FMA on its own while a host compiler may not, and
// with explicit FMAs both sides round the same way, so a kernel and its reference agree to the
// last bit wherever they sum in the same order.
#pragma once

#include <cuda_fp16.h>

#include <cmath>

#if defined(__CUDACC__)
#define MAED_HD __host__ __device__ __forceinline__
#define MAED_UNROLL _Pragma("unroll")
#else
#define MAED_HD inline
#define MAED_UNROLL
#endif

namespace maed {

MAED_HD float to_float(float v) { return v; }
MAED_HD float to_float(__half v) { return __half2float(v); }

template <typename T>
MAED_HD T from_float(float v);
template <>
MAED_HD float from_float<float>(float v) { return v; }
template <>
MAED_HD __half from_float<__half>(float v) { return __float2half_rn(v); }

MAED_HD float relu(float v) { return v > 0.0f ? v : 0.0f; }

MAED_HD float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

}  // namespace maed
