// The DS block's host reference against a direct, unfused double-precision evaluation of the
// layer written from its definition (not from the shared arithmetic), on odd shapes, both
// shortcuts, several kernel sizes, FP32 and FP16; and its refusal of unsupported arguments.
// Part of test_reference (common/tests/test_reference.cpp).
#include <vector>

#include "op_tests.h"
#include "test_util.h"

namespace maed_test {
namespace {

std::vector<double> direct_ds(const std::vector<float>& x, int n, int h, int w, const DsLayer& l) {
    const int r = l.ksize / 2;
    const size_t plane = static_cast<size_t>(h) * w;
    std::vector<double> out(static_cast<size_t>(n) * l.cout * plane);
    std::vector<double> d(l.cin);
    for (int b = 0; b < n; ++b) {
        const float* img = x.data() + static_cast<size_t>(b) * l.cin * plane;
        for (int y = 0; y < h; ++y) {
            for (int xx = 0; xx < w; ++xx) {
                for (int ci = 0; ci < l.cin; ++ci) {
                    double s = l.dw_bias[ci];
                    for (int dy = -r; dy <= r; ++dy) {
                        for (int dx = -r; dx <= r; ++dx) {
                            if (y + dy < 0 || y + dy >= h || xx + dx < 0 || xx + dx >= w) continue;
                            s += static_cast<double>(l.dw[(ci * l.ksize + dy + r) * l.ksize + dx + r]) *
                                 img[ci * plane + (y + dy) * w + xx + dx];
                        }
                    }
                    d[ci] = std::max(s, 0.0);
                }
                for (int co = 0; co < l.cout; ++co) {
                    double s = l.bias[co];
                    for (int ci = 0; ci < l.cin; ++ci) {
                        s += static_cast<double>(l.pw[co * l.cin + ci]) * d[ci];
                        if (!l.identity) s += static_cast<double>(l.shortcut[co * l.cin + ci]) * img[ci * plane + y * w + xx];
                    }
                    if (l.identity) s += img[co * plane + y * w + xx];
                    out[(static_cast<size_t>(b) * l.cout + co) * plane + y * w + xx] = std::max(s, 0.0);
                }
            }
        }
    }
    return out;
}

struct DsCase {
    int n, cin, cout, h, w, k;
    bool identity;
};

void check_ds(std::mt19937& rng, const DsCase& c) {
    const DsLayer layer(rng, c.cin, c.cout, c.k, c.identity);
    const MaedDsBlock block = layer.view();
    const size_t plane = static_cast<size_t>(c.h) * c.w;
    const auto x = random_vector(rng, c.n * c.cin * plane);
    const size_t out_size = c.n * c.cout * plane;

    std::vector<float> y(out_size);
    EXPECT(maed_ref_ds_block(x.data(), y.data(), MAED_FLOAT32, c.n, c.h, c.w, &block) == 0, "ds f32 refused");
    const double e32 = error_of_range(y, direct_ds(x, c.n, c.h, c.w, layer));
    EXPECT(e32 < 1e-6, "ds f32 n%d cin%d cout%d %dx%d k%d: error %.2e of range", c.n, c.cin, c.cout, c.h, c.w, c.k, e32);

    // FP16: the direct evaluation sees the same rounded input; the output is rounded once.
    const auto xh = to_half(x);
    std::vector<__half> yh(out_size);
    EXPECT(maed_ref_ds_block(xh.data(), yh.data(), MAED_FLOAT16, c.n, c.h, c.w, &block) == 0, "ds f16 refused");
    const double e16 = error_of_range(to_float(yh), direct_ds(to_float(xh), c.n, c.h, c.w, layer));
    EXPECT(e16 < 1e-3, "ds f16 n%d cin%d cout%d %dx%d k%d: error %.2e of range", c.n, c.cin, c.cout, c.h, c.w, c.k, e16);
}

}  // namespace

void ds_block_reference_cases(std::mt19937& rng) {
    const DsCase ds_cases[] = {
        {2, 5, 5, 7, 9, 3, true},      // identity, odd sizes
        {1, 6, 19, 13, 1, 5, false},   // projection, 2 output tiles (the second partly used), one column
        {1, 40, 40, 1, 1, 3, true},    // a single pixel: every tap but the centre is padding
        {3, 33, 17, 5, 33, 7, false},  // two input-channel chunks, batch 3
        {1, 3, 3, 2, 2, 9, true},      // kernel larger than the image
        {1, 152, 64, 6, 10, 3, false}, // rt's widest decoder block
    };
    for (const auto& c : ds_cases) check_ds(rng, c);
}

void ds_block_reference_refusals(std::mt19937& rng) {
    const DsLayer even(rng, 4, 4, 4, true);
    const DsLayer wide(rng, 4, 5, 11, false);
    const DsLayer mismatched(rng, 4, 6, 3, true);  // identity shortcut needs cin == cout
    float buf[4 * 5 * 3 * 3] = {};
    for (const DsLayer* l : {&even, &wide, &mismatched}) {
        const MaedDsBlock b = l->view();
        EXPECT(maed_ref_ds_block(buf, buf, MAED_FLOAT32, 1, 3, 3, &b) == MAED_INVALID_ARGUMENT, "k%d accepted", l->ksize);
    }
    const DsLayer ok(rng, 4, 4, 3, true);
    const MaedDsBlock b = ok.view();
    EXPECT(maed_ref_ds_block(buf, buf, 7, 1, 3, 3, &b) == MAED_INVALID_ARGUMENT, "unknown dtype accepted");
    EXPECT(maed_ref_ds_block(buf, buf, MAED_FLOAT32, 1, 0, 3, &b) == MAED_INVALID_ARGUMENT, "empty image accepted");
}

}  // namespace maed_test
