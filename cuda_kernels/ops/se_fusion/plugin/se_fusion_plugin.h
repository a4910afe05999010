// MaedSEFusion: MAED-CNN's SE fusion (global average pool, fc1 + ReLU, fc2 + sigmoid, channel
// scaling) as two kernels (cuda_kernels/ops/se_fusion/se_fusion.cu). Fields: channels, reduced_channels
// (int32); fc1_weight (reduced*channels), fc1_bias (reduced), fc2_weight (channels*reduced),
// fc2_bias (channels) (float32). Its workspace holds the per-slice channel sums.
#pragma once

#include "plugin_common.h"

namespace maed::trt {

class SeFusionPlugin final : public PluginBase {
public:
    static constexpr char const* kName = "MaedSEFusion";

    // Checks the sizes of the arrays against the integers; nullptr, logged, when they disagree.
    static SeFusionPlugin* create(LayerFields fields);

    char const* getPluginName() const noexcept override { return kName; }
    nvinfer1::IPluginV3* clone() noexcept override;

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

private:
    using PluginBase::PluginBase;
    std::vector<std::vector<float> const*> weightArrays() const override;
};

class SeFusionPluginCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    SeFusionPluginCreator();
    char const* getPluginName() const noexcept override { return SeFusionPlugin::kName; }
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
