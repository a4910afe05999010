"""The TensorRT plugin library of our kernels (``cuda_kernels/ops/*/plugin``): where it is, how TensorRT loads it.

A network parsed from an ONNX file written with ``maed export onnx --plugins`` needs the library
registered before parsing, and an engine built from it before deserialising: both go through
TensorRT's plugin registry, which calls the library's ``getCreators``. The library is found, never
built: ``$MAED_TRT_PLUGINS`` (the file), else where ``maed.engine.ops.library.find_library`` finds the
kernels' libraries.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from ..ops.library import find_library

LIBRARY_NAME = "libmaed_trt_plugins.so"


def plugin_library(build_dir: Path | None = None) -> Path:
    """``$MAED_TRT_PLUGINS``, else the library where the kernels' libraries are looked for (the native build
    folder first); ``FileNotFoundError`` (one line) explaining how to build it when absent."""
    if "MAED_TRT_PLUGINS" in os.environ:
        path = Path(os.environ["MAED_TRT_PLUGINS"])
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} ($MAED_TRT_PLUGINS): no TensorRT plugin library there; build it with `cmake -S . "
                "-B build/native -DTRT_ROOT=<TensorRT dir> && cmake --build build/native --target maed_trt_plugins`"
            )
        return path
    return find_library(LIBRARY_NAME, "maed_trt_plugins", build_dir, how="-DTRT_ROOT=<TensorRT dir>")


def register_plugins(trt: ModuleType, build_dir: Path | None = None) -> Path:
    """Register our plugin creators in ``trt`` (the ``tensorrt`` module)'s global registry; returns the library."""
    path = plugin_library(build_dir)
    trt.get_plugin_registry().load_library(str(path))
    return path
