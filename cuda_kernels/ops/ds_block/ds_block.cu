// Fused depthwise-separable residual block: depthwise k x k + BN + ReLU, 1x1 pointwise + BN,
// shortcut (identity or 1x1 projection + BN), add, ReLU, in one kernel (arithmetic in
// ds_block_math.h).
//
// Each block owns a 32 x 4 pixel tile and 16 output channels of one image. The folded weights of
// 32 input channels at a time are staged in shared memory, where all threads read the same word
// (a broadcast); the input taps come through L1, where the k x k neighbourhoods of a tile overlap.
// A layer with more than 16 outputs runs several channel tiles, each recomputing the depthwise
// convolution (k*k FMAs per input channel against 16 or 32 pointwise FMAs) instead of writing it
// out: that recomputation is the price of never sending the depthwise output to memory.
#include <cuda_runtime.h>

#include "ds_block_launch.h"
#include "ds_block_math.h"
#include "maed_kernels/api.h"

namespace maed {
namespace {

struct DsArgs {
    MaedDsBlock block;
    int height;
    int width;
    int cout_tiles;
};

// Six resident blocks per SM caps the kernel at 85 registers; left free, ptxas takes 72 and still
// spills a word of the accumulators.
template <typename T, int K>
__global__ void __launch_bounds__(kDsTileX * kDsTileY, 6) ds_block_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                                      DsArgs a) {
    __shared__ float s_dw[kDsCiChunk * MAED_MAX_DW_KERNEL * MAED_MAX_DW_KERNEL];
    __shared__ float s_dw_bias[kDsCiChunk];
    __shared__ float s_pw[kDsCiChunk * kDsCoutTile];
    __shared__ float s_sc[kDsCiChunk * kDsCoutTile];

    const MaedDsBlock& b = a.block;
    const int image = blockIdx.z / a.cout_tiles;
    const int co0 = (blockIdx.z % a.cout_tiles) * kDsCoutTile;
    const int count = min(kDsCoutTile, b.cout - co0);
    const int px = blockIdx.x * kDsTileX + threadIdx.x;
    const int py = blockIdx.y * kDsTileY + threadIdx.y;
    const bool inside = px < a.width && py < a.height;
    const size_t plane = static_cast<size_t>(a.height) * a.width;
    const T* img = x + static_cast<size_t>(image) * b.cin * plane;
    const int kk = b.ksize * b.ksize;
    const int tid = threadIdx.y * kDsTileX + threadIdx.x;
    constexpr int kThreads = kDsTileX * kDsTileY;

    float acc[kDsCoutTile];
    MAED_UNROLL
    for (int t = 0; t < kDsCoutTile; ++t) acc[t] = t < count ? b.bias[co0 + t] : 0.0f;

    const PointwiseView view{s_dw, s_dw_bias, s_pw, b.shortcut_weight != nullptr ? s_sc : nullptr, kDsCoutTile, 1};
    for (int ci0 = 0; ci0 < b.cin; ci0 += kDsCiChunk) {
        const int chunk = min(kDsCiChunk, b.cin - ci0);
        __syncthreads();  // the previous chunk's weights are no longer read
        for (int i = tid; i < chunk * kk; i += kThreads) s_dw[i] = b.dw_weight[ci0 * kk + i];
        for (int i = tid; i < chunk; i += kThreads) s_dw_bias[i] = b.dw_bias[ci0 + i];
        for (int i = tid; i < chunk * kDsCoutTile; i += kThreads) {
            const int c = i / kDsCoutTile;
            const int t = i % kDsCoutTile;
            const size_t at = static_cast<size_t>(co0 + t) * b.cin + ci0 + c;
            s_pw[i] = t < count ? b.pw_weight[at] : 0.0f;
            if (b.shortcut_weight != nullptr) s_sc[i] = t < count ? b.shortcut_weight[at] : 0.0f;
        }
        __syncthreads();
        if (inside) ds_accumulate<T, kDsCoutTile, K>(acc, img, a.height, a.width, py, px, ci0, ci0 + chunk, b.ksize, view, count);
    }
    if (inside) {
        T* out = y + static_cast<size_t>(image) * b.cout * plane;
        ds_store<T, kDsCoutTile>(acc, img, out, a.height, a.width, py, px, co0, count, b.shortcut_weight == nullptr);
    }
}

// 3x3 (every block of MAED-CNN) and 5x5 get unrolled taps; other sizes the generic kernel.
template <typename T>
void launch_ds_block(const T* x, T* y, const DsArgs& args, dim3 grid, dim3 threads, cudaStream_t s) {
    switch (args.block.ksize) {
    case 3: ds_block_kernel<T, 3><<<grid, threads, 0, s>>>(x, y, args); break;
    case 5: ds_block_kernel<T, 5><<<grid, threads, 0, s>>>(x, y, args); break;
    default: ds_block_kernel<T, 0><<<grid, threads, 0, s>>>(x, y, args); break;
    }
}

}  // namespace
}  // namespace maed

extern "C" int maed_cuda_ds_block(const void* x, void* y, int dtype, int n, int height, int width,
                                  const MaedDsBlock* block, void* stream) {
    using namespace maed;
    if (!valid_ds_block(x, y, dtype, n, height, width, block)) return MAED_INVALID_ARGUMENT;
    const int cout_tiles = ceil_div(block->cout, kDsCoutTile);
    const long long grid_z = static_cast<long long>(n) * cout_tiles;
    const int grid_y = ceil_div(height, kDsTileY);
    if (grid_z > 65535 || grid_y > 65535) return MAED_INVALID_ARGUMENT;  // CUDA's grid limits

    const DsArgs args{*block, height, width, cout_tiles};
    const dim3 grid(ceil_div(width, kDsTileX), grid_y, static_cast<unsigned>(grid_z));
    const dim3 threads(kDsTileX, kDsTileY);
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == MAED_FLOAT32) {
        launch_ds_block(static_cast<const float*>(x), static_cast<float*>(y), args, grid, threads, s);
    } else {
        launch_ds_block(static_cast<const __half*>(x), static_cast<__half*>(y), args, grid, threads, s);
    }
    return static_cast<int>(cudaGetLastError());
}
