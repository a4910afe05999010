// Per-pixel arithmetic of the fused depthwise-separable residual block (MAED-CNN's
// DSResidualBlock with its BatchNorms folded into the convolutions):
//
//   out[co] = relu( bias[co] + sum_ci pw[co, ci] * relu(dw_bias[ci] + dwconv_k(x[ci]))
//                            + sum_ci sc[co, ci] * x[ci]      (projection shortcut)
//                            | x[co]                          (identity shortcut, cin == cout) )
//
// bias is the pointwise BN bias plus the projection BN bias: both are added to the same sum.
// The generic kernel and the host reference run these functions: one thread (one loop step) owns
// one pixel and a tile of TILE output channels and walks the input channels in order, so the
// depthwise result of a channel lives in a register only. The tiled kernel (3x3, 5x5; ds_block.cu)
// stages its data in shared memory but sums every output in this same order.
#pragma once

#include "maed_kernels/numeric.h"

namespace maed {

// Depthwise k x k convolution of one channel plane at (y, x), 'same' zero padding, plus the
// folded BN bias, then ReLU. K > 0 fixes the kernel size at compile time, so that the GPU unrolls
// the taps (the model's 3x3); K == 0 takes it from k. Both sum in the same order.
template <typename T, int K>
MAED_HD float ds_depthwise(const T* plane, int height, int width, int y, int x, const float* w, int k_runtime,
                           float bias) {
    const int k = K > 0 ? K : k_runtime;
    const int r = k / 2;
    float acc = bias;
    MAED_UNROLL
    for (int dy = 0; dy < k; ++dy) {
        const int yy = y + dy - r;
        if (yy < 0 || yy >= height) continue;
        MAED_UNROLL
        for (int dx = 0; dx < k; ++dx) {
            const int xx = x + dx - r;
            if (xx < 0 || xx >= width) continue;
            acc = fmaf(w[dy * k + dx], to_float(plane[static_cast<size_t>(yy) * width + xx]), acc);
        }
    }
    return relu(acc);
}

// Pointwise weights of a range of input channels as seen by one tile of output channels:
// weight (ci, t) is at ci * ci_stride + t * co_stride, relative to the first channel of the
// range. The kernel points into a shared-memory chunk ([ci][TILE]), the host reference into the
// ONNX/torch layout ([cout][cin]). shortcut is null for the identity shortcut.
struct PointwiseView {
    const float* dw;        // [ci][k*k]
    const float* dw_bias;   // [ci]
    const float* pw;
    const float* shortcut;
    int ci_stride;
    int co_stride;
};

// Adds input channels [ci_begin, ci_end) of the image 'img' (NCHW, one batch item) to the
// accumulators of one pixel; 'count' of the TILE accumulators are live output channels.
template <typename T, int TILE, int K>
MAED_HD void ds_accumulate(float (&acc)[TILE], const T* img, int height, int width, int y, int x, int ci_begin,
                           int ci_end, int k, const PointwiseView& v, int count) {
    const size_t plane = static_cast<size_t>(height) * width;
    const size_t pixel = static_cast<size_t>(y) * width + x;
    for (int ci = ci_begin; ci < ci_end; ++ci) {
        const int c = ci - ci_begin;
        const T* src = img + ci * plane;
        const float d = ds_depthwise<T, K>(src, height, width, y, x, v.dw + c * k * k, k, v.dw_bias[c]);
        const float* pw = v.pw + c * v.ci_stride;
        MAED_UNROLL
        for (int t = 0; t < TILE; ++t) {
            if (t < count) acc[t] = fmaf(pw[t * v.co_stride], d, acc[t]);
        }
        if (v.shortcut != nullptr) {
            const float xc = to_float(src[pixel]);
            const float* sc = v.shortcut + c * v.ci_stride;
            MAED_UNROLL
            for (int t = 0; t < TILE; ++t) {
                if (t < count) acc[t] = fmaf(sc[t * v.co_stride], xc, acc[t]);
            }
        }
    }
}

// Writes output channels [co0, co0 + count) of one pixel: identity shortcut, then ReLU.
template <typename T, int TILE>
MAED_HD void ds_store(const float (&acc)[TILE], const T* img, T* out, int height, int width, int y, int x, int co0,
                      int count, bool identity) {
    const size_t plane = static_cast<size_t>(height) * width;
    const size_t pixel = static_cast<size_t>(y) * width + x;
    MAED_UNROLL
    for (int t = 0; t < TILE; ++t) {
        if (t >= count) continue;
        const size_t at = (co0 + t) * plane + pixel;
        const float shortcut = identity ? to_float(img[at]) : 0.0f;
        out[at] = from_float<T>(relu(acc[t] + shortcut));
    }
}

}  // namespace maed
