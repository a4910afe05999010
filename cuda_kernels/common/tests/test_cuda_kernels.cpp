// The CUDA kernels against the host reference, on a GPU; exits 77 (ctest: skipped) without one.
// Outputs are poisoned with NaN before each launch so that an unwritten element fails.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "test_util.h"

using namespace maed_test;

namespace {

#define CUDA_OK(call)                                                                                 \
    do {                                                                                              \
        const cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess) {                                                                      \
            std::printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));   \
            std::exit(1);                                                                             \
        }                                                                                             \
    } while (0)

template <typename T>
T* upload(const std::vector<T>& host) {
    T* dev = nullptr;
    CUDA_OK(cudaMalloc(&dev, std::max<size_t>(host.size(), 1) * sizeof(T)));
    CUDA_OK(cudaMemcpy(dev, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return dev;
}

template <typename T>
std::vector<T> download(const T* dev, size_t size) {
    std::vector<T> host(size);
    CUDA_OK(cudaMemcpy(host.data(), dev, size * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
}

// Runs 'launch' on device copies of x and compares with 'reference' on the host copies.
template <typename T, typename Launch, typename Reference>
double device_vs_reference(const std::vector<T>& x, size_t out_size, Launch launch, Reference reference) {
    T* dx = upload(x);
    T* dy = nullptr;
    CUDA_OK(cudaMalloc(&dy, out_size * sizeof(T)));
    CUDA_OK(cudaMemset(dy, 0xff, out_size * sizeof(T)));  // all-ones bits: NaN in FP32 and FP16
    const int status = launch(dx, dy);
    EXPECT(status == 0, "launch failed: %s", maed_cuda_error_string(status));
    CUDA_OK(cudaDeviceSynchronize());
    const auto got = download(dy, out_size);
    std::vector<T> want(out_size);
    EXPECT(reference(x.data(), want.data()) == 0, "reference refused");
    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dy));
    if constexpr (std::is_same_v<T, float>) return error_of_range(got, want);
    else return error_of_range(to_float(got), to_float(want));
}

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

int main() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("no CUDA device: skipped\n");
        return 77;
    }
    std::mt19937 rng(11);
    check_ds(rng, 2, 5, 5, 7, 9, 3, true);
    check_ds(rng, 1, 6, 19, 13, 1, 5, false);
    check_ds(rng, 3, 33, 17, 5, 33, 7, false);
    check_ds(rng, 1, 152, 64, 37, 70, 3, false);
    check_ds(rng, 1, 16, 16, 256, 255, 3, true);
    check_se(rng, 2, 40, 10, 13, 11);
    check_se(rng, 1, 7, 2, 129, 65);
    check_se(rng, 1, 40, 10, 512, 512);
    check_se(rng, 2, 3, 1, 1, 1);
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
    return g_failures ? 1 : 0;
}
