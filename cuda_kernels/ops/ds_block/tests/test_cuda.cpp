// The fused DS block kernel against its host reference, on a GPU, FP32 and FP16, with the output
// poisoned with NaN first. Part of test_cuda_kernels (common/tests/test_cuda_kernels.cpp).
// 3x3 and 5x5 shapes run three times: through maed_cuda_ds_block (the tile it picks for this GPU)
// and with each of the tiled kernel's two tiles forced, so that both are checked on every shape
// whatever the GPU's SM count. x_offset > 0 starts the input that many elements after an aligned
// allocation, so that rows are not aligned although the width is a multiple of 4 (the tiled
// kernel's element-by-element staging instead of its vector loads).
#include <vector>

#include "../ds_block_launch.h"
#include "cuda_test_util.h"
#include "op_tests.h"

namespace maed_test {
namespace {

void check_ds(std::mt19937& rng, int n, int cin, int cout, int h, int w, int k, bool identity, int x_offset = 0) {
    const DsLayer layer(rng, cin, cout, k, identity);
    const MaedDsBlock host_block = layer.view();
    float* dw = upload(layer.dw);
    float* dwb = upload(layer.dw_bias);
    float* pw = upload(layer.pw);
    float* sc = identity ? nullptr : upload(layer.shortcut);
    float* bias = upload(layer.bias);
    const MaedDsBlock dev_block{cin, cout, k, dw, dwb, pw, sc, bias};
    const size_t plane = static_cast<size_t>(h) * w;
    const auto x_data = random_vector(rng, n * cin * plane);
    std::vector<float> x(x_offset, 0.0f);  // x_offset elements, then the input
    x.insert(x.end(), x_data.begin(), x_data.end());
    const size_t out_size = n * cout * plane;

    using maed::DsTiling;
    for (const DsTiling tiling : {DsTiling::kAuto, DsTiling::kWide, DsTiling::kNarrow}) {
        if (tiling != DsTiling::kAuto && k != 3 && k != 5) continue;  // one kernel for the other sizes
        const char* name = tiling == DsTiling::kAuto ? "auto" : tiling == DsTiling::kWide ? "wide" : "narrow";
        auto launch = [&](const void* dx, void* dy, int dtype) {
            return tiling == DsTiling::kAuto ? maed_cuda_ds_block(dx, dy, dtype, n, h, w, &dev_block, nullptr)
                                             : maed::ds_block_launch(dx, dy, dtype, n, h, w, &dev_block, nullptr, tiling);
        };
        const double e32 = device_vs_reference(
            x, out_size, [&](const float* dx, float* dy) { return launch(dx + x_offset, dy, MAED_FLOAT32); },
            [&](const float* hx, float* hy) {
                return maed_ref_ds_block(hx + x_offset, hy, MAED_FLOAT32, n, h, w, &host_block);
            });
        EXPECT(e32 < 1e-6, "ds f32 %s n%d cin%d cout%d %dx%d k%d x+%d: %.2e of range", name, n, cin, cout, h, w, k, x_offset,
               e32);
        const double e16 = device_vs_reference(
            to_half(x), out_size, [&](const __half* dx, __half* dy) { return launch(dx + x_offset, dy, MAED_FLOAT16); },
            [&](const __half* hx, __half* hy) {
                return maed_ref_ds_block(hx + x_offset, hy, MAED_FLOAT16, n, h, w, &host_block);
            });
        EXPECT(e16 < 1e-3, "ds f16 %s n%d cin%d cout%d %dx%d k%d x+%d: %.2e of range", name, n, cin, cout, h, w, k, x_offset,
               e16);
    }
    for (float* p : {dw, dwb, pw, sc, bias}) CUDA_OK(cudaFree(p));
}

}  // namespace

void ds_block_cuda_cases(std::mt19937& rng) {
    check_ds(rng, 2, 5, 5, 7, 9, 3, true);
    check_ds(rng, 1, 6, 19, 13, 1, 5, false);      // one column: three of a 4-pixel group's columns dropped
    check_ds(rng, 3, 33, 17, 5, 33, 7, false);     // generic kernel: two chunks, batch 3
    check_ds(rng, 1, 152, 64, 37, 70, 3, false);   // rt's widest block: 10 chunks of 16 (the last 8)
    check_ds(rng, 1, 16, 16, 256, 255, 3, true);
    // The tiled kernel's edges: 3 chunks (16, 16, 8); cout 70 = 2 wide tiles and 6 outputs of a
    // third (4 narrow and 6); height and width multiples of no tile; width % 4 != 0 (scalar stores).
    check_ds(rng, 1, 40, 70, 45, 67, 3, false);
    check_ds(rng, 2, 24, 32, 20, 64, 3, false);    // width % 4 == 0: vector stores, batch 2
    check_ds(rng, 1, 32, 32, 12, 36, 3, true);     // identity, vector stores, a wide tile with one live group
    check_ds(rng, 1, 40, 40, 1, 1, 3, true);       // one pixel: every tap but the centre from the zero halo
    check_ds(rng, 1, 20, 24, 19, 38, 5, false);    // 5x5: wide chunks of 8 (8, 8, 4), a half-live group
    check_ds(rng, 1, 12, 12, 9, 40, 5, true);      // 5x5 identity, vector stores
    check_ds(rng, 1, 6, 6, 3, 2, 5, false);        // 5x5 kernel larger than the image
    // Vector loads of the staged rows (width % 4 == 0, input aligned): groups past the right edge of
    // the image and left of it, tiles of one group, 4 / 8 / 12 / 44 / 100 wide; partial chunks and
    // channel tiles; the identity shortcut's vector load.
    check_ds(rng, 1, 17, 33, 9, 4, 3, false);      // 4 wide: one group, both neighbours outside
    check_ds(rng, 2, 33, 33, 11, 8, 3, true);      // identity, 3 chunks (16, 16, 1), 3 channel tiles
    check_ds(rng, 1, 18, 40, 10, 12, 5, false);    // 5x5, a wide tile of 3 groups, narrow tiles of 2 and 1
    check_ds(rng, 1, 9, 9, 17, 44, 5, true);       // 5x5 identity, a partial chunk only
    check_ds(rng, 1, 24, 20, 3, 100, 3, false);    // 100 = 3 wide tiles + a group
    check_ds(rng, 1, 4, 6, 1, 4, 3, false);        // one row of one group
    // The same widths with the input one to three elements past an aligned address: element by
    // element staging (and the identity shortcut read element by element) although width % 4 == 0.
    check_ds(rng, 2, 24, 32, 20, 64, 3, false, 1);
    check_ds(rng, 1, 32, 32, 12, 36, 3, true, 2);
    check_ds(rng, 1, 12, 12, 9, 40, 5, true, 3);
    check_ds(rng, 1, 17, 33, 9, 4, 3, false, 1);
    // Odd widths and widths of 2 mod 4 (scalar staging) with a 3x3 and a 5x5.
    check_ds(rng, 1, 19, 17, 8, 6, 3, false);
    check_ds(rng, 1, 16, 16, 7, 7, 5, true);
    check_ds(rng, 1, 21, 21, 4, 10, 3, true);
}

}  // namespace maed_test
