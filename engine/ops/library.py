"""ctypes bindings of MAED-CNN's own kernels (``cuda_kernels/``): the host reference and the CUDA launchers.

The libraries are built by the top-level ``CMakeLists.txt`` into ``build/native`` (or
``$MAED_NATIVE_BUILD``); ``build_native`` configures and builds them on demand, so the tests need
no build step of their own. The weights are the folded (BatchNorm-free) float32 arrays of one
layer, in the ONNX/torch layout: ``maed.engine.fold`` makes them from the torch modules,
``maed.engine.ops.rewrite`` from an exported graph. numpy only: no torch, no CUDA Python.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .ds_block import DSBlockWeights
from .se_fusion import SEWeights

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MAED_NATIVE_BUILD", REPO / "build" / "native"))
_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}  # MaedDtype


class NativeBuildError(RuntimeError):
    """cmake is missing, or configuring or building the native libraries failed."""


def build_native(targets: Sequence[str], build_dir: Path = BUILD_DIR) -> Path:
    """Configure ``build_dir`` (once) and build ``targets``; returns the folder of the kernel libraries.

    Building is incremental, so calling it when everything is up to date costs a second.
    """
    cmake = shutil.which("cmake")
    if cmake is None:
        raise NativeBuildError("cmake not found on PATH")
    steps = [[cmake, "--build", str(build_dir), "--target", *targets, "-j", str(os.cpu_count() or 1)]]
    if not (build_dir / "CMakeCache.txt").exists():
        steps.insert(0, [cmake, "-S", str(REPO), "-B", str(build_dir)])
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise NativeBuildError(f"`{' '.join(step)}` failed:\n{tail}")
    return build_dir / "cuda_kernels"


class _DsBlock(ctypes.Structure):
    _fields_ = [
        ("cin", ctypes.c_int32), ("cout", ctypes.c_int32), ("ksize", ctypes.c_int32),
        ("dw_weight", ctypes.c_void_p), ("dw_bias", ctypes.c_void_p), ("pw_weight", ctypes.c_void_p),
        ("shortcut_weight", ctypes.c_void_p), ("bias", ctypes.c_void_p),
    ]


class _SeFusion(ctypes.Structure):
    _fields_ = [
        ("channels", ctypes.c_int32), ("reduced", ctypes.c_int32),
        ("fc1_weight", ctypes.c_void_p), ("fc1_bias", ctypes.c_void_p),
        ("fc2_weight", ctypes.c_void_p), ("fc2_bias", ctypes.c_void_p),
    ]


def _address(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _image_shape(x: np.ndarray, channels: int, what: str) -> tuple[int, int, int]:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what}: expected (N, {channels}, H, W), got {x.shape}")
    if x.dtype not in _DTYPES:
        raise ValueError(f"{what}: expected float32 or float16, got {x.dtype}")
    return x.shape[0], x.shape[2], x.shape[3]


class HostReference:
    """The host reference (``libmaed_kernels_ref``) on numpy arrays."""

    def __init__(self, library: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        for name, layer in (("maed_ref_ds_block", _DsBlock), ("maed_ref_se_fusion", _SeFusion)):
            fn = getattr(self._lib, name)
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.POINTER(layer)]
            fn.restype = ctypes.c_int

    @classmethod
    def build(cls, build_dir: Path = BUILD_DIR) -> HostReference:
        """Build (if needed) and load the host reference."""
        return cls(build_native(["maed_kernels_ref"], build_dir) / "libmaed_kernels_ref.so")

    def ds_block(self, x: np.ndarray, w: DSBlockWeights) -> np.ndarray:
        """The fused DS block on a (N, cin, H, W) float32 or float16 array."""
        n, h, wd = _image_shape(x, w.cin, "ds_block input")
        x = np.ascontiguousarray(x)
        y = np.empty((n, w.cout, h, wd), dtype=x.dtype)
        block = _DsBlock(w.cin, w.cout, w.ksize, _address(w.dw_weight), _address(w.dw_bias), _address(w.pw_weight),
                         _address(w.shortcut_weight), _address(w.bias))
        self._check(self._lib.maed_ref_ds_block(x.ctypes.data, y.ctypes.data, _DTYPES[x.dtype], n, h, wd, block))
        return y

    def se_fusion(self, x: np.ndarray, w: SEWeights) -> np.ndarray:
        """The SE fusion on a (N, C, H, W) float32 or float16 array."""
        n, h, wd = _image_shape(x, w.channels, "se_fusion input")
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        se = _SeFusion(w.channels, w.reduced, _address(w.fc1_weight), _address(w.fc1_bias), _address(w.fc2_weight),
                       _address(w.fc2_bias))
        self._check(self._lib.maed_ref_se_fusion(x.ctypes.data, y.ctypes.data, _DTYPES[x.dtype], n, h, wd, se))
        return y

    @staticmethod
    def _check(status: int) -> None:
        if status != 0:
            raise ValueError(f"the host reference refused its arguments (status {status})")


class CudaKernels:
    """The CUDA launchers (``libmaed_kernels``) on raw device addresses.

    The caller owns device memory and the stream (torch, cuda-python, a TensorRT back end): every
    address is an int, ``stream`` a ``cudaStream_t`` as int (0: the legacy default stream).
    ``weights`` are the addresses of the layer's arrays in the order of the DSBlockWeights or
    SEWeights fields, 0 for an absent (identity) shortcut.
    """

    def __init__(self, library: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        args = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.maed_cuda_ds_block.argtypes = [*args, ctypes.POINTER(_DsBlock), ctypes.c_void_p]
        self._lib.maed_cuda_se_fusion.argtypes = [*args, ctypes.POINTER(_SeFusion), ctypes.c_void_p, ctypes.c_void_p]
        self._lib.maed_cuda_se_workspace_bytes.argtypes = [ctypes.c_int] * 4
        self._lib.maed_cuda_se_workspace_bytes.restype = ctypes.c_size_t
        self._lib.maed_cuda_error_string.argtypes = [ctypes.c_int]
        self._lib.maed_cuda_error_string.restype = ctypes.c_char_p

    @classmethod
    def build(cls, build_dir: Path = BUILD_DIR) -> CudaKernels:
        """Build (if needed) and load the CUDA kernels."""
        return cls(build_native(["maed_kernels"], build_dir) / "libmaed_kernels.so")

    def ds_block(self, x: int, y: int, dtype: np.dtype, shape: tuple[int, int, int], cin: int, cout: int, ksize: int,
                 weights: Sequence[int], stream: int = 0) -> None:
        """Queue the fused DS block: x (N, cin, H, W) -> y (N, cout, H, W); shape is (N, H, W)."""
        block = _DsBlock(cin, cout, ksize, *(a or None for a in weights))
        self._check(self._lib.maed_cuda_ds_block(x, y, _DTYPES[np.dtype(dtype)], *shape, block, stream or None))

    def se_workspace_bytes(self, n: int, channels: int, height: int, width: int) -> int:
        """Device scratch the SE fusion needs for this shape."""
        return self._lib.maed_cuda_se_workspace_bytes(n, channels, height, width)

    def se_fusion(self, x: int, y: int, dtype: np.dtype, shape: tuple[int, int, int], channels: int, reduced: int,
                  weights: Sequence[int], workspace: int, stream: int = 0) -> None:
        """Queue the SE fusion: x -> y, both (N, C, H, W); shape is (N, H, W)."""
        se = _SeFusion(channels, reduced, *weights)
        self._check(self._lib.maed_cuda_se_fusion(x, y, _DTYPES[np.dtype(dtype)], *shape, se, workspace, stream or None))

    def _check(self, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"CUDA kernel launch failed: {self._lib.maed_cuda_error_string(status).decode()}")
