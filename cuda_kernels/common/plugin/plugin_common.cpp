// Machinery shared by the MAED TensorRT plugins (see plugin_common.h).
#include "plugin_common.h"

#include <cstdio>
#include <cstring>
#include <utility>

#include "maed_kernels/api.h"

namespace maed::trt {
namespace {

nvinfer1::ILoggerFinder* gLoggerFinder = nullptr;

bool readInteger(nvinfer1::PluginField const& f, int32_t& out) {
    if (f.length != 1 || f.data == nullptr) return false;
    if (f.type == nvinfer1::PluginFieldType::kINT32) {
        out = *static_cast<int32_t const*>(f.data);
        return true;
    }
    if (f.type == nvinfer1::PluginFieldType::kINT64) {
        out = static_cast<int32_t>(*static_cast<int64_t const*>(f.data));
        return true;
    }
    return false;
}

}  // namespace

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept { gLoggerFinder = finder; }

void log_error(std::string const& message) noexcept {
    nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr) {
        logger->log(nvinfer1::ILogger::Severity::kERROR, message.c_str());
    } else {
        std::fprintf(stderr, "maed_trt_plugins: %s\n", message.c_str());
    }
}

bool LayerFields::read(nvinfer1::PluginFieldCollection const* fc, std::vector<std::string> const& ints,
                       std::vector<std::string> const& floats, std::vector<std::string> const& optional_floats,
                       char const* plugin) {
    auto find = [&](std::string const& name) -> nvinfer1::PluginField const* {
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
            if (fc->fields[i].name != nullptr && name == fc->fields[i].name) return &fc->fields[i];
        }
        return nullptr;
    };
    for (auto const& name : ints) {
        nvinfer1::PluginField const* f = find(name);
        int32_t value = 0;
        if (f == nullptr || !readInteger(*f, value)) {
            log_error(std::string(plugin) + ": integer field '" + name + "' missing or not a single integer");
            return false;
        }
        mInts[name] = value;
    }
    auto readFloats = [&](std::string const& name, bool required) {
        nvinfer1::PluginField const* f = find(name);
        if (f == nullptr) return !required;
        if (f->type != nvinfer1::PluginFieldType::kFLOAT32 || f->length < 1 || f->data == nullptr) return false;
        auto const* data = static_cast<float const*>(f->data);
        mFloats[name].assign(data, data + f->length);
        return true;
    };
    for (auto const& name : floats) {
        if (!readFloats(name, true)) {
            log_error(std::string(plugin) + ": float32 field '" + name + "' missing or of another type");
            return false;
        }
    }
    for (auto const& name : optional_floats) {
        if (!readFloats(name, false)) {
            log_error(std::string(plugin) + ": field '" + name + "' is not float32");
            return false;
        }
    }
    return true;
}

std::vector<float> const* LayerFields::floats(std::string const& name) const {
    auto it = mFloats.find(name);
    return it == mFloats.end() ? nullptr : &it->second;
}

nvinfer1::PluginFieldCollection const* LayerFields::collection() {
    mViews.clear();
    for (auto const& [name, value] : mInts) {
        mViews.emplace_back(name.c_str(), &value, nvinfer1::PluginFieldType::kINT32, 1);
    }
    for (auto const& [name, values] : mFloats) {
        mViews.emplace_back(name.c_str(), values.data(), nvinfer1::PluginFieldType::kFLOAT32,
                            static_cast<int32_t>(values.size()));
    }
    mCollection.nbFields = static_cast<int32_t>(mViews.size());
    mCollection.fields = mViews.data();
    return &mCollection;
}

std::shared_ptr<DeviceWeights> DeviceWeights::upload(std::vector<std::vector<float> const*> const& arrays) {
    size_t total = 0;
    for (auto const* a : arrays) total += a != nullptr ? a->size() : 0;
    std::shared_ptr<DeviceWeights> weights(new DeviceWeights());
    cudaError_t status = cudaMalloc(reinterpret_cast<void**>(&weights->mBase), total * sizeof(float));
    size_t offset = 0;
    for (auto const* a : arrays) {
        if (a == nullptr) {
            weights->mArrays.push_back(nullptr);
            continue;
        }
        if (status == cudaSuccess) {
            status = cudaMemcpy(weights->mBase + offset, a->data(), a->size() * sizeof(float), cudaMemcpyHostToDevice);
        }
        weights->mArrays.push_back(weights->mBase + offset);
        offset += a->size();
    }
    if (status != cudaSuccess) {
        log_error(std::string("uploading plugin weights failed: ") + cudaGetErrorString(status));
        return nullptr;
    }
    return weights;
}

DeviceWeights::~DeviceWeights() { cudaFree(mBase); }

nvinfer1::IPluginCapability* PluginBase::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept {
    switch (type) {
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    }
    return nullptr;
}

int32_t PluginBase::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                                       nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (nbInputs != 1 || nbOutputs != 1) return -1;
    outputTypes[0] = inputTypes[0];
    return 0;
}

bool PluginBase::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                           int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != 1 || nbOutputs != 1 || pos < 0 || pos > 1) return false;
    nvinfer1::PluginTensorDesc const& d = inOut[pos].desc;
    if (pos == 1) return d.type == inOut[0].desc.type && d.format == inOut[0].desc.format;
    return d.format == nvinfer1::TensorFormat::kLINEAR && toMaedDtype(d.type) >= 0;
}

int32_t PluginBase::onShapeChange(nvinfer1::PluginTensorDesc const*, int32_t nbInputs, nvinfer1::PluginTensorDesc const*,
                                  int32_t nbOutputs) noexcept {
    return nbInputs == 1 && nbOutputs == 1 ? 0 : -1;
}

nvinfer1::IPluginV3* PluginBase::attachToContext(nvinfer1::IPluginResourceContext*) noexcept {
    auto* copy = static_cast<PluginBase*>(clone());
    if (copy != nullptr && copy->deviceWeights() == nullptr) {
        delete copy;
        return nullptr;
    }
    return copy;
}

DeviceWeights const* PluginBase::deviceWeights() {
    if (mDevice == nullptr) mDevice = DeviceWeights::upload(weightArrays());
    return mDevice.get();
}

bool PluginBase::checkInput(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs, int32_t nbOutputs,
                            int64_t channels) const {
    if (nbInputs != 1 || nbOutputs != 1 || in[0].desc.dims.nbDims != 4) {
        log_error(std::string(getPluginName()) + ": expects one NCHW input and one output");
        return false;
    }
    int64_t const c = in[0].desc.dims.d[1];
    if (c != -1 && c != channels) {
        log_error(std::string(getPluginName()) + ": input has " + std::to_string(c) + " channels, the layer " +
                  std::to_string(channels));
        return false;
    }
    return true;
}

int toMaedDtype(nvinfer1::DataType type) noexcept {
    if (type == nvinfer1::DataType::kFLOAT) return MAED_FLOAT32;
    if (type == nvinfer1::DataType::kHALF) return MAED_FLOAT16;
    return -1;
}

}  // namespace maed::trt
