"""Models and back ends for the benchmark suites, loaded once per session.

The benchmarks live outside ``testpaths``: ``make test`` never runs them. Run them with
``maed bench`` (which writes ``benchmarks/RESULTS.md``) or ``pytest benchmarks/``.

Latency does not depend on the weights' values, so where the package ships no weights for a
configuration (``paper``, or ``rt`` before it is trained) an untrained model of that configuration
is exported and timed; every result says which weights it ran.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# The bridge's kill benchmarks run ``maed serve`` as the journal and signal tests do: one helper for both.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MIN_ROUNDS, MAX_ROUNDS = 10, 300


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-budget", type=float, default=5.0, help="seconds of timed calls per benchmark (at least 10 rounds, at most 300)"
    )
    parser.addoption("--soak-seconds", type=float, default=600.0, help="length of the bridge's soak benchmark (default: 600)")
    parser.addoption("--flood-seconds", type=float, default=20.0, help="length of the bridge's flood of 1024-pixel lines (default: 20)")


@dataclass(frozen=True)
class Model:
    name: str
    onnx: Path
    checkpoint: Path | None
    """None where torch is not installed (the acquisition side): torch back ends are then skipped."""
    weights: str


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _prepare(name: str, folder: Path) -> Model:
    """``name`` as ONNX (and checkpoint, with torch): the shipped weights where there are some."""
    from maed.engine.onnx_model import shipped_onnx

    if not _torch_available():  # the acquisition side: shipped ONNX files only
        if not shipped_onnx(name).is_file():
            pytest.skip(f"no {name} model: none is shipped and torch is not installed to export one")
        return Model(name, shipped_onnx(name), None, "shipped")
    from maed.export import export_onnx
    from maed.model import build_model
    from maed.model.checkpoint import save_checkpoint, shipped_weights

    checkpoint, onnx_file, weights = shipped_weights(name), shipped_onnx(name), "shipped"
    if not checkpoint.is_file():
        checkpoint, weights = folder / f"{name}.pt", "untrained"
        save_checkpoint(checkpoint, build_model(name), name)
    if weights == "untrained" or not onnx_file.is_file():
        onnx_file = folder / f"{name}.onnx"
        export_onnx(str(checkpoint), onnx_file)
    return Model(name, onnx_file, checkpoint, weights)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """``get(name)``: model ``rt`` or ``paper``, prepared once per session, only when a benchmark asks."""
    prepared: dict[str, Model] = {}
    folder = tmp_path_factory.mktemp("models")

    def get(name: str) -> Model:
        if name not in prepared:
            prepared[name] = _prepare(name, folder)
        return prepared[name]

    return get


def _load(kind: str, model: Model, cache: Path):
    """The back end ``kind`` running ``model``; pytest.skip with the reason where it cannot run here."""
    from maed.engine.onnx_backend import OnnxBackend, cuda_available

    if kind.startswith("onnxruntime"):
        device = kind.split("-")[1]
        if device == "cuda" and not cuda_available():
            pytest.skip("onnxruntime has no CUDA provider here (onnxruntime-gpu is not installed)")
        backend = OnnxBackend(model.onnx, device=device)
        if backend.name != kind:
            pytest.skip(f"ONNX Runtime fell back to {backend.name}")
        return backend
    if kind.startswith("torch"):
        if model.checkpoint is None:
            pytest.skip("torch is not installed")
        import torch

        from maed.engine.torch_backend import TorchBackend

        if kind == "torch-cuda" and not torch.cuda.is_available():
            pytest.skip("torch sees no CUDA GPU")
        return TorchBackend(str(model.checkpoint), device=kind.split("-")[1])
    from maed.engine.tensorrt.available import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from maed.engine.tensorrt.backend import TensorRTBackend
    from maed.engine.tensorrt.build import BuildSettings, OnnxSource, build_engine
    from maed.engine.tensorrt.profiles import default_profiles

    multiple = OnnxSource.find(str(model.onnx)).size_multiple
    settings = BuildSettings(tuple(default_profiles(multiple)), "fp16")
    return TensorRTBackend(build_engine(str(model.onnx), settings, cache / f"{model.name}.fp16.engine"))


@pytest.fixture(scope="session")
def backends(tmp_path_factory):
    """``get(kind, model)``: the back end, loaded once per session."""
    loaded: dict[tuple[str, str], object] = {}
    cache = tmp_path_factory.mktemp("engines")

    def get(kind: str, model: Model):
        if (kind, model.name) not in loaded:
            loaded[kind, model.name] = _load(kind, model, cache)
        return loaded[kind, model.name]

    return get


@pytest.fixture
def measure(benchmark, request):
    """Time ``fn`` with pytest-benchmark: one untimed call (first-call allocations and planning), then
    as many rounds as fit the budget, so slow cases still get enough rounds for a p95."""
    budget = request.config.getoption("--bench-budget")

    def run(fn, setup=None, **info) -> None:
        args = setup() if setup else ()
        fn(*args)
        args = setup() if setup else ()
        start = time.perf_counter()
        fn(*args)
        once = time.perf_counter() - start
        rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, budget / max(once, 1e-6))))
        benchmark.extra_info.update(info)
        if setup:
            benchmark.pedantic(fn, setup=lambda: (setup(), {}), rounds=rounds, iterations=1)
        else:
            benchmark.pedantic(fn, rounds=rounds, iterations=1)

    return run
