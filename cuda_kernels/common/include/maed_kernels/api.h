/* C interface of the MAED-CNN kernels: the CUDA launchers (libmaed_kernels) and the host reference
 * (libmaed_kernels_ref). Plain C types only, so that ctypes, the TensorRT plugins and the C++ tests
 * share one declaration; the CUDA stream is passed as void* for the same reason.
 *
 * Tensors are NCHW, contiguous, float32 or float16 (MaedDtype); weights are always float32 with the
 * BatchNorms folded in, in the ONNX/torch layout. Functions return 0 on success, otherwise a
 * cudaError_t value (MAED_INVALID_ARGUMENT for arguments the kernels do not support).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum MaedDtype { MAED_FLOAT32 = 0, MAED_FLOAT16 = 1 };

enum { MAED_MAX_DW_KERNEL = 9 };   /* largest odd depthwise kernel size */
enum { MAED_INVALID_ARGUMENT = 1 }; /* == cudaErrorInvalidValue */

/* DSResidualBlock, BN folded: depthwise (cin, 1, k, k) + dw_bias (cin), pointwise (cout, cin),
 * shortcut (cout, cin) for the projection or NULL for the identity (cin == cout), bias (cout) =
 * pointwise BN bias + projection BN bias. */
typedef struct MaedDsBlock {
    int32_t cin;
    int32_t cout;
    int32_t ksize;
    const float* dw_weight;
    const float* dw_bias;
    const float* pw_weight;
    const float* shortcut_weight;
    const float* bias;
} MaedDsBlock;

/* SEFusion: fc1 (reduced, channels) + bias, ReLU, fc2 (channels, reduced) + bias, sigmoid. */
typedef struct MaedSeFusion {
    int32_t channels;
    int32_t reduced;
    const float* fc1_weight;
    const float* fc1_bias;
    const float* fc2_weight;
    const float* fc2_bias;
} MaedSeFusion;

/* CUDA launchers: every pointer is a device pointer, the work is queued on 'stream'. */
int maed_cuda_ds_block(const void* x, void* y, int dtype, int n, int height, int width, const MaedDsBlock* block,
                       void* stream);
size_t maed_cuda_se_workspace_bytes(int n, int channels, int height, int width);
int maed_cuda_se_fusion(const void* x, void* y, int dtype, int n, int height, int width, const MaedSeFusion* se,
                        void* workspace, void* stream);
const char* maed_cuda_error_string(int status);

/* Host reference: the same arithmetic on host pointers. */
int maed_ref_ds_block(const void* x, void* y, int dtype, int n, int height, int width, const MaedDsBlock* block);
int maed_ref_se_fusion(const void* x, void* y, int dtype, int n, int height, int width, const MaedSeFusion* se);

#ifdef __cplusplus
}
#endif
