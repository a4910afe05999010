"""ctypes bindings of MAED-CNN's own kernels (``cuda_kernels/``): the host reference and the CUDA launchers.

The libraries are found, never built: nothing here runs cmake. ``find_library`` looks in
``$MAED_KERNELS_LIB_DIR`` (a folder holding them), then in the native build folder of a source
checkout (``$MAED_NATIVE_BUILD``, else ``build/native``, where ``make test`` and
``cmake -S . -B build/native && cmake --build build/native`` put them, under ``cuda_kernels/``), then
in ``lib/`` of the Python environment (``cmake --install build/native --prefix <environment>``);
where none has the library it raises ``LibraryNotFound`` with one line saying how to build it. The
weights are the folded (BatchNorm-free) float32 arrays of one layer, in the ONNX/torch layout:
``maed.engine.fold`` makes them from the torch modules, ``maed.engine.ops.rewrite`` from an exported
graph. numpy only: no torch, no CUDA Python.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .ds_block import DSBlockWeights
from .se_fusion import SEWeights

REPO = Path(__file__).resolve().parents[2]
"""The source checkout this module runs from (an installed package has no ``CMakeLists.txt`` there)."""
BUILD_DIR = Path(os.environ.get("MAED_NATIVE_BUILD", REPO / "build" / "native"))
LIB_DIR_VARIABLE = "MAED_KERNELS_LIB_DIR"
_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}  # MaedDtype


class LibraryNotFound(FileNotFoundError):
    """A native library is not built (or not where it is looked for); the message says how to build it."""


def _has_build_folder(build_dir: Path | None) -> bool:
    return build_dir is not None or "MAED_NATIVE_BUILD" in os.environ or (REPO / "CMakeLists.txt").is_file()


def library_candidates(name: str, build_dir: Path | None = None) -> list[Path]:
    """Where ``name`` is looked for, in order: ``$MAED_KERNELS_LIB_DIR``, the build folder, the environment's ``lib/``.

    ``build_dir`` (default ``BUILD_DIR``) counts when given, or when this module runs from a source checkout.
    """
    places = []
    if os.environ.get(LIB_DIR_VARIABLE):
        places.append(Path(os.environ[LIB_DIR_VARIABLE]) / name)
    if _has_build_folder(build_dir):
        places.append(Path(build_dir or BUILD_DIR) / "cuda_kernels" / name)
    places.append(Path(sys.prefix) / "lib" / name)
    return places


def find_library(name: str, target: str, build_dir: Path | None = None, how: str = "") -> Path:
    """The first of ``library_candidates`` that exists; ``LibraryNotFound`` (one line) where none does.

    ``target`` is the CMake target that builds ``name``; ``how`` adds to the configure step (``-DTRT_ROOT=...``).
    """
    places = library_candidates(name, build_dir)
    for path in places:
        if path.is_file():
            return path
    options = f" {how}" if how else ""
    if _has_build_folder(build_dir):
        folder = build_dir or BUILD_DIR
        build = f"`cmake -S {REPO} -B {folder}{options} && cmake --build {folder} --target {target}`"
    else:  # an installed package: build in a checkout, install into this environment
        build = (
            f"`cmake -S . -B build/native{options} && cmake --build build/native && cmake --install build/native "
            f"--prefix {sys.prefix}` in a source checkout"
        )
    looked = ", ".join(str(p.parent) for p in places)
    raise LibraryNotFound(
        f"{name} is not built (looked in {looked}); build it with {build}, or set {LIB_DIR_VARIABLE} to the folder that holds it"
    )


class _DsBlock(ctypes.Structure):
    _fields_ = [
        ("cin", ctypes.c_int32),
        ("cout", ctypes.c_int32),
        ("ksize", ctypes.c_int32),
        ("dw_weight", ctypes.c_void_p),
        ("dw_bias", ctypes.c_void_p),
        ("pw_weight", ctypes.c_void_p),
        ("shortcut_weight", ctypes.c_void_p),
        ("bias", ctypes.c_void_p),
    ]


class _SeFusion(ctypes.Structure):
    _fields_ = [
        ("channels", ctypes.c_int32),
        ("reduced", ctypes.c_int32),
        ("fc1_weight", ctypes.c_void_p),
        ("fc1_bias", ctypes.c_void_p),
        ("fc2_weight", ctypes.c_void_p),
        ("fc2_bias", ctypes.c_void_p),
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
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(layer)]
            fn.restype = ctypes.c_int

    @classmethod
    def load(cls, build_dir: Path | None = None) -> HostReference:
        """Load the host reference where ``find_library`` finds it; ``LibraryNotFound`` where it is not built."""
        return cls(find_library("libmaed_kernels_ref.so", "maed_kernels_ref", build_dir))

    def ds_block(self, x: np.ndarray, w: DSBlockWeights) -> np.ndarray:
        """The fused DS block on a (N, cin, H, W) float32 or float16 array."""
        n, h, wd = _image_shape(x, w.cin, "ds_block input")
        x = np.ascontiguousarray(x)
        y = np.empty((n, w.cout, h, wd), dtype=x.dtype)
        block = _DsBlock(
            w.cin,
            w.cout,
            w.ksize,
            _address(w.dw_weight),
            _address(w.dw_bias),
            _address(w.pw_weight),
            _address(w.shortcut_weight),
            _address(w.bias),
        )
        self._check(self._lib.maed_ref_ds_block(x.ctypes.data, y.ctypes.data, _DTYPES[x.dtype], n, h, wd, block))
        return y

    def se_fusion(self, x: np.ndarray, w: SEWeights) -> np.ndarray:
        """The SE fusion on a (N, C, H, W) float32 or float16 array."""
        n, h, wd = _image_shape(x, w.channels, "se_fusion input")
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        se = _SeFusion(w.channels, w.reduced, _address(w.fc1_weight), _address(w.fc1_bias), _address(w.fc2_weight), _address(w.fc2_bias))
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
    def load(cls, build_dir: Path | None = None) -> CudaKernels:
        """Load the CUDA kernels where ``find_library`` finds them; ``LibraryNotFound`` where they are not built
        (without nvcc CMake builds the host reference only)."""
        return cls(find_library("libmaed_kernels.so", "maed_kernels", build_dir))

    def ds_block(
        self,
        x: int,
        y: int,
        dtype: np.dtype,
        shape: tuple[int, int, int],
        cin: int,
        cout: int,
        ksize: int,
        weights: Sequence[int],
        stream: int = 0,
    ) -> None:
        """Queue the fused DS block: x (N, cin, H, W) -> y (N, cout, H, W); shape is (N, H, W)."""
        block = _DsBlock(cin, cout, ksize, *(a or None for a in weights))
        self._check(self._lib.maed_cuda_ds_block(x, y, _DTYPES[np.dtype(dtype)], *shape, block, stream or None))

    def se_workspace_bytes(self, n: int, channels: int, height: int, width: int) -> int:
        """Device scratch the SE fusion needs for this shape."""
        return self._lib.maed_cuda_se_workspace_bytes(n, channels, height, width)

    def se_fusion(
        self,
        x: int,
        y: int,
        dtype: np.dtype,
        shape: tuple[int, int, int],
        channels: int,
        reduced: int,
        weights: Sequence[int],
        workspace: int,
        stream: int = 0,
    ) -> None:
        """Queue the SE fusion: x -> y, both (N, C, H, W); shape is (N, H, W)."""
        se = _SeFusion(channels, reduced, *weights)
        self._check(self._lib.maed_cuda_se_fusion(x, y, _DTYPES[np.dtype(dtype)], *shape, se, workspace, stream or None))

    def _check(self, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"CUDA kernel launch failed: {self._lib.maed_cuda_error_string(status).decode()}")
