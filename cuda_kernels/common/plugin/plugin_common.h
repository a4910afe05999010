// Machinery shared by the MAED TensorRT plugins: the plugin fields that carry a layer's folded
// weights (from the ONNX node's attributes at build time, from the engine at run time), the
// weights' device copy, error logging, and a base class for plugins with one input and one output
// of the input's type (FP32 or FP16, linear NCHW).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace maed::trt {

constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "";

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept;
void log_error(std::string const& message) noexcept;

// A layer's integers and float arrays by name, readable from and writable as plugin fields.
class LayerFields {
public:
    // Reads 'ints' and 'floats' (all required) and 'optional_floats'; false, logged, when a field is
    // missing or of another type.
    bool read(nvinfer1::PluginFieldCollection const* fc, std::vector<std::string> const& ints,
              std::vector<std::string> const& floats, std::vector<std::string> const& optional_floats, char const* plugin);

    int32_t integer(std::string const& name) const { return mInts.at(name); }
    // nullptr when the (optional) array is absent.
    std::vector<float> const* floats(std::string const& name) const;
    // Views into this object's storage, rebuilt on each call so that a copied object never points
    // into the one it was copied from.
    nvinfer1::PluginFieldCollection const* collection();

private:
    std::map<std::string, int32_t> mInts;
    std::map<std::string, std::vector<float>> mFloats;
    std::vector<nvinfer1::PluginField> mViews;
    nvinfer1::PluginFieldCollection mCollection{};
};

// The float arrays of one layer in one device allocation; shared by a plugin and its clones.
class DeviceWeights {
public:
    // Null entries (an absent identity shortcut) stay null. Returns nullptr, logged, on failure.
    static std::shared_ptr<DeviceWeights> upload(std::vector<std::vector<float> const*> const& arrays);
    ~DeviceWeights();
    DeviceWeights(DeviceWeights const&) = delete;
    DeviceWeights& operator=(DeviceWeights const&) = delete;

    float const* at(size_t i) const { return mArrays[i]; }

private:
    DeviceWeights() = default;
    float* mBase{nullptr};
    std::vector<float const*> mArrays;
};

// One input, one output of the same type and format (what strong typing passes through).
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
public:
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    // The clone for an execution context uploads its weights here, outside any CUDA graph capture.
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override { return mFields.collection(); }

protected:
    explicit PluginBase(LayerFields fields) : mFields(std::move(fields)) {}
    PluginBase(PluginBase const&) = default;

    // The device weights, uploaded on first use (the builder times enqueue without attaching).
    DeviceWeights const* deviceWeights();
    // The layer's float arrays in the order the kernel's layer struct takes them.
    virtual std::vector<std::vector<float> const*> weightArrays() const = 0;
    // Input 0 is 4-D with 'channels' channels (a dynamic -1 passes); false, logged, otherwise.
    bool checkInput(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs, int32_t nbOutputs,
                    int64_t channels) const;

    LayerFields mFields;
    std::shared_ptr<DeviceWeights> mDevice;
};

// MaedDtype of a TensorRT data type; -1 for the types the kernels do not take.
int toMaedDtype(nvinfer1::DataType type) noexcept;

}  // namespace maed::trt
