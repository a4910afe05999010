"""The TensorRT plugin library of our kernels (``cuda_kernels/ops/*/plugin``): where it is, how TensorRT loads it.

A network parsed from an ONNX file written with ``maed export onnx --plugins`` needs the library
registered before parsing, and an engine built from it before deserialising: both go through
TensorRT's plugin registry, which calls the library's ``getCreators``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from ..ops.library import BUILD_DIR

LIBRARY_NAME = "libmaed_trt_plugins.so"


def plugin_library(build_dir: Path = BUILD_DIR) -> Path:
    """``$MAED_TRT_PLUGINS``, else the library in the native build folder; explains how to build it when absent."""
    path = Path(os.environ.get("MAED_TRT_PLUGINS", build_dir / "cuda_kernels" / LIBRARY_NAME))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no TensorRT plugin library; build it with "
            f"`cmake -S . -B {build_dir} -DTRT_ROOT=<TensorRT dir> && cmake --build {build_dir} --target maed_trt_plugins`"
        )
    return path


def register_plugins(trt: ModuleType, build_dir: Path = BUILD_DIR) -> Path:
    """Register our plugin creators in ``trt`` (the ``tensorrt`` module)'s global registry; returns the library."""
    path = plugin_library(build_dir)
    trt.get_plugin_registry().load_library(str(path))
    return path
