"""ONNX Runtime's CPU arena gives back what a large input grew it by, so one big run does not hold the
bridge's memory for good (engine/onnx_backend.py, ``ARENA_KEEP_PIXELS``)."""

from pathlib import Path

import numpy as np
import pytest

from maed.engine.onnx_backend import ARENA_KEEP_PIXELS, OnnxBackend
from maed.engine.onnx_model import shipped_onnx


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status here")


def test_a_large_input_leaves_the_arena_as_it_was():
    if not shipped_onnx("rt").is_file():
        pytest.skip("no shipped rt.onnx")
    backend = OnnxBackend(shipped_onnx("rt"), threads=1, device="cpu")
    rng = np.random.default_rng(0)
    backend.denoise(rng.standard_normal((1, 1, 64, 64), dtype=np.float32))
    before = rss_mb()
    large = rng.standard_normal((1, 1, 512, 512), dtype=np.float32)
    assert large.size > ARENA_KEEP_PIXELS
    out = backend.denoise(large)
    assert out.shape == large.shape and np.isfinite(out).all()
    # The arena kept about 400 MB after this input before it gave it back; now a few MB stay (the output).
    assert rss_mb() - before < 150
