// Fused depthwise-separable residual block: depthwise k x k + BN + ReLU, 1x1 pointwise + BN,
// shortcut (identity or 1x1 projection + BN), add, ReLU, in one kernel (arithmetic in
// ds_block_math.h).
//
// Two kernels. The tiled kernel (3x3, every block of MAED-CNN, and 5x5) stages a pixel tile of
// the input plus its zero-filled halo in shared memory as float, a chunk of input channels at a
// time (4-element vector loads where rows are aligned, else element by element); the
// block first writes the tile's depthwise outputs to shared memory (each thread a 4 x QH patch,
// so that one row of 12 staged values feeds up to 4 * QH * k FMAs), then each thread multiplies
// them into 4 pixels x CP output channels of accumulators, so that every pointwise weight read
// from shared memory (a broadcast) feeds 4 FMAs and every depthwise value CP. The generic kernel
// (the other kernel sizes) is the first design: one pixel per thread, taps read through L1.
//
// Both sum every output exactly as the host reference does (bias, then input channel by input
// channel the pointwise and then the projection term; the depthwise taps row by row): a
// zero-filled halo tap adds fmaf(w, 0, acc) == acc, so the tiled kernel agrees with the
// reference, which skips those taps, to the last bit.
#include <cuda_runtime.h>

#include <cstdint>

#include "ds_block_launch.h"
#include "ds_block_math.h"
#include "maed_kernels/api.h"

namespace maed {
namespace {

struct DsArgs {
    MaedDsBlock block;
    int height;
    int width;
    int cout_tiles;
    bool vector_store;  // 4 consecutive outputs of a row may be stored as one vector
    bool vector_load;   // 4 consecutive inputs of a row starting at a multiple of 4 may be loaded as one vector
};

// ---------------------------------------------------------------------------------------------
// Generic kernel (k other than 3 and 5).

// Six resident blocks per SM caps the kernel at 85 registers; left free, ptxas takes 72 and still
// spills a word of the accumulators.
template <typename T, int K>
__global__ void __launch_bounds__(kDsTileX * kDsTileY, 6) ds_block_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                                      DsArgs a) {
    __shared__ float s_dw[kDsCiChunk * MAED_MAX_DW_KERNEL * MAED_MAX_DW_KERNEL];
    __shared__ float s_dw_bias[kDsCiChunk];
    __shared__ float s_pw[kDsCiChunk * kDsCoutTile];
    __shared__ float s_sc[kDsCiChunk * kDsCoutTile];

    const MaedDsBlock& b = a.block;
    const int image = blockIdx.z / a.cout_tiles;
    const int co0 = (blockIdx.z % a.cout_tiles) * kDsCoutTile;
    const int count = min(kDsCoutTile, b.cout - co0);
    const int px = blockIdx.x * kDsTileX + threadIdx.x;
    const int py = blockIdx.y * kDsTileY + threadIdx.y;
    const bool inside = px < a.width && py < a.height;
    const size_t plane = static_cast<size_t>(a.height) * a.width;
    const T* img = x + static_cast<size_t>(image) * b.cin * plane;
    const int kk = b.ksize * b.ksize;
    const int tid = threadIdx.y * kDsTileX + threadIdx.x;
    constexpr int kThreads = kDsTileX * kDsTileY;

    float acc[kDsCoutTile];
    MAED_UNROLL
    for (int t = 0; t < kDsCoutTile; ++t) acc[t] = t < count ? b.bias[co0 + t] : 0.0f;

    const PointwiseView view{s_dw, s_dw_bias, s_pw, b.shortcut_weight != nullptr ? s_sc : nullptr, kDsCoutTile, 1};
    for (int ci0 = 0; ci0 < b.cin; ci0 += kDsCiChunk) {
        const int chunk = min(kDsCiChunk, b.cin - ci0);
        __syncthreads();  // the previous chunk's weights are no longer read
        for (int i = tid; i < chunk * kk; i += kThreads) s_dw[i] = b.dw_weight[ci0 * kk + i];
        for (int i = tid; i < chunk; i += kThreads) s_dw_bias[i] = b.dw_bias[ci0 + i];
        for (int i = tid; i < chunk * kDsCoutTile; i += kThreads) {
            const int c = i / kDsCoutTile;
            const int t = i % kDsCoutTile;
            const size_t at = static_cast<size_t>(co0 + t) * b.cin + ci0 + c;
            s_pw[i] = t < count ? b.pw_weight[at] : 0.0f;
            if (b.shortcut_weight != nullptr) s_sc[i] = t < count ? b.shortcut_weight[at] : 0.0f;
        }
        __syncthreads();
        if (inside) ds_accumulate<T, kDsCoutTile, K>(acc, img, a.height, a.width, py, px, ci0, ci0 + chunk, b.ksize, view, count);
    }
    if (inside) {
        T* out = y + static_cast<size_t>(image) * b.cout * plane;
        ds_store<T, kDsCoutTile>(acc, img, out, a.height, a.width, py, px, co0, count, b.shortcut_weight == nullptr);
    }
}

// ---------------------------------------------------------------------------------------------
// Tiled kernel (k = 3, 5).

// A pixel tile of TW x TH and CO output channels per block. Each thread of the pointwise stage owns
// 4 consecutive pixels of a row and CP output channels (4 x CP accumulators); each thread of the
// depthwise stage computes 4 x QH outputs of one channel. TW is a multiple of 4, TH of QH.
// RowPad widens the staged rows so that the depthwise stage's 16-byte loads of a quarter warp fall
// in different banks where a quarter warp spans several rows (the narrow tile).
template <int TW, int TH, int CO, int CP, int QH, int RowPad, int MinBlocksSm90, int MinBlocksSm80>
struct DsTile {
    static constexpr int kW = TW;
    static constexpr int kH = TH;
    static constexpr int kCo = CO;
    static constexpr int kCp = CP;
    static constexpr int kQh = QH;
    static constexpr int kSegs = TW / 4;                     // 4-pixel groups of a row
    static constexpr int kGroups = TH * kSegs;               // 4-pixel groups of the tile
    static constexpr int kThreads = kGroups * (CO / CP);
    static constexpr int kRowStride = TW + 8 + RowPad;       // staged row: x0 - 4 .. x0 + TW + 3
    __host__ __device__ static constexpr int min_blocks(bool hopper) { return hopper ? MinBlocksSm90 : MinBlocksSm80; }
    static_assert(TW % 4 == 0 && TH % QH == 0 && CO % CP == 0 && CP % 4 == 0 && kRowStride % 4 == 0, "tile shape");
};

// Large images: 32 x 8 pixels x 32 outputs, 128 threads of 4 x 16 accumulators (the pointwise
// stage reads 10 16-byte words of shared memory per 128 FMAs). Four blocks per SM on Hopper (the
// shared memory of four tiles fits its 228 KB), which leaves ptxas 128 registers; three before
// Hopper (A100 and Orin fit three tiles, sm_86 / sm_89 two), 168 registers: at 128 sm_86 spills.
using DsWide = DsTile<32, 8, 32, 16, 2, 0, 4, 3>;
// Small images, where the wide tile leaves SMs idle (64x64 gives 32 wide blocks for 152->64):
// 8 x 8 pixels x 16 outputs, 64 threads of 4 x 4 accumulators, 4 to 8 times as many blocks.
using DsNarrow = DsTile<8, 8, 16, 4, 2, 4, 8, 8>;

// Input channels per chunk: 16 where the staged arrays fit the 48 KB of static shared memory, else 8
// (the wide tile with k = 5).
template <int K, typename Tile>
__host__ __device__ constexpr int ds_chunk() {
    constexpr int r = K / 2;
    constexpr int kkp = (K * K + 3) / 4 * 4;
    constexpr int per_channel = (Tile::kH + 2 * r) * Tile::kRowStride + Tile::kH * Tile::kW + 2 * Tile::kCo + kkp + 1;
    return 16 * per_channel * 4 <= 48 * 1024 ? 16 : 8;
}

// One 16-byte shared-memory word (p 16-byte aligned).
__device__ __forceinline__ void load4(const float* p, float* v) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
}

__device__ __forceinline__ void store4(float* p, const float* v) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store4(__half* p, const float* v) {
    const __half2 lo = __floats2half2_rn(v[0], v[1]);
    const __half2 hi = __floats2half2_rn(v[2], v[3]);
    uint2 q;
    q.x = *reinterpret_cast<const unsigned*>(&lo);
    q.y = *reinterpret_cast<const unsigned*>(&hi);
    *reinterpret_cast<uint2*>(p) = q;
}

// Four consecutive elements of a global row as one load: 16 bytes in FP32, 8 in FP16 (p aligned
// to that), and their conversion to float, exact in both.
__device__ __forceinline__ float4 load_vec4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ uint2 load_vec4(const __half* p) { return *reinterpret_cast<const uint2*>(p); }
__device__ __forceinline__ void vec4_to_float(const float4& q, float* v) {
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
}
__device__ __forceinline__ void vec4_to_float(const uint2& q, float* v) {
    const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(&q.x));
    const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(&q.y));
    v[0] = lo.x;
    v[1] = lo.y;
    v[2] = hi.x;
    v[3] = hi.y;
}
template <typename T>
struct Vec4;  // the register type of load_vec4
template <>
struct Vec4<float> {
    using type = float4;
};
template <>
struct Vec4<__half> {
    using type = uint2;
};

// The register bound of a tile for the architecture being compiled (the tile types, and so the
// kernels' names, are the same in the host and device passes).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define MAED_DS_MIN_BLOCKS(Tile) (Tile::min_blocks(false))
#else
#define MAED_DS_MIN_BLOCKS(Tile) (Tile::min_blocks(true))
#endif

template <typename T, int K, typename Tile>
__global__ void __launch_bounds__(Tile::kThreads, MAED_DS_MIN_BLOCKS(Tile))
    ds_block_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, DsArgs a) {
    constexpr int R = K / 2;
    constexpr int TW = Tile::kW;
    constexpr int TH = Tile::kH;
    constexpr int CO = Tile::kCo;
    constexpr int CP = Tile::kCp;
    constexpr int QH = Tile::kQh;
    constexpr int SEGS = Tile::kSegs;
    constexpr int NT = Tile::kThreads;
    constexpr int CC = ds_chunk<K, Tile>();
    constexpr int ROWS = TH + 2 * R;       // staged rows: y0 - R .. y0 + TH + R - 1
    constexpr int RS = Tile::kRowStride;   // staged column p holds x0 - 4 + p
    constexpr int HALO_W = TW + 2 * R;     // columns that are loaded: p = 4 - R .. 4 + TW + R - 1
    constexpr int KK = K * K;
    constexpr int KKP = (KK + 3) / 4 * 4;
    constexpr int kHaloBatch = 8;
    static_assert(R <= 4, "the depthwise stage reads 4 staged columns either side of a 4-pixel group");

    // Column p of a staged row holds x0 - 4 + p, so that the centre pixels of a 4-pixel group start
    // on a 16-byte boundary (the pointwise stage reads them as one word) and the depthwise stage
    // reads the 4 + 2R columns around a group as three aligned words.
    __shared__ __align__(16) float s_in[CC * ROWS * RS];
    __shared__ __align__(16) float s_d[CC * TH * TW];
    __shared__ __align__(16) float s_pw[CC * CO];
    __shared__ __align__(16) float s_sc[CC * CO];
    __shared__ __align__(16) float s_dw[CC * KKP];
    __shared__ float s_dw_bias[CC];

    const MaedDsBlock& b = a.block;
    const int height = a.height;
    const int width = a.width;
    const int image = blockIdx.z / a.cout_tiles;
    const int co0 = (blockIdx.z % a.cout_tiles) * CO;
    const int x0 = blockIdx.x * TW;
    const int y0 = blockIdx.y * TH;
    const size_t plane = static_cast<size_t>(height) * width;
    const T* img = x + static_cast<size_t>(image) * b.cin * plane;
    const bool projection = b.shortcut_weight != nullptr;
    const int tid = threadIdx.x;

    // Pointwise stage: this thread's 4 pixels (row py, columns px .. px + 3 of the tile) and output
    // channels co0 + cb .. co0 + cb + CP - 1. A warp's threads share cb: the weights are broadcast.
    const int group = tid % Tile::kGroups;
    const int cb = (tid / Tile::kGroups) * CP;
    const int py = group / SEGS;
    const int px = (group % SEGS) * 4;

    float acc[4][CP];
    MAED_UNROLL
    for (int j = 0; j < CP; ++j) {
        const int co = co0 + cb + j;
        const float bias = co < b.cout ? b.bias[co] : 0.0f;
        MAED_UNROLL
        for (int p = 0; p < 4; ++p) acc[p][j] = bias;
    }

    // Columns outside the halo are read by the depthwise stage's aligned loads but never summed;
    // zeroed once so that nothing uninitialised is ever read (the element-by-element staging never
    // writes them; the vector staging does, and the row padding of the narrow tile is never read).
    // The loop's first barrier orders this before the first chunk's loads.
    for (int i = tid; i < CC * ROWS * RS; i += NT) s_in[i] = 0.0f;

    for (int ci0 = 0; ci0 < b.cin; ci0 += CC) {
        const int chunk = min(CC, b.cin - ci0);
        __syncthreads();  // the previous chunk's staged arrays are no longer read

        // The tile and its halo, converted to float; taps outside the image are zero ('same'
        // padding), so the depthwise stage needs no bounds checks. Every load of a batch is issued
        // before any of them is converted or stored (a conversion next to its load would wait for
        // it there, one load in flight at a time), so that each thread has a batch in flight.
        if (a.vector_load) {
            // Rows start on a multiple of 4 elements, and so does every 4-element group g of a
            // staged row (columns x0 - 4 + 4g .. + 3, which covers the halo): a group is wholly
            // inside or wholly outside the image, one vector load (16 bytes FP32, 8 FP16) or zeros,
            // one 16-byte store to shared memory. Columns outside the halo are staged too and never
            // summed.
            constexpr int GW = TW / 4 + 2;
            // 4 vector loads in flight per thread (16 registers FP32, 8 FP16): 8 FP16 loads spill the
            // wide tile's 128 registers on sm_90.
            constexpr int kBatch = 4;
            using V = typename Vec4<T>::type;
            const int items = chunk * ROWS * GW;
#pragma unroll 1
            for (int i0 = tid; i0 < items; i0 += kBatch * NT) {
                V q[kBatch];
                MAED_UNROLL
                for (int u = 0; u < kBatch; ++u) {
                    const int i = i0 + u * NT;
                    const int g = i % GW;
                    const int row = (i / GW) % ROWS;
                    const int c = i / (GW * ROWS);
                    const int gy = y0 - R + row;
                    const int gx = x0 - 4 + 4 * g;
                    q[u] = V{};
                    if (i < items && gy >= 0 && gy < height && gx >= 0 && gx < width) {
                        q[u] = load_vec4(img + static_cast<size_t>(ci0 + c) * plane + static_cast<size_t>(gy) * width + gx);
                    }
                }
                MAED_UNROLL
                for (int u = 0; u < kBatch; ++u) {
                    const int i = i0 + u * NT;
                    if (i < items) {
                        float v[4];
                        vec4_to_float(q[u], v);
                        store4(s_in + (i / GW) * RS + 4 * (i % GW), v);
                    }
                }
            }
        } else {
            // Any width and alignment: element by element, the halo's columns only.
            const int halo = chunk * ROWS * HALO_W;
#pragma unroll 1
            for (int i0 = tid; i0 < halo; i0 += kHaloBatch * NT) {
                T v[kHaloBatch];
                MAED_UNROLL
                for (int u = 0; u < kHaloBatch; ++u) {
                    const int i = i0 + u * NT;
                    const int col = i % HALO_W;
                    const int row = (i / HALO_W) % ROWS;
                    const int c = i / (HALO_W * ROWS);
                    const int gy = y0 - R + row;
                    const int gx = x0 - R + col;
                    v[u] = from_float<T>(0.0f);
                    if (i < halo && gy >= 0 && gy < height && gx >= 0 && gx < width) {
                        v[u] = img[static_cast<size_t>(ci0 + c) * plane + static_cast<size_t>(gy) * width + gx];
                    }
                }
                MAED_UNROLL
                for (int u = 0; u < kHaloBatch; ++u) {
                    const int i = i0 + u * NT;
                    if (i < halo) s_in[(i / HALO_W) * RS + 4 - R + i % HALO_W] = to_float(v[u]);
                }
            }
        }
        for (int i = tid; i < chunk * KK; i += NT) s_dw[(i / KK) * KKP + i % KK] = b.dw_weight[ci0 * KK + i];
        for (int i = tid; i < chunk; i += NT) s_dw_bias[i] = b.dw_bias[ci0 + i];
        for (int i = tid; i < chunk * CO; i += NT) {
            const int c = i / CO;
            const int t = i % CO;
            const bool live = co0 + t < b.cout;
            const size_t at = static_cast<size_t>(co0 + t) * b.cin + ci0 + c;
            s_pw[i] = live ? b.pw_weight[at] : 0.0f;
            if (projection) s_sc[i] = live ? b.shortcut_weight[at] : 0.0f;
        }
        __syncthreads();

        // Depthwise stage: outputs (rows qy*QH .. +QH-1, columns seg*4 .. +3) of channel c. Staged
        // row qy*QH + ir feeds output row qy*QH + oq through kernel row dy = ir - oq; taken in
        // increasing ir, each output sums its kernel rows in order, as the reference does.
        constexpr int kItems = (TH / QH) * SEGS;
#pragma unroll 1
        for (int i = tid; i < chunk * kItems; i += NT) {
            const int seg = i % SEGS;
            const int qy = (i / SEGS) % (TH / QH);
            const int c = i / kItems;
            float w[KK];
            MAED_UNROLL
            for (int t = 0; t < KK; ++t) w[t] = s_dw[c * KKP + t];
            float o[QH][4];
            MAED_UNROLL
            for (int oq = 0; oq < QH; ++oq) {
                MAED_UNROLL
                for (int j = 0; j < 4; ++j) o[oq][j] = s_dw_bias[c];
            }
            const float* src = s_in + (c * ROWS + qy * QH) * RS + seg * 4;
            MAED_UNROLL
            for (int ir = 0; ir < QH + K - 1; ++ir) {
                // Columns x0 + seg*4 - 4 .. + 7: output column j's tap dx is v[4 + j + dx - R].
                float v[12];
                load4(src + ir * RS, v);
                load4(src + ir * RS + 4, v + 4);
                load4(src + ir * RS + 8, v + 8);
                MAED_UNROLL
                for (int oq = 0; oq < QH; ++oq) {
                    const int dy = ir - oq;
                    if (dy < 0 || dy >= K) continue;
                    MAED_UNROLL
                    for (int j = 0; j < 4; ++j) {
                        MAED_UNROLL
                        for (int dx = 0; dx < K; ++dx) o[oq][j] = fmaf(w[dy * K + dx], v[4 + j + dx - R], o[oq][j]);
                    }
                }
            }
            MAED_UNROLL
            for (int oq = 0; oq < QH; ++oq) {
                MAED_UNROLL
                for (int j = 0; j < 4; ++j) o[oq][j] = relu(o[oq][j]);
                store4(s_d + (c * TH + qy * QH + oq) * TW + seg * 4, o[oq]);
            }
        }
        __syncthreads();

        // Pointwise stage, channel by channel in order: the pointwise term, then the projection's.
        const float* d_at = s_d + py * TW + px;
        const float* x_at = s_in + (py + R) * RS + px + 4;
#pragma unroll 1
        for (int c = 0; c < chunk; ++c) {
            float d[4];
            float wt[CP];
            load4(d_at + c * TH * TW, d);
            MAED_UNROLL
            for (int j = 0; j < CP; j += 4) load4(s_pw + c * CO + cb + j, wt + j);
            MAED_UNROLL
            for (int j = 0; j < CP; ++j) {
                MAED_UNROLL
                for (int p = 0; p < 4; ++p) acc[p][j] = fmaf(wt[j], d[p], acc[p][j]);
            }
            if (projection) {
                float xc[4];
                load4(x_at + c * ROWS * RS, xc);
                MAED_UNROLL
                for (int j = 0; j < CP; j += 4) load4(s_sc + c * CO + cb + j, wt + j);
                MAED_UNROLL
                for (int j = 0; j < CP; ++j) {
                    MAED_UNROLL
                    for (int p = 0; p < 4; ++p) acc[p][j] = fmaf(wt[j], xc[p], acc[p][j]);
                }
            }
        }
    }

    // Identity shortcut (x[co] at the pixel), ReLU, store; pixels and channels past the edges of
    // the image and of cout were computed from zeros and are dropped here.
    const int gy = y0 + py;
    const int gx = x0 + px;
    if (gy >= height || gx >= width) return;
    T* out = y + static_cast<size_t>(image) * b.cout * plane;
    const bool whole = a.vector_store && gx + 4 <= width;
    MAED_UNROLL
    for (int j = 0; j < CP; ++j) {
        const int co = co0 + cb + j;
        if (co >= b.cout) continue;
        const size_t at = static_cast<size_t>(co) * plane + static_cast<size_t>(gy) * width + gx;
        float shortcut[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (!projection) {
            if (a.vector_load) {  // gx and width multiples of 4: all 4 pixels are inside
                vec4_to_float(load_vec4(img + at), shortcut);
            } else {
                MAED_UNROLL
                for (int p = 0; p < 4; ++p) {
                    if (gx + p < width) shortcut[p] = to_float(img[at + p]);
                }
            }
        }
        float v[4];
        MAED_UNROLL
        for (int p = 0; p < 4; ++p) v[p] = relu(acc[p][j] + shortcut[p]);
        if (whole) {
            store4(out + at, v);
        } else {
            MAED_UNROLL
            for (int p = 0; p < 4; ++p) {
                if (gx + p < width) out[at + p] = from_float<T>(v[p]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Launch.

template <typename T, int K, typename Tile>
void launch_tiled(const T* x, T* y, DsArgs args, int n, cudaStream_t s) {
    args.cout_tiles = ceil_div(args.block.cout, Tile::kCo);
    const dim3 grid(ceil_div(args.width, Tile::kW), ceil_div(args.height, Tile::kH),
                    static_cast<unsigned>(n * args.cout_tiles));
    ds_block_tiled_kernel<T, K, Tile><<<grid, Tile::kThreads, 0, s>>>(x, y, args);
}

template <typename T, int K>
void launch_tiled(const T* x, T* y, const DsArgs& args, int n, bool wide, cudaStream_t s) {
    if (wide) launch_tiled<T, K, DsWide>(x, y, args, n, s);
    else launch_tiled<T, K, DsNarrow>(x, y, args, n, s);
}

template <typename T>
void launch_ds_block(const T* x, T* y, DsArgs args, int n, bool wide, cudaStream_t s) {
    switch (args.block.ksize) {
    case 3: launch_tiled<T, 3>(x, y, args, n, wide, s); break;
    case 5: launch_tiled<T, 5>(x, y, args, n, wide, s); break;
    default: {
        args.cout_tiles = ceil_div(args.block.cout, kDsCoutTile);
        const dim3 grid(ceil_div(args.width, kDsTileX), ceil_div(args.height, kDsTileY),
                        static_cast<unsigned>(n * args.cout_tiles));
        ds_block_kernel<T, 0><<<grid, dim3(kDsTileX, kDsTileY), 0, s>>>(x, y, args);
    }
    }
}

// The wide tile where it gives at least two blocks per SM, else the narrow one.
bool pick_wide(int n, int height, int width, int cout) {
    int device = 0;
    int sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
        return true;  // the launch reports the error
    }
    const long long blocks = static_cast<long long>(ceil_div(width, DsWide::kW)) * ceil_div(height, DsWide::kH) *
                             ceil_div(cout, DsWide::kCo) * n;
    return blocks >= 2LL * sms;
}

}  // namespace

int ds_block_launch(const void* x, void* y, int dtype, int n, int height, int width, const MaedDsBlock* block,
                    void* stream, DsTiling tiling) {
    if (!valid_ds_block(x, y, dtype, n, height, width, block)) return MAED_INVALID_ARGUMENT;
    // CUDA's grid limits for the smallest tiles of any kernel (4 rows, 16 outputs).
    if (static_cast<long long>(n) * ceil_div(block->cout, kDsCoutTile) > 65535 || ceil_div(height, kDsTileY) > 65535) {
        return MAED_INVALID_ARGUMENT;
    }
    const bool wide = tiling == DsTiling::kAuto ? pick_wide(n, height, width, block->cout) : tiling == DsTiling::kWide;
    const size_t align = dtype == MAED_FLOAT32 ? 16 : 8;  // 4 elements
    const bool vector_store = width % 4 == 0 && reinterpret_cast<uintptr_t>(y) % align == 0;
    const bool vector_load = width % 4 == 0 && reinterpret_cast<uintptr_t>(x) % align == 0;
    const DsArgs args{*block, height, width, 0, vector_store, vector_load};
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == MAED_FLOAT32) {
        launch_ds_block(static_cast<const float*>(x), static_cast<float*>(y), args, n, wide, s);
    } else {
        launch_ds_block(static_cast<const __half*>(x), static_cast<__half*>(y), args, n, wide, s);
    }
    return static_cast<int>(cudaGetLastError());
}

}  // namespace maed

extern "C" int maed_cuda_ds_block(const void* x, void* y, int dtype, int n, int height, int width,
                                  const MaedDsBlock* block, void* stream) {
    return maed::ds_block_launch(x, y, dtype, n, height, width, block, stream, maed::DsTiling::kAuto);
}
