// Launch geometry and argument checks of the fused DS residual block, shared by the kernel
// (ds_block.cu) and the host reference (reference.cpp): the reference walks the kernel's grid so
// that it sums in the kernel's order, and both refuse the same inputs with the same status.
#pragma once

#include "maed_kernels/api.h"
#include "maed_kernels/checks.h"
#include "maed_kernels/launch_config.h"

namespace maed {

// A block of 32 x 4 pixels, each thread one pixel and kDsCoutTile output channels; input channels
// are staged through shared memory kDsCiChunk at a time.
constexpr int kDsTileX = 32;
constexpr int kDsTileY = 4;
constexpr int kDsCoutTile = 16;
constexpr int kDsCiChunk = 32;

inline bool valid_ds_block(const void* x, const void* y, int dtype, int n, int height, int width,
                           const MaedDsBlock* b) {
    if (x == nullptr || y == nullptr || b == nullptr || !valid_dtype(dtype)) return false;
    if (n < 1 || height < 1 || width < 1 || b->cin < 1 || b->cout < 1) return false;
    if (b->ksize < 1 || b->ksize > MAED_MAX_DW_KERNEL || b->ksize % 2 == 0) return false;
    if (b->dw_weight == nullptr || b->dw_bias == nullptr || b->pw_weight == nullptr || b->bias == nullptr) return false;
    return b->shortcut_weight != nullptr || b->cin == b->cout;
}

}  // namespace maed
