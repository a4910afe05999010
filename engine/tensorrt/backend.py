"""TensorRT back end: runs a built engine on the GPU with ``execute_async_v3`` on a CUDA stream.

Buffers are allocated once, for the largest input any profile accepts: a pinned host buffer and a
device buffer each for the input and the output. One execution context per optimisation profile
(selecting a profile is a per-context setting, and switching one on every call would cost a
re-plan); each call picks the profile tuned nearest to its input size (``choose_profile``), sets
the input shape and runs copy in, inference and copy out on one stream, synchronising once.

``load_tensorrt`` finds the engine of a model in the cache and builds it first where it is missing
or was built for another GPU, TensorRT version, weights or precision (``cache``). One back
end serves one thread at a time, as the bridge's worker and ``maed denoise`` use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from maed.normalise import PLANE_AND_ROWS
from maed.zoo import PRODUCT

from .available import import_tensorrt
from .build import BuildSettings, OnnxSource, build_engine, engine_key, load_plugins, logger
from .cache import engine_path, read_record, stale_reason
from .cuda import DeviceBuffer, PinnedBuffer, Stream, copy_to_device, copy_to_host, gpu_name
from .profiles import Profile, choose_profile, default_profiles


class TensorRTBackend:
    """Runs a TensorRT engine built by ``maed engine build`` (with its JSON record beside it)."""

    def __init__(self, path: str | Path) -> None:
        trt = import_tensorrt()
        path = Path(path)
        record = read_record(path)
        if record is None:
            raise ValueError(f"{path}: not an engine with its .json record; build it with `maed engine build`")
        key, settings = record
        self.model = settings["model"]
        self.size_multiple = int(settings["size_multiple"])
        self.levelling = settings.get("levelling", PLANE_AND_ROWS)
        self.name = f"tensorrt-{key.precision}"
        self.weights_sha256 = key.weights_sha256
        self.adapted_from = settings.get("adapted_from")
        self.path = path

        if settings.get("plugin_ops"):
            load_plugins(trt)
        self._runtime = trt.Runtime(logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ValueError(f"{path}: TensorRT could not load this engine; rebuild it with `maed engine build`")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        modes = {n: self._engine.get_tensor_mode(n) for n in names}
        self._input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        for tensor in (self._input, self._output):
            if self._engine.get_tensor_dtype(tensor) != trt.DataType.FLOAT:
                raise ValueError(f"{path}: tensor {tensor!r} is not float32; export with `maed export onnx`")

        labels = [p["name"] for p in settings.get("profiles", [])]
        self.profiles = []
        for i in range(self._engine.num_optimization_profiles):
            lo, opt, hi = (tuple(dims) for dims in self._engine.get_tensor_profile_shape(self._input, i))
            label = labels[i] if i < len(labels) else f"profile{i}"
            self.profiles.append(Profile(label, lo[2:], opt[2:], hi[2:], max_batch=hi[0]))
        self.passes = int(self._engine.get_tensor_profile_shape(self._input, 0)[0][1])  # every profile has the graph's
        largest = max(p.max_batch * p.max[0] * p.max[1] for p in self.profiles) * self.passes
        self.max_batch = max(p.max_batch for p in self.profiles)

        self._stream = Stream()
        self._host_in, self._host_out = PinnedBuffer(largest), PinnedBuffer(largest)
        self._device_in, self._device_out = DeviceBuffer(largest * 4), DeviceBuffer(largest * 4)
        self._contexts = []
        for i in range(len(self.profiles)):
            context = self._engine.create_execution_context()
            context.set_optimization_profile_async(i, self._stream.pointer)
            context.set_tensor_address(self._input, self._device_in.pointer)
            context.set_tensor_address(self._output, self._device_out.pointer)
            self._contexts.append(context)
        self._stream.synchronize()

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != self.passes:
            raise ValueError(f"expected a batch of shape (N, {self.passes}, H, W), got {batch.shape}")
        n, _, h, w = batch.shape
        m = self.size_multiple
        if h <= 0 or w <= 0 or h % m or w % m:
            raise ValueError(f"H and W must be positive multiples of {m}, got {h}x{w}")
        out = np.empty((n, 1, h, w), dtype=np.float32)
        for start in range(0, n, self.max_batch):
            out[start : start + self.max_batch] = self._run(batch[start : start + self.max_batch])
        return out

    def _run(self, part: np.ndarray) -> np.ndarray:
        n, _, h, w = part.shape
        context = self._contexts[choose_profile(self.profiles, n, h, w)]
        if not context.set_input_shape(self._input, part.shape):
            raise RuntimeError(f"TensorRT refused input shape {part.shape}")
        count = part.size
        self._host_in.array[:count] = part.ravel()
        copy_to_device(self._device_in, self._host_in, count * 4, self._stream)
        if not context.execute_async_v3(self._stream.pointer):
            raise RuntimeError(f"TensorRT could not run the engine on a {part.shape} input")
        out_count = n * h * w  # one frame out for every scan in, whatever its passes
        copy_to_host(self._host_out, self._device_out, out_count * 4, self._stream)
        self._stream.synchronize()
        return self._host_out.array[:out_count].reshape(n, 1, h, w).copy()

    def close(self) -> None:
        """Free the GPU and pinned memory now (contexts before the engine before the runtime)."""
        self._contexts = []
        self._engine = self._runtime = None
        for resource in ("_host_in", "_host_out", "_device_in", "_device_out", "_stream"):
            if hasattr(self, resource):
                getattr(self, resource).close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit CUDA may already be torn down; nothing is left to free
            pass


def _check_engine_file(path: Path) -> None:
    """An engine given by path is loaded only if it was built on this GPU model and TensorRT version."""
    trt = import_tensorrt()
    record = read_record(path)
    if record is None:
        raise ValueError(f"{path}: not an engine with its .json record; build it with `maed engine build`")
    key = record[0]
    here = (gpu_name(), trt.__version__)
    if (key.gpu, key.tensorrt) != here:
        raise ValueError(
            f"{path} was built for {key.gpu} with TensorRT {key.tensorrt}, this is {here[0]} with "
            f"TensorRT {here[1]}; rebuild it with `maed engine build`"
        )


def load_tensorrt(model: str = PRODUCT, precision: str = "fp16") -> TensorRTBackend:
    """The TensorRT back end for a shipped model name, an ``.onnx`` path or an ``.engine`` path.

    A name or ONNX path runs the cached engine, built first (once, minutes) where it is missing or
    stale, with the default profiles. An ``.engine`` path runs that engine as it is.
    """
    trt = import_tensorrt()
    if Path(model).suffix == ".engine":
        _check_engine_file(Path(model))
        return TensorRTBackend(model)
    source = OnnxSource.find(model)
    path = engine_path(source.model, precision)
    reason = stale_reason(path, engine_key(trt, source, precision))
    if reason:
        print(f"maed: building the TensorRT {precision} engine of {source.model} ({reason}); once, this takes minutes", file=sys.stderr)
        build_engine(model, BuildSettings(tuple(default_profiles(source.size_multiple)), precision))
    return TensorRTBackend(path)
