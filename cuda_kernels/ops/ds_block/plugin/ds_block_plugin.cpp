// MaedDSResidualBlock plugin and creator (see ds_block_plugin.h).
#include "ds_block_plugin.h"

#include <new>

#include "maed_kernels/api.h"

namespace maed::trt {
namespace {

char const* const kInts[] = {"in_channels", "out_channels", "kernel_size"};
char const* const kFloats[] = {"dw_weight", "dw_bias", "pw_weight", "bias"};
char const* const kShortcut = "shortcut_weight";

}  // namespace

DsBlockPlugin* DsBlockPlugin::create(LayerFields fields) {
    int32_t const cin = fields.integer("in_channels");
    int32_t const cout = fields.integer("out_channels");
    int32_t const k = fields.integer("kernel_size");
    auto size = [&](char const* name) { return fields.floats(name) ? fields.floats(name)->size() : 0; };
    bool const identity = fields.floats(kShortcut) == nullptr;
    bool const ok = cin > 0 && cout > 0 && k > 0 && k % 2 == 1 && k <= MAED_MAX_DW_KERNEL &&
                    size("dw_weight") == static_cast<size_t>(cin) * k * k && size("dw_bias") == static_cast<size_t>(cin) &&
                    size("pw_weight") == static_cast<size_t>(cout) * cin && size("bias") == static_cast<size_t>(cout) &&
                    (identity ? cin == cout : size(kShortcut) == static_cast<size_t>(cout) * cin);
    if (!ok) {
        log_error(std::string(kName) + ": fields disagree (odd kernel up to 9, array sizes from in/out_channels, "
                                       "identity shortcut only when in_channels == out_channels)");
        return nullptr;
    }
    return new (std::nothrow) DsBlockPlugin(std::move(fields));
}

nvinfer1::IPluginV3* DsBlockPlugin::clone() noexcept { return new (std::nothrow) DsBlockPlugin(*this); }

int32_t DsBlockPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const*,
                                       int32_t, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                       nvinfer1::IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != 1 || nbOutputs != 1 || inputs[0].nbDims != 4) return -1;
    outputs[0] = inputs[0];
    outputs[0].d[1] = exprBuilder.constant(mFields.integer("out_channels"));
    return 0;
}

int32_t DsBlockPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                       nvinfer1::DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept {
    return checkInput(in, nbInputs, nbOutputs, mFields.integer("in_channels")) ? 0 : -1;
}

int32_t DsBlockPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const*,
                               void const* const* inputs, void* const* outputs, void*, cudaStream_t stream) noexcept {
    DeviceWeights const* w = deviceWeights();
    if (w == nullptr) return -1;
    MaedDsBlock const block{mFields.integer("in_channels"), mFields.integer("out_channels"),
                            mFields.integer("kernel_size"), w->at(0), w->at(1), w->at(2), w->at(3), w->at(4)};
    nvinfer1::Dims const& d = inputDesc[0].dims;
    int const status = maed_cuda_ds_block(inputs[0], outputs[0], toMaedDtype(inputDesc[0].type), static_cast<int>(d.d[0]),
                                          static_cast<int>(d.d[2]), static_cast<int>(d.d[3]), &block, stream);
    if (status != 0) log_error(std::string(kName) + ": " + maed_cuda_error_string(status));
    return status;
}

std::vector<std::vector<float> const*> DsBlockPlugin::weightArrays() const {
    // The order of MaedDsBlock's pointers.
    return {mFields.floats("dw_weight"), mFields.floats("dw_bias"), mFields.floats("pw_weight"), mFields.floats(kShortcut),
            mFields.floats("bias")};
}

DsBlockPluginCreator::DsBlockPluginCreator() {
    for (char const* name : kInts) mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    for (char const* name : kFloats) mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 0);
    mFields.emplace_back(kShortcut, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 0);
    mFieldNames.nbFields = static_cast<int32_t>(mFields.size());
    mFieldNames.fields = mFields.data();
}

nvinfer1::IPluginV3* DsBlockPluginCreator::createPlugin(char const*, nvinfer1::PluginFieldCollection const* fc,
                                                        nvinfer1::TensorRTPhase) noexcept {
    LayerFields fields;
    if (!fields.read(fc, {std::begin(kInts), std::end(kInts)}, {std::begin(kFloats), std::end(kFloats)}, {kShortcut},
                     DsBlockPlugin::kName)) {
        return nullptr;
    }
    return DsBlockPlugin::create(std::move(fields));
}

}  // namespace maed::trt
