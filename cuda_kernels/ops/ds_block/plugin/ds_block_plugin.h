// MaedDSResidualBlock: MAED-CNN's depthwise-separable residual block as one fused kernel
// (cuda_kernels/ops/ds_block/ds_block.cu). Fields: in_channels, out_channels, kernel_size (int32);
// dw_weight (cin*k*k), dw_bias (cin), pw_weight (cout*cin), bias (cout), and shortcut_weight
// (cout*cin) for a projection shortcut, absent for the identity (float32).
#pragma once

#include "plugin_common.h"

namespace maed::trt {

class DsBlockPlugin final : public PluginBase {
public:
    static constexpr char const* kName = "MaedDSResidualBlock";

    // Checks the sizes of the arrays against the integers; nullptr, logged, when they disagree.
    static DsBlockPlugin* create(LayerFields fields);

    char const* getPluginName() const noexcept override { return kName; }
    nvinfer1::IPluginV3* clone() noexcept override;

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

private:
    using PluginBase::PluginBase;
    std::vector<std::vector<float> const*> weightArrays() const override;
};

class DsBlockPluginCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    DsBlockPluginCreator();
    char const* getPluginName() const noexcept override { return DsBlockPlugin::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldNames; }
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldNames{};
};

}  // namespace maed::trt
