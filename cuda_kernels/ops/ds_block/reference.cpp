// Host reference of the fused DS residual block: plain C++ loops over the kernel's launch grid,
// calling the same __host__ __device__ arithmetic (ds_block_math.h). It sums in the kernel's
// order, so it matches the GPU to the last bit.
#include <algorithm>

#include "ds_block_launch.h"
#include "ds_block_math.h"
#include "maed_kernels/api.h"

namespace maed {
namespace {

template <typename T>
void ds_block(const T* x, T* y, int n, int height, int width, const MaedDsBlock& b) {
    const size_t plane = static_cast<size_t>(height) * width;
    const int tiles = ceil_div(b.cout, kDsCoutTile);
    for (int image = 0; image < n; ++image) {
        const T* img = x + static_cast<size_t>(image) * b.cin * plane;
        T* out = y + static_cast<size_t>(image) * b.cout * plane;
        for (int tile = 0; tile < tiles; ++tile) {
            const int co0 = tile * kDsCoutTile;
            const int count = std::min(kDsCoutTile, b.cout - co0);
            // The whole weight arrays in the torch layout: (ci, t) at ci + t * cin.
            const PointwiseView view{b.dw_weight, b.dw_bias, b.pw_weight + static_cast<size_t>(co0) * b.cin,
                                     b.shortcut_weight ? b.shortcut_weight + static_cast<size_t>(co0) * b.cin : nullptr,
                                     1, b.cin};
            for (int py = 0; py < height; ++py) {
                for (int px = 0; px < width; ++px) {
                    float acc[kDsCoutTile];
                    for (int t = 0; t < kDsCoutTile; ++t) acc[t] = t < count ? b.bias[co0 + t] : 0.0f;
                    ds_accumulate<T, kDsCoutTile, 0>(acc, img, height, width, py, px, 0, b.cin, b.ksize, view, count);
                    ds_store<T, kDsCoutTile>(acc, img, out, height, width, py, px, co0, count, b.shortcut_weight == nullptr);
                }
            }
        }
    }
}

}  // namespace
}  // namespace maed

extern "C" int maed_ref_ds_block(const void* x, void* y, int dtype, int n, int height, int width,
                                 const MaedDsBlock* block) {
    if (!maed::valid_ds_block(x, y, dtype, n, height, width, block)) return MAED_INVALID_ARGUMENT;
    if (dtype == MAED_FLOAT32) {
        maed::ds_block(static_cast<const float*>(x), static_cast<float*>(y), n, height, width, *block);
    } else {
        maed::ds_block(static_cast<const __half*>(x), static_cast<__half*>(y), n, height, width, *block);
    }
    return 0;
}
