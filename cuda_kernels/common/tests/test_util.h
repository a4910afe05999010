// Helpers of the C++ tests: random layers and inputs, FP16 conversion, error measures.
#pragma once

#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "maed_kernels/api.h"

namespace maed_test {

inline int g_failures = 0;

#define EXPECT(cond, ...)                                         \
    do {                                                          \
        if (!(cond)) {                                            \
            std::printf("FAIL %s:%d: ", __FILE__, __LINE__);      \
            std::printf(__VA_ARGS__);                             \
            std::printf("\n");                                    \
            ++maed_test::g_failures;                              \
        }                                                         \
    } while (0)

inline std::vector<float> random_vector(std::mt19937& rng, size_t size, float scale = 1.0f) {
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<float> v(size);
    for (auto& e : v) e = dist(rng);
    return v;
}

// A DS block's folded weights, owning their storage.
struct DsLayer {
    int cin, cout, ksize;
    bool identity;
    std::vector<float> dw, dw_bias, pw, shortcut, bias;

    DsLayer(std::mt19937& rng, int cin_, int cout_, int ksize_, bool identity_)
        : cin(cin_), cout(cout_), ksize(ksize_), identity(identity_),
          dw(random_vector(rng, static_cast<size_t>(cin_) * ksize_ * ksize_)), dw_bias(random_vector(rng, cin_)),
          pw(random_vector(rng, static_cast<size_t>(cout_) * cin_, 0.5f)),
          shortcut(identity_ ? std::vector<float>{} : random_vector(rng, static_cast<size_t>(cout_) * cin_, 0.5f)),
          bias(random_vector(rng, cout_)) {}

    MaedDsBlock view() const {
        return {cin, cout, ksize, dw.data(), dw_bias.data(), pw.data(), identity ? nullptr : shortcut.data(), bias.data()};
    }
};

struct SeLayer {
    int channels, reduced;
    std::vector<float> w1, b1, w2, b2;

    SeLayer(std::mt19937& rng, int channels_, int reduced_)
        : channels(channels_), reduced(reduced_), w1(random_vector(rng, static_cast<size_t>(reduced_) * channels_)),
          b1(random_vector(rng, reduced_)), w2(random_vector(rng, static_cast<size_t>(channels_) * reduced_)),
          b2(random_vector(rng, channels_)) {}

    MaedSeFusion view() const { return {channels, reduced, w1.data(), b1.data(), w2.data(), b2.data()}; }
};

inline std::vector<__half> to_half(const std::vector<float>& v) {
    std::vector<__half> h(v.size());
    std::transform(v.begin(), v.end(), h.begin(), [](float f) { return __float2half_rn(f); });
    return h;
}

inline std::vector<float> to_float(const std::vector<__half>& h) {
    std::vector<float> v(h.size());
    std::transform(h.begin(), h.end(), v.begin(), [](__half e) { return __half2float(e); });
    return v;
}

// Largest |got - want| over the range of want; NaN (an unwritten, poisoned element) counts as inf.
template <typename A, typename B>
double error_of_range(const std::vector<A>& got, const std::vector<B>& want) {
    double lo = INFINITY, hi = -INFINITY, err = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double w = static_cast<double>(want[i]);
        lo = std::min(lo, w);
        hi = std::max(hi, w);
        const double d = std::fabs(static_cast<double>(got[i]) - w);
        err = std::isnan(d) ? INFINITY : std::max(err, d);
    }
    return err / std::max(hi - lo, 1e-30);
}

}  // namespace maed_test
