// Entry points of libmaed_trt_plugins for TensorRT's plugin-library loading
// (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, Python
// trt.get_plugin_registry().load_library): TensorRT asks for the creators and hands over its
// logger finder. Once loaded, the ONNX parser maps a node of op type MaedDSResidualBlock or
// MaedSEFusion to these creators.
#include <NvInferRuntime.h>

#include "ds_block_plugin.h"
#include "se_fusion_plugin.h"

#define MAED_EXPORT extern "C" __attribute__((visibility("default")))

MAED_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) { maed::trt::set_logger_finder(finder); }

MAED_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static maed::trt::DsBlockPluginCreator dsBlock;
    static maed::trt::SeFusionPluginCreator seFusion;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&dsBlock, &seFusion};
    nbCreators = 2;
    return creators;
}
