// The SE fusion kernels against their host reference, on a GPU, FP32 and FP16, with the output
// poisoned with NaN first. Part of test_cuda_kernels (common/tests/test_cuda_kernels.cpp).
#include <vector>

#include "cuda_test_util.h"
#include "op_tests.h"

namespace maed_test {
namespace {

void check_se(std::mt19937& rng, int n, int channels, int reduced, int h, int w) {
    const SeLayer layer(rng, channels, reduced);
    const MaedSeFusion host_se = layer.view();
    float* w1 = upload(layer.w1);
    float* b1 = upload(layer.b1);
    float* w2 = upload(layer.w2);
    float* b2 = upload(layer.b2);
    const MaedSeFusion dev_se{channels, reduced, w1, b1, w2, b2};
    void* workspace = nullptr;
    CUDA_OK(cudaMalloc(&workspace, maed_cuda_se_workspace_bytes(n, channels, h, w)));
    const auto x = random_vector(rng, static_cast<size_t>(n) * channels * h * w);

    const double e32 = device_vs_reference(
        x, x.size(), [&](const float* dx, float* dy) { return maed_cuda_se_fusion(dx, dy, MAED_FLOAT32, n, h, w, &dev_se, workspace, nullptr); },
        [&](const float* hx, float* hy) { return maed_ref_se_fusion(hx, hy, MAED_FLOAT32, n, h, w, &host_se); });
    EXPECT(e32 < 1e-5, "se f32 c%d %dx%d: %.2e of range", channels, h, w, e32);
    const double e16 = device_vs_reference(
        to_half(x), x.size(), [&](const __half* dx, __half* dy) { return maed_cuda_se_fusion(dx, dy, MAED_FLOAT16, n, h, w, &dev_se, workspace, nullptr); },
        [&](const __half* hx, __half* hy) { return maed_ref_se_fusion(hx, hy, MAED_FLOAT16, n, h, w, &host_se); });
    EXPECT(e16 < 1e-3, "se f16 c%d %dx%d: %.2e of range", channels, h, w, e16);
    for (float* p : {w1, b1, w2, b2}) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(workspace));
}

}  // namespace

void se_fusion_cuda_cases(std::mt19937& rng) {
    check_se(rng, 2, 40, 10, 13, 11);
    check_se(rng, 1, 7, 2, 129, 65);
    check_se(rng, 1, 40, 10, 512, 512);
    check_se(rng, 2, 3, 1, 1, 1);
}

}  // namespace maed_test
