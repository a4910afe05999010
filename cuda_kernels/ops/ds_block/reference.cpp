// Host reference of the kernels: plain C++ loops over the kernels' launch grid, calling the same
// __host__ __device__ arithmetic (ds_block_math.h, se_math.h). The DS block sums in the kernel's
// order, so it matches the GPU to the last bit; the SE pool sums each slice sequentially where the
// GPU reduces a tree, so the means differ in the last bits.
#include <algorithm>
#include <vector>

#include "ds_block_math.h"
#include "maed_kernels/api.h"
#include "maed_kernels/checks.h"
#include "maed_kernels/launch_config.h"
#include "se_math.h"

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

template <typename T>
void se_fusion(const T* x, T* y, int n, int height, int width, const MaedSeFusion& se) {
    const long long plane = static_cast<long long>(height) * width;
    const int splits = se_pool_splits(plane);
    std::vector<float> partial(static_cast<size_t>(se.channels) * splits);
    std::vector<float> mean(se.channels);
    std::vector<float> hidden(se.reduced);
    for (int image = 0; image < n; ++image) {
        const T* img = x + static_cast<size_t>(image) * se.channels * plane;
        T* out = y + static_cast<size_t>(image) * se.channels * plane;
        for (int c = 0; c < se.channels; ++c) {
            for (int s = 0; s < splits; ++s) {
                float sum = 0.0f;
                const long long end = se_slice_begin(plane, splits, s + 1);
                for (long long i = se_slice_begin(plane, splits, s); i < end; ++i) sum += to_float(img[c * plane + i]);
                partial[static_cast<size_t>(c) * splits + s] = sum;
            }
            mean[c] = se_mean(&partial[static_cast<size_t>(c) * splits], splits, plane);
        }
        for (int j = 0; j < se.reduced; ++j) {
            hidden[j] = se_hidden(mean.data(), se.fc1_weight + j * se.channels, se.fc1_bias[j], se.channels);
        }
        for (int c = 0; c < se.channels; ++c) {
            const float gate = se_gate(hidden.data(), se.fc2_weight + c * se.reduced, se.fc2_bias[c], se.reduced);
            for (long long i = 0; i < plane; ++i) out[c * plane + i] = se_scale(img[c * plane + i], gate);
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

extern "C" int maed_ref_se_fusion(const void* x, void* y, int dtype, int n, int height, int width,
                                  const MaedSeFusion* se) {
    if (!maed::valid_se_fusion(x, y, dtype, n, height, width, se)) return MAED_INVALID_ARGUMENT;
    if (dtype == MAED_FLOAT32) {
        maed::se_fusion(static_cast<const float*>(x), static_cast<float*>(y), n, height, width, *se);
    } else {
        maed::se_fusion(static_cast<const __half*>(x), static_cast<__half*>(y), n, height, width, *se);
    }
    return 0;
}
