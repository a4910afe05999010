// Launch geometry of the kernels. The host reference walks the same grid (blocks of output
// channels, pixels, channel chunks) so that it sums in the kernels' order.
#pragma once

namespace maed {

// DS block: a block of 32 x 4 pixels, each thread one pixel and kDsCoutTile output channels;
// input channels are staged through shared memory kDsCiChunk at a time.
constexpr int kDsTileX = 32;
constexpr int kDsTileY = 4;
constexpr int kDsCoutTile = 16;
constexpr int kDsCiChunk = 32;

// SE: threads per block of both kernels, and plane elements each scaling block covers.
constexpr int kSeThreads = 256;
constexpr int kSeScaleElems = 4096;

inline int ceil_div(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace maed
