// Host reference of the SE fusion: plain C++ loops calling the kernels' __host__ __device__
// arithmetic (se_math.h). The pool sums each slice sequentially where the GPU reduces a tree, so
// the means differ in the last bits.
#include <vector>

#include "maed_kernels/api.h"
#include "se_fusion_launch.h"
#include "se_math.h"

namespace maed {
namespace {

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
