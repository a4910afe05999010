// Argument checks shared by the CUDA launchers and the host reference, so that both refuse the
// same inputs with the same status. Each op's own checks are in its folder (ops/<op>/<op>_launch.h).
#pragma once

#include "api.h"

namespace maed {

inline bool valid_dtype(int dtype) { return dtype == MAED_FLOAT32 || dtype == MAED_FLOAT16; }

}  // namespace maed
