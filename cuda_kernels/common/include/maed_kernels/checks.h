// Argument checks shared by the CUDA launchers and the host reference, so that both refuse the
// same inputs with the same status.
#pragma once

#include "api.h"

namespace maed {

inline bool valid_dtype(int dtype) { return dtype == MAED_FLOAT32 || dtype == MAED_FLOAT16; }

inline bool valid_ds_block(const void* x, const void* y, int dtype, int n, int height, int width,
                           const MaedDsBlock* b) {
    if (x == nullptr || y == nullptr || b == nullptr || !valid_dtype(dtype)) return false;
    if (n < 1 || height < 1 || width < 1 || b->cin < 1 || b->cout < 1) return false;
    if (b->ksize < 1 || b->ksize > MAED_MAX_DW_KERNEL || b->ksize % 2 == 0) return false;
    if (b->dw_weight == nullptr || b->dw_bias == nullptr || b->pw_weight == nullptr || b->bias == nullptr) return false;
    return b->shortcut_weight != nullptr || b->cin == b->cout;
}

inline bool valid_se_fusion(const void* x, const void* y, int dtype, int n, int height, int width,
                            const MaedSeFusion* s) {
    if (x == nullptr || y == nullptr || s == nullptr || !valid_dtype(dtype)) return false;
    if (n < 1 || height < 1 || width < 1 || s->channels < 1 || s->reduced < 1) return false;
    return s->fc1_weight != nullptr && s->fc1_bias != nullptr && s->fc2_weight != nullptr && s->fc2_bias != nullptr;
}

}  // namespace maed
