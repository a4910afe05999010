// SE fusion in two kernels (arithmetic in se_math.h): a global average needs every pixel of a
// channel before any output can be scaled, i.e. a grid-wide barrier, which a kernel boundary is.
//
// 1. se_pool_kernel: grid (splits, N*C); each block sums one contiguous slice of one channel
//    plane into workspace[(n*C + c)*splits + s] (FP32, fixed order: no atomics, deterministic).
// 2. se_scale_kernel: grid (plane / 4096, N*C); each block rebuilds the means of its image from
//    the partial sums, runs the two tiny FC layers (C*Cr MACs each, cheaper than a third launch)
//    and scales its 4096 elements, two at a time with half2 arithmetic in FP16.
#include <cuda_runtime.h>

#include "maed_kernels/api.h"
#include "se_fusion_launch.h"
#include "se_math.h"

namespace maed {
namespace {

__device__ float block_sum(float v) {
    __shared__ float warp_sums[kSeThreads / 32];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = threadIdx.x < kSeThreads / 32 ? warp_sums[threadIdx.x] : 0.0f;
    if (warp == 0) {
        for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;  // valid in thread 0
}

template <typename T>
__global__ void __launch_bounds__(kSeThreads) se_pool_kernel(const T* __restrict__ x, float* __restrict__ partial,
                                                             long long plane, int splits) {
    const int s = blockIdx.x;
    const T* src = x + blockIdx.y * plane;
    const long long end = se_slice_begin(plane, splits, s + 1);
    float sum = 0.0f;
    for (long long i = se_slice_begin(plane, splits, s) + threadIdx.x; i < end; i += kSeThreads) sum += to_float(src[i]);
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[static_cast<size_t>(blockIdx.y) * splits + s] = sum;
}

// Gate of channel (blockIdx.y % C) of image (blockIdx.y / C), computed by the whole block;
// 'scratch' holds the C means followed by the Cr hidden units.
__device__ float se_block_gate(const float* partial, MaedSeFusion se, long long plane, int splits, float* scratch) {
    const int image = blockIdx.y / se.channels;
    const int c = blockIdx.y % se.channels;
    float* mean = scratch;
    float* hidden = scratch + se.channels;
    const float* image_partial = partial + static_cast<size_t>(image) * se.channels * splits;
    for (int i = threadIdx.x; i < se.channels; i += kSeThreads) mean[i] = se_mean(image_partial + i * splits, splits, plane);
    __syncthreads();
    for (int j = threadIdx.x; j < se.reduced; j += kSeThreads) {
        hidden[j] = se_hidden(mean, se.fc1_weight + j * se.channels, se.fc1_bias[j], se.channels);
    }
    __syncthreads();
    return se_gate(hidden, se.fc2_weight + c * se.reduced, se.fc2_bias[c], se.reduced);
}

__global__ void __launch_bounds__(kSeThreads) se_scale_kernel_f32(const float* __restrict__ x, float* __restrict__ y,
                                                                  const float* __restrict__ partial, MaedSeFusion se,
                                                                  long long plane, int splits) {
    extern __shared__ float scratch[];
    const float gate = se_block_gate(partial, se, plane, splits, scratch);
    const size_t base = static_cast<size_t>(blockIdx.y) * plane;
    const long long begin = static_cast<long long>(blockIdx.x) * kSeScaleElems;
    const long long end = min(begin + kSeScaleElems, plane);
    for (long long i = begin + threadIdx.x; i < end; i += kSeThreads) y[base + i] = se_scale(x[base + i], gate);
}

__global__ void __launch_bounds__(kSeThreads) se_scale_kernel_f16(const __half* __restrict__ x, __half* __restrict__ y,
                                                                  const float* __restrict__ partial, MaedSeFusion se,
                                                                  long long plane, int splits) {
    extern __shared__ float scratch[];
    const float gate = se_block_gate(partial, se, plane, splits, scratch);
    const size_t base = static_cast<size_t>(blockIdx.y) * plane;
    const long long begin = static_cast<long long>(blockIdx.x) * kSeScaleElems;
    const long long end = min(begin + kSeScaleElems, plane);
    if (plane % 2 == 0) {
        // Even planes start on a 4-byte boundary and kSeScaleElems is even: aligned half2 pairs.
        const __half2 gate2 = __half2half2(__float2half_rn(gate));
        const __half2* x2 = reinterpret_cast<const __half2*>(x + base);
        __half2* y2 = reinterpret_cast<__half2*>(y + base);
        for (long long i = begin / 2 + threadIdx.x; i < end / 2; i += kSeThreads) y2[i] = se_scale2(x2[i], gate2);
    } else {
        for (long long i = begin + threadIdx.x; i < end; i += kSeThreads) y[base + i] = se_scale(x[base + i], gate);
    }
}

}  // namespace
}  // namespace maed

extern "C" size_t maed_cuda_se_workspace_bytes(int n, int channels, int height, int width) {
    const long long plane = static_cast<long long>(height) * width;
    return static_cast<size_t>(n) * channels * maed::se_pool_splits(plane) * sizeof(float);
}

extern "C" int maed_cuda_se_fusion(const void* x, void* y, int dtype, int n, int height, int width,
                                   const MaedSeFusion* se, void* workspace, void* stream) {
    using namespace maed;
    if (!valid_se_fusion(x, y, dtype, n, height, width, se) || workspace == nullptr) return MAED_INVALID_ARGUMENT;
    const long long plane = static_cast<long long>(height) * width;
    const long long planes = static_cast<long long>(n) * se->channels;
    const int splits = se_pool_splits(plane);
    const long long scale_blocks = (plane + kSeScaleElems - 1) / kSeScaleElems;
    if (planes > 65535 || scale_blocks > 0x7fffffffLL) return MAED_INVALID_ARGUMENT;  // CUDA's grid limits
    const size_t scratch = static_cast<size_t>(se->channels + se->reduced) * sizeof(float);
    if (scratch > 48 * 1024) return MAED_INVALID_ARGUMENT;

    auto s = static_cast<cudaStream_t>(stream);
    auto* partial = static_cast<float*>(workspace);
    const dim3 pool_grid(splits, static_cast<unsigned>(planes));
    const dim3 scale_grid(static_cast<unsigned>(scale_blocks), static_cast<unsigned>(planes));
    if (dtype == MAED_FLOAT32) {
        auto* xf = static_cast<const float*>(x);
        se_pool_kernel<float><<<pool_grid, kSeThreads, 0, s>>>(xf, partial, plane, splits);
        if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return static_cast<int>(e);
        se_scale_kernel_f32<<<scale_grid, kSeThreads, scratch, s>>>(xf, static_cast<float*>(y), partial, *se, plane, splits);
    } else {
        auto* xh = static_cast<const __half*>(x);
        se_pool_kernel<__half><<<pool_grid, kSeThreads, 0, s>>>(xh, partial, plane, splits);
        if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return static_cast<int>(e);
        se_scale_kernel_f16<<<scale_grid, kSeThreads, scratch, s>>>(xh, static_cast<__half*>(y), partial, *se, plane, splits);
    }
    return static_cast<int>(cudaGetLastError());
}
