// The SE fusion's host reference against a direct double-precision evaluation of the layer
// written from its definition (not from the shared arithmetic), with one and several pool slices,
// FP32 and FP16; and its refusal of unsupported arguments.
// Part of test_reference (common/tests/test_reference.cpp).
#include <cmath>
#include <vector>

#include "op_tests.h"
#include "test_util.h"

namespace maed_test {
namespace {

std::vector<double> direct_se(const std::vector<float>& x, int n, int h, int w, const SeLayer& l) {
    const size_t plane = static_cast<size_t>(h) * w;
    std::vector<double> out(x.size()), mean(l.channels), hidden(l.reduced);
    for (int b = 0; b < n; ++b) {
        const float* img = x.data() + static_cast<size_t>(b) * l.channels * plane;
        for (int c = 0; c < l.channels; ++c) {
            double s = 0.0;
            for (size_t i = 0; i < plane; ++i) s += img[c * plane + i];
            mean[c] = s / static_cast<double>(plane);
        }
        for (int j = 0; j < l.reduced; ++j) {
            double s = l.b1[j];
            for (int c = 0; c < l.channels; ++c) s += static_cast<double>(l.w1[j * l.channels + c]) * mean[c];
            hidden[j] = std::max(s, 0.0);
        }
        for (int c = 0; c < l.channels; ++c) {
            double s = l.b2[c];
            for (int j = 0; j < l.reduced; ++j) s += static_cast<double>(l.w2[c * l.reduced + j]) * hidden[j];
            const double gate = 1.0 / (1.0 + std::exp(-s));
            for (size_t i = 0; i < plane; ++i) out[(static_cast<size_t>(b) * l.channels + c) * plane + i] = img[c * plane + i] * gate;
        }
    }
    return out;
}

void check_se(std::mt19937& rng, int n, int channels, int reduced, int h, int w) {
    const SeLayer layer(rng, channels, reduced);
    const MaedSeFusion se = layer.view();
    const auto x = random_vector(rng, static_cast<size_t>(n) * channels * h * w);

    std::vector<float> y(x.size());
    EXPECT(maed_ref_se_fusion(x.data(), y.data(), MAED_FLOAT32, n, h, w, &se) == 0, "se f32 refused");
    const double e32 = error_of_range(y, direct_se(x, n, h, w, layer));
    EXPECT(e32 < 1e-6, "se f32 n%d c%d r%d %dx%d: error %.2e of range", n, channels, reduced, h, w, e32);

    const auto xh = to_half(x);
    std::vector<__half> yh(x.size());
    EXPECT(maed_ref_se_fusion(xh.data(), yh.data(), MAED_FLOAT16, n, h, w, &se) == 0, "se f16 refused");
    const double e16 = error_of_range(to_float(yh), direct_se(to_float(xh), n, h, w, layer));
    EXPECT(e16 < 2e-3, "se f16 n%d c%d r%d %dx%d: error %.2e of range", n, channels, reduced, h, w, e16);
}

}  // namespace

void se_fusion_reference_cases(std::mt19937& rng) {
    check_se(rng, 2, 40, 10, 13, 11);
    check_se(rng, 1, 5, 1, 1, 1);
    check_se(rng, 1, 7, 2, 129, 65);   // two pool slices, odd plane
    check_se(rng, 2, 3, 1, 200, 200);  // five pool slices
}

void se_fusion_reference_refusals(std::mt19937& rng) {
    float buf[4 * 5 * 3 * 3] = {};
    const SeLayer se(rng, 4, 1);
    const MaedSeFusion s = se.view();
    EXPECT(maed_ref_se_fusion(nullptr, buf, MAED_FLOAT32, 1, 3, 3, &s) == MAED_INVALID_ARGUMENT, "null input accepted");
}

}  // namespace maed_test
