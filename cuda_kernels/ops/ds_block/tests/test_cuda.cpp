// The fused DS block kernel against its host reference, on a GPU, FP32 and FP16, with the output
// poisoned with NaN first. Part of test_cuda_kernels (common/tests/test_cuda_kernels.cpp).
#include <vector>

#include "cuda_test_util.h"
#include "op_tests.h"

namespace maed_test {
namespace {

void check_ds(std::mt19937& rng, int n, int cin, int cout, int h, int w, int k, bool identity) {
    const DsLayer layer(rng, cin, cout, k, identity);
    const MaedDsBlock host_block = layer.view();
    float* dw = upload(layer.dw);
    float* dwb = upload(layer.dw_bias);
    float* pw = upload(layer.pw);
    float* sc = identity ? nullptr : upload(layer.shortcut);
    float* bias = upload(layer.bias);
    const MaedDsBlock dev_block{cin, cout, k, dw, dwb, pw, sc, bias};
    const size_t plane = static_cast<size_t>(h) * w;
    const auto x = random_vector(rng, n * cin * plane);
    const size_t out_size = n * cout * plane;

    const double e32 = device_vs_reference(
        x, out_size, [&](const float* dx, float* dy) { return maed_cuda_ds_block(dx, dy, MAED_FLOAT32, n, h, w, &dev_block, nullptr); },
        [&](const float* hx, float* hy) { return maed_ref_ds_block(hx, hy, MAED_FLOAT32, n, h, w, &host_block); });
    EXPECT(e32 < 1e-6, "ds f32 cin%d cout%d %dx%d k%d: %.2e of range", cin, cout, h, w, k, e32);
    const double e16 = device_vs_reference(
        to_half(x), out_size, [&](const __half* dx, __half* dy) { return maed_cuda_ds_block(dx, dy, MAED_FLOAT16, n, h, w, &dev_block, nullptr); },
        [&](const __half* hx, __half* hy) { return maed_ref_ds_block(hx, hy, MAED_FLOAT16, n, h, w, &host_block); });
    EXPECT(e16 < 1e-3, "ds f16 cin%d cout%d %dx%d k%d: %.2e of range", cin, cout, h, w, k, e16);
    for (float* p : {dw, dwb, pw, sc, bias}) CUDA_OK(cudaFree(p));
}

}  // namespace

void ds_block_cuda_cases(std::mt19937& rng) {
    check_ds(rng, 2, 5, 5, 7, 9, 3, true);
    check_ds(rng, 1, 6, 19, 13, 1, 5, false);
    check_ds(rng, 3, 33, 17, 5, 33, 7, false);
    check_ds(rng, 1, 152, 64, 37, 70, 3, false);
    check_ds(rng, 1, 16, 16, 256, 255, 3, true);
}

}  // namespace maed_test
