// Helpers of the C++ tests that run kernels on a GPU: device copies, and one launch against the
// host reference with the output poisoned with NaN first.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "test_util.h"

namespace maed_test {

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

}  // namespace maed_test
