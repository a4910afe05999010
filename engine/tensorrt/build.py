"""Build a TensorRT engine from a MAED-CNN ONNX file (``maed engine build``).

FP16 comes from the graph, not from a builder flag: TensorRT 11 has no FP16 flag and only builds
strongly typed networks, whose tensor types are those of the ONNX file, so an FP16 engine is built
from the FP16 ONNX (float32 input and output, float16 inside; ``engine/onnx_fp16.py``). The FP32
ONNX shipped in the package is converted in memory. TensorRT 10.x (10.3 on JetPack 6) builds the
same strongly typed network; only a TensorRT without strong typing falls back to the FP16 builder
flag on the FP32 graph.

Each build reuses and extends a timing cache (the measured speed of each kernel for each layer on
this GPU), so a rebuild with other profiles or settings takes seconds instead of minutes. The
engine is written with its key (``cache``) beside it; a build never leaves half a file where a
back end would load it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from maed.normalise import PLANE_AND_ROWS

from ..onnx_model import (
    KEY_LEVELLING,
    KEY_MODEL,
    KEY_PRECISION,
    KEY_SIZE_MULTIPLE,
    KEY_WEIGHTS_SHA256,
    adapted_from,
    find_onnx,
)
from .available import import_tensorrt
from .cache import PRECISIONS, EngineKey, engine_path, timing_cache_path, write_record
from .cuda import gpu_name
from .profiles import Profile, check_profile

OPT_LEVELS = range(0, 6)  # TensorRT's builder optimisation levels; 3 is its default


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build the engine; the message says why."""


@dataclass(frozen=True)
class BuildSettings:
    """How to build: precision, optimisation profiles, workspace limit and builder optimisation level."""

    profiles: tuple[Profile, ...]
    precision: str = "fp16"
    workspace_mb: int = 1024
    opt_level: int = 3
    timing_cache: Path | None = None
    """None: the per-GPU, per-TensorRT-version cache in the engine cache folder."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose fp16 or fp32")
        if self.workspace_mb < 1:
            raise ValueError(f"workspace must be at least 1 MB, got {self.workspace_mb}")
        if self.opt_level not in OPT_LEVELS:
            raise ValueError(f"builder optimisation level must be 0 to 5, got {self.opt_level}")
        if not self.profiles:
            raise ValueError("an engine needs at least one optimisation profile")
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError(f"profile names must differ, got {names}")


@dataclass(frozen=True)
class OnnxSource:
    """The ONNX file an engine is built from, and what its metadata says."""

    path: Path
    model: str
    size_multiple: int
    precision: str
    weights_sha256: str
    plugin_ops: tuple[str, ...] = ()
    """Op types of custom nodes (``maed export onnx --plugins``): TensorRT plugins of ``cuda_kernels/ops``."""
    levelling: str = PLANE_AND_ROWS
    """The input's levelling (``maed.levelling``), carried into the engine's record."""
    adapted_from: dict | None = None
    """The base model of weights ``maed adapt`` fine-tuned (``maed.engine.onnx_model.adapted_from``), carried into
    the engine's record."""

    @classmethod
    def find(cls, model: str) -> OnnxSource:
        """The ONNX file of a shipped model name or an ``.onnx`` path, with its metadata."""
        import onnx

        path = find_onnx(model)
        if path is None:
            raise ValueError(f"no ONNX file for model {model!r}; write one with `maed export onnx --model {model}`")
        graph = onnx.load(str(path), load_external_data=False)
        meta = {p.key: p.value for p in graph.metadata_props}
        plugin_ops = sorted({n.op_type for n in graph.graph.node if n.domain not in ("", "ai.onnx")})
        missing = [k for k in (KEY_MODEL, KEY_SIZE_MULTIPLE, KEY_WEIGHTS_SHA256) if k not in meta]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} in its metadata; export it with `maed export onnx`")
        return cls(
            path,
            meta[KEY_MODEL],
            int(meta[KEY_SIZE_MULTIPLE]),
            meta.get(KEY_PRECISION, "fp32"),
            meta[KEY_WEIGHTS_SHA256],
            tuple(plugin_ops),
            meta.get(KEY_LEVELLING, PLANE_AND_ROWS),
            adapted_from(meta),
        )


@cache
def logger(trt: ModuleType):
    """One logger for every builder and runtime (TensorRT wants one), printing warnings to stderr."""

    class StderrLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg: str) -> None:
            # stdout is for results (the engine's path); TensorRT's own notes go to stderr
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"maed: tensorrt: {msg}", file=sys.stderr)

    return StderrLogger()


def load_plugins(trt: ModuleType) -> None:
    """Register our kernels' plugin library, which a graph or engine with custom nodes needs first."""
    from .plugins import register_plugins

    try:
        register_plugins(trt)
    except FileNotFoundError as exc:
        raise EngineBuildError(str(exc)) from None


def engine_key(trt: ModuleType, source: OnnxSource, precision: str) -> EngineKey:
    """The key of an engine built here, now, from ``source``."""
    return EngineKey(gpu_name(), trt.__version__, source.weights_sha256, precision)


def strongly_typed_flags(trt: ModuleType) -> int | None:
    """``create_network`` flags of a strongly typed network; None where this TensorRT has none."""
    if int(trt.__version__.split(".")[0]) >= 11:
        return 0  # always strongly typed; the flag is deprecated and ignored
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return None if flag is None else 1 << int(flag)


def _graph_bytes(source: OnnxSource, precision: str, strongly_typed: bool) -> bytes:
    """The ONNX graph to parse: its types are the engine's when the network is strongly typed."""
    if precision == "fp32" and source.precision == "fp16":
        raise ValueError(f"{source.path} is an FP16 graph; an FP32 engine is built from the FP32 ONNX")
    if precision == "fp16" and source.precision == "fp32" and strongly_typed:
        import onnx

        from ..onnx_fp16 import convert_to_fp16

        return convert_to_fp16(onnx.load(str(source.path))).SerializeToString()
    return source.path.read_bytes()


def _write_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(data))
    tmp.replace(path)


def build_engine(model: str, settings: BuildSettings, dest: Path | None = None) -> Path:
    """Build the engine of ``model`` (shipped name or ``.onnx`` path) and write it with its key.

    ``dest`` defaults to the engine cache (``cache.engine_path``), where the TensorRT back
    end looks. Returns the engine's path.
    """
    trt = import_tensorrt()
    source = OnnxSource.find(model)
    for profile in settings.profiles:
        check_profile(profile, source.size_multiple)
    key = engine_key(trt, source, settings.precision)
    dest = Path(dest) if dest else engine_path(source.model, settings.precision)
    dest.parent.mkdir(parents=True, exist_ok=True)

    if source.plugin_ops:
        load_plugins(trt)
    log = logger(trt)
    builder = trt.Builder(log)
    flags = strongly_typed_flags(trt)
    network = builder.create_network(flags or 0)
    parser = trt.OnnxParser(network, log)
    if not parser.parse(_graph_bytes(source, settings.precision, flags is not None)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {source.path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.builder_optimization_level = settings.opt_level
    if settings.precision == "fp16" and flags is None:
        config.set_flag(trt.BuilderFlag.FP16)  # weak typing: only where strong typing does not exist
    input_name = network.get_input(0).name
    passes = int(network.get_input(0).shape[1])  # a two-pass model's input is two channels deep
    for profile in settings.profiles:
        shapes = builder.create_optimization_profile()
        shapes.set_shape(input_name, *profile.shapes(passes))
        config.add_optimization_profile(shapes)

    timing_path = settings.timing_cache or timing_cache_path(key.gpu, key.tensorrt)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    if timing is None or not config.set_timing_cache(timing, ignore_mismatch=False):
        # damaged, or written by another GPU or TensorRT: start afresh rather than mislead the builder
        print(f"maed: warning: timing cache {timing_path} does not fit this GPU or TensorRT; starting a new one", file=sys.stderr)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {source.path}; its messages above say why")
    _write_atomic(dest, serialized)
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(timing_path, config.get_timing_cache().serialize())
    write_record(
        dest,
        key,
        {
            "model": source.model,
            "onnx": str(source.path),
            "size_multiple": source.size_multiple,
            "levelling": source.levelling,
            "adapted_from": source.adapted_from,
            "strongly_typed": flags is not None,
            "plugin_ops": list(source.plugin_ops),
            "profiles": [p.as_dict() for p in settings.profiles],
            "workspace_mb": settings.workspace_mb,
            "opt_level": settings.opt_level,
            "timing_cache": str(timing_path),
        },
    )
    return dest
