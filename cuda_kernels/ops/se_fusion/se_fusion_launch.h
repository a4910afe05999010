// Launch geometry and argument checks of the SE fusion, shared by the kernels (se_fusion.cu) and
// the host reference (reference.cpp), so that both refuse the same inputs with the same status.
#pragma once

#include "maed_kernels/api.h"
#include "maed_kernels/checks.h"
#include "maed_kernels/launch_config.h"

namespace maed {

// Threads per block of both kernels, and plane elements each scaling block covers.
constexpr int kSeThreads = 256;
constexpr int kSeScaleElems = 4096;

inline bool valid_se_fusion(const void* x, const void* y, int dtype, int n, int height, int width,
                            const MaedSeFusion* s) {
    if (x == nullptr || y == nullptr || s == nullptr || !valid_dtype(dtype)) return false;
    if (n < 1 || height < 1 || width < 1 || s->channels < 1 || s->reduced < 1) return false;
    return s->fc1_weight != nullptr && s->fc1_bias != nullptr && s->fc2_weight != nullptr && s->fc2_bias != nullptr;
}

}  // namespace maed
