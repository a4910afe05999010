// MaedSEFusion plugin and creator (see se_fusion_plugin.h).
#include "se_fusion_plugin.h"

#include <new>

#include "maed_kernels/api.h"

namespace maed::trt {
namespace {

char const* const kInts[] = {"channels", "reduced_channels"};
char const* const kFloats[] = {"fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"};

}  // namespace

SeFusionPlugin* SeFusionPlugin::create(LayerFields fields) {
    int32_t const c = fields.integer("channels");
    int32_t const r = fields.integer("reduced_channels");
    auto size = [&](char const* name) { return fields.floats(name)->size(); };
    bool const ok = c > 0 && r > 0 && size("fc1_weight") == static_cast<size_t>(r) * c &&
                    size("fc1_bias") == static_cast<size_t>(r) && size("fc2_weight") == static_cast<size_t>(c) * r &&
                    size("fc2_bias") == static_cast<size_t>(c);
    if (!ok) {
        log_error(std::string(kName) + ": array sizes disagree with channels and reduced_channels");
        return nullptr;
    }
    return new (std::nothrow) SeFusionPlugin(std::move(fields));
}

nvinfer1::IPluginV3* SeFusionPlugin::clone() noexcept { return new (std::nothrow) SeFusionPlugin(*this); }

int32_t SeFusionPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const*,
                                        int32_t, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                        nvinfer1::IExprBuilder&) noexcept {
    if (nbInputs != 1 || nbOutputs != 1 || inputs[0].nbDims != 4) return -1;
    outputs[0] = inputs[0];
    return 0;
}

int32_t SeFusionPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                        nvinfer1::DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept {
    return checkInput(in, nbInputs, nbOutputs, mFields.integer("channels")) ? 0 : -1;
}

size_t SeFusionPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t,
                                        nvinfer1::DynamicPluginTensorDesc const*, int32_t) const noexcept {
    // The largest plane of the profile has the most pool slices (se_pool_splits grows with it).
    nvinfer1::Dims const& max = inputs[0].max;
    return maed_cuda_se_workspace_bytes(static_cast<int>(max.d[0]), mFields.integer("channels"),
                                        static_cast<int>(max.d[2]), static_cast<int>(max.d[3]));
}

int32_t SeFusionPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const*,
                                void const* const* inputs, void* const* outputs, void* workspace,
                                cudaStream_t stream) noexcept {
    DeviceWeights const* w = deviceWeights();
    if (w == nullptr) return -1;
    MaedSeFusion const se{mFields.integer("channels"), mFields.integer("reduced_channels"), w->at(0), w->at(1), w->at(2),
                          w->at(3)};
    nvinfer1::Dims const& d = inputDesc[0].dims;
    int const status = maed_cuda_se_fusion(inputs[0], outputs[0], toMaedDtype(inputDesc[0].type), static_cast<int>(d.d[0]),
                                           static_cast<int>(d.d[2]), static_cast<int>(d.d[3]), &se, workspace, stream);
    if (status != 0) log_error(std::string(kName) + ": " + maed_cuda_error_string(status));
    return status;
}

std::vector<std::vector<float> const*> SeFusionPlugin::weightArrays() const {
    // The order of MaedSeFusion's pointers.
    return {mFields.floats("fc1_weight"), mFields.floats("fc1_bias"), mFields.floats("fc2_weight"),
            mFields.floats("fc2_bias")};
}

SeFusionPluginCreator::SeFusionPluginCreator() {
    for (char const* name : kInts) mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    for (char const* name : kFloats) mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 0);
    mFieldNames.nbFields = static_cast<int32_t>(mFields.size());
    mFieldNames.fields = mFields.data();
}

nvinfer1::IPluginV3* SeFusionPluginCreator::createPlugin(char const*, nvinfer1::PluginFieldCollection const* fc,
                                                         nvinfer1::TensorRTPhase) noexcept {
    LayerFields fields;
    if (!fields.read(fc, {std::begin(kInts), std::end(kInts)}, {std::begin(kFloats), std::end(kFloats)}, {},
                     SeFusionPlugin::kName)) {
        return nullptr;
    }
    return SeFusionPlugin::create(std::move(fields));
}

}  // namespace maed::trt
