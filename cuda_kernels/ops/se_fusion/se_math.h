// Per-element arithmetic of the SE fusion (MAED-CNN's SEFusion):
//
//   mean[c] = average of x[c] over H, W
//   hidden[j] = relu(b1[j] + sum_c w1[j, c] * mean[c])          (fc1, C -> Cr)
//   gate[c] = sigmoid(b2[c] + sum_j w2[c, j] * hidden[j])       (fc2, Cr -> C)
//   out[c] = x[c] * gate[c]
//
// The product is rounded like torch's: in FP16 the gate is rounded to half first, as torch's
// sigmoid output is, then multiplied in half precision.
#pragma once

#include "maed_kernels/numeric.h"

namespace maed {

// Partial sums per channel: the pool kernel splits each plane into this many contiguous slices,
// a function of the plane size alone so that the TensorRT plugin can size its workspace from
// shapes. 8192 elements per slice keeps each block busy; 16 slices bound the gate's re-reads.
MAED_HD int se_pool_splits(long long plane) {
    const long long splits = (plane + 8191) / 8192;
    return splits < 1 ? 1 : (splits > 16 ? 16 : static_cast<int>(splits));
}

// Bounds of slice s of a plane of 'plane' elements split in 'splits'.
MAED_HD long long se_slice_begin(long long plane, int splits, int s) { return plane * s / splits; }

// Mean of channel c from its partial sums (summed in slice order, so deterministic).
MAED_HD float se_mean(const float* partial, int splits, long long plane) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += partial[s];
    return sum / static_cast<float>(plane);
}

MAED_HD float se_hidden(const float* mean, const float* w1_row, float b1, int channels) {
    float acc = b1;
    for (int c = 0; c < channels; ++c) acc = fmaf(w1_row[c], mean[c], acc);
    return relu(acc);
}

MAED_HD float se_gate(const float* hidden, const float* w2_row, float b2, int reduced) {
    float acc = b2;
    for (int j = 0; j < reduced; ++j) acc = fmaf(w2_row[j], hidden[j], acc);
    return sigmoid(acc);
}

MAED_HD float se_scale(float x, float gate) { return x * gate; }

MAED_HD __half se_scale(__half x, float gate) {
    // A product of two halves is exact in float, so rounding it once equals __hmul.
    return __float2half_rn(__half2float(x) * __half2float(__float2half_rn(gate)));
}

// Two adjacent pixels of one channel at once; equal to two calls of the scalar version.
MAED_HD __half2 se_scale2(__half2 x, __half2 gate2) {
#if defined(__CUDA_ARCH__)
    return __hmul2(x, gate2);
#else
    return __floats2half2_rn(__low2float(x) * __low2float(gate2), __high2float(x) * __high2float(gate2));
#endif
}

}  // namespace maed
