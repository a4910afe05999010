"""CUDA through cuda-python: the GPU's name, pinned host buffers, device buffers and a stream.

The TensorRT back end moves data with the CUDA runtime API of cuda-python (``cuda-bindings``), not
pycuda: pycuda ships only as source and needs a CUDA toolkit to build, while cuda-python installs
from wheels and imports without a GPU (``docs/engines.md``). cuda-bindings 12.6 and later expose
the runtime as ``cuda.bindings.runtime``; older cuda-python releases as ``cuda.cudart``. Both are
taken. Every call returns ``(error, *values)``; ``_check`` turns an error into a RuntimeError.
"""

from __future__ import annotations

import ctypes
from types import ModuleType

import numpy as np


def import_cudart() -> ModuleType:
    """The CUDA runtime module of cuda-python; ImportError where cuda-python is not installed."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # cuda-python before 12.6
    return runtime


def _check(result: tuple, what: str):
    cudart = import_cudart()
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(error)[1]
        raise RuntimeError(f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def gpu_count() -> tuple[int, str]:
    """CUDA GPUs visible, and why none where there are none (no driver, no device)."""
    cudart = import_cudart()
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(error)[1]
        return 0, name.decode() if isinstance(name, bytes) else str(name)
    return count, "" if count else "no CUDA device"


def gpu_name(device: int = 0) -> str:
    """The GPU's product name, e.g. ``NVIDIA H100 80GB HBM3`` or ``Orin (nvgpu)``."""
    props = _check(import_cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\0").strip()


class Stream:
    """A non-blocking CUDA stream (it does not wait on the legacy default stream)."""

    def __init__(self) -> None:
        cudart = import_cudart()
        self._cudart = cudart
        self.handle = _check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate")

    @property
    def pointer(self) -> int:
        """The stream as the integer TensorRT's ``execute_async_v3`` takes."""
        return int(self.handle)

    def synchronize(self) -> None:
        _check(self._cudart.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            _check(self._cudart.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


class PinnedBuffer:
    """Page-locked host memory seen as a flat float32 array: copies to and from it run at full speed
    and asynchronously (from pageable memory the driver would stage them through its own buffer)."""

    def __init__(self, count: int) -> None:
        self._cudart = import_cudart()
        self.nbytes = count * 4
        self.pointer = int(_check(self._cudart.cudaMallocHost(self.nbytes), "cudaMallocHost"))
        self.array = np.ctypeslib.as_array(ctypes.cast(self.pointer, ctypes.POINTER(ctypes.c_float)), (count,))

    def close(self) -> None:
        if self.pointer:
            self.array = None
            _check(self._cudart.cudaFreeHost(self.pointer), "cudaFreeHost")
            self.pointer = 0


class DeviceBuffer:
    """GPU memory of ``nbytes`` bytes."""

    def __init__(self, nbytes: int) -> None:
        self._cudart = import_cudart()
        self.nbytes = nbytes
        self.pointer = int(_check(self._cudart.cudaMalloc(nbytes), "cudaMalloc"))

    def close(self) -> None:
        if self.pointer:
            _check(self._cudart.cudaFree(self.pointer), "cudaFree")
            self.pointer = 0


def copy_to_device(dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
    cudart = import_cudart()
    kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    _check(cudart.cudaMemcpyAsync(dst.pointer, src.pointer, nbytes, kind, stream.handle), "cudaMemcpyAsync")


def copy_to_host(dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    cudart = import_cudart()
    kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
    _check(cudart.cudaMemcpyAsync(dst.pointer, src.pointer, nbytes, kind, stream.handle), "cudaMemcpyAsync")
