"""The models of a comparison: which ones ``all`` means, how each is run, its size and CPU latency.

Every model is scored and timed the same way, through ONNX Runtime on the CPU: the shipped
``NAME.onnx`` where the package has one, else an export of the weights made for the run. The
latency is the median wall time of one normalised 256 x 256 frame (batch 1) after warm-up, with
``LATENCY_THREADS`` intra-op threads, the embedded default's setting.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.onnx_backend import OnnxBackend
from ..engine.onnx_model import find_onnx
from ..export import export_onnx
from ..model import count_parameters
from ..model.checkpoint import load_model
from ..zoo import PRODUCT, TABLE_MODELS, display_name

LATENCY_SIZE = 256
LATENCY_THREADS = 2
LATENCY_REPEATS = 10


@dataclass
class Contender:
    """One model of the comparison, ready to run."""

    name: str
    label: str
    backend: OnnxBackend
    parameters: int
    card: dict


def expand_models(models: list[str]) -> list[str]:
    """``all`` stands for the Table 1 line-up (trained alike) followed by the product's weights."""
    names: list[str] = []
    for model in models:
        for name in (*TABLE_MODELS, PRODUCT) if model == "all" else (model,):
            if name not in names:
                names.append(name)
    return names


def _label(name: str, card: dict) -> str:
    if name == PRODUCT:
        steps = card.get("validation", {}).get("step")  # where the run stopped, not where it was meant to
        batch, patch = (card.get("train_config", {}).get(k) for k in ("batch_size", "patch"))
        label = f"{display_name(name)}, product weights"
        return f"{label} ({steps} steps of {batch} x {patch}²)" if steps else label
    if Path(name).suffix:  # a checkpoint: named by its architecture and where it came from
        return f"{display_name(card['config'])} ({name})"
    return display_name(name)


def load_contender(name: str, onnx_dir: Path) -> Contender:
    """Load ``name`` (shipped name or checkpoint path) for scoring; exports it to ``onnx_dir`` if needed."""
    model, card = load_model(name)
    onnx_file = None if Path(name).suffix else find_onnx(name)
    if onnx_file is None:
        onnx_file = Path(onnx_dir) / f"{Path(name).stem}.onnx"
        export_onnx(name, onnx_file)
    backend = OnnxBackend(onnx_file, threads=LATENCY_THREADS, device="cpu")
    return Contender(name, _label(name, card), backend, count_parameters(model), card)


def cpu_latency_ms(backend: OnnxBackend, size: int = LATENCY_SIZE, repeats: int = LATENCY_REPEATS) -> float:
    """Median milliseconds for one ``size`` x ``size`` frame, after two warm-up runs."""
    frame = np.random.default_rng(0).standard_normal((1, 1, size, size)).astype(np.float32)
    for _ in range(2):
        backend.denoise(frame)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.denoise(frame)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
