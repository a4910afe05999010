// Launch geometry shared by the kernels. Each op's own geometry is in its folder
// (ops/<op>/<op>_launch.h); the host reference walks the same grid (blocks of output channels,
// pixels, channel chunks) so that it sums in the kernels' order.
#pragma once

namespace maed {

inline int ceil_div(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace maed
