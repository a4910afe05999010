// Launch geometry and argument checks of the fused DS residual block, shared by the kernel
// (ds_block.cu) and the host reference (reference.cpp): the reference walks the kernel's grid so
// that it sums in the kernel's order, and both refuse the same inputs with the same status.
#pragma once

#include "maed_kernels/api.h"
#include "maed_kernels/checks.h"
#include "maed_kernels/launch_config.h"

namespace maed {

// The generic kernel (kernel sizes other than 3 and 5; ds_block.cu): a block of 32 x 4 pixels, each
// thread one pixel and kDsCoutTile output channels; weights are staged through shared memory
// kDsCiChunk input channels at a time. The host reference sums each output in the order of both
// kernels (ds_block_math.h); it takes kDsCoutTile output channels at a time, which changes no sum.
constexpr int kDsTileX = 32;
constexpr int kDsTileY = 4;
constexpr int kDsCoutTile = 16;
constexpr int kDsCiChunk = 32;

// Which pixel tile the 3x3 / 5x5 kernel uses: kAuto (what maed_cuda_ds_block does) picks the wide
// tile where it gives at least two blocks per SM, else the narrow one; the C++ GPU test forces each
// on every shape so that both are checked whatever the GPU's SM count.
enum class DsTiling { kAuto, kWide, kNarrow };

// maed_cuda_ds_block with the tile chosen (ds_block.cu, in libmaed_kernels).
int ds_block_launch(const void* x, void* y, int dtype, int n, int height, int width, const MaedDsBlock* block,
                    void* stream, DsTiling tiling);

inline bool valid_ds_block(const void* x, const void* y, int dtype, int n, int height, int width,
                           const MaedDsBlock* b) {
    if (x == nullptr || y == nullptr || b == nullptr || !valid_dtype(dtype)) return false;
    if (n < 1 || height < 1 || width < 1 || b->cin < 1 || b->cout < 1) return false;
    if (b->ksize < 1 || b->ksize > MAED_MAX_DW_KERNEL || b->ksize % 2 == 0) return false;
    if (b->dw_weight == nullptr || b->dw_bias == nullptr || b->pw_weight == nullptr || b->bias == nullptr) return false;
    return b->shortcut_weight != nullptr || b->cin == b->cout;
}

}  // namespace maed
