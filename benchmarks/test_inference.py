"""Inference latency per back end present: one band update and full frames, ``rt`` and ``paper``.

- ``band``: the network on one streaming band, 32 new rows plus the ``CONTEXT_ROWS`` rows of
  context the streaming denoiser re-runs above them (its halo and refine rows), across a 256-wide
  scan, rounded up to the model's size multiple;
- ``frame``: the network on one full frame, 128x128, 256x256 and 512x512;
- ``update``: one whole streaming update as the bridge runs it (``StreamingDenoiser.update``:
  levelling, normalisation, the network on the band, pasting), 32 new rows of a 512x256 scan
  (512 rows of 256 samples) once a full band of context is in.

Back ends absent here are skipped with the reason.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from maed.engine.tensorrt.profiles import CONTEXT_ROWS
from maed.zoo import PRODUCT

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "torch-cpu", "torch-cuda", "tensorrt-fp16")
MODELS = (PRODUCT, "paper")
BAND_ROWS, WIDTH = 32, 256
FRAMES = (128, 256, 512)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _input(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 1, h, w)).astype(np.float32)


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("name", MODELS)
def test_band(measure, backends, models, name, kind):
    model = models(name)
    backend = backends(kind, model)
    h = _round_up(BAND_ROWS + CONTEXT_ROWS, backend.size_multiple)
    x = _input(h, WIDTH)
    measure(lambda: backend.denoise(x), backend=backend.name, model=name, weights=model.weights, case=f"band {h}x{WIDTH}")


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("size", FRAMES)
@pytest.mark.parametrize("name", MODELS)
def test_frame(measure, backends, models, name, size, kind):
    model = models(name)
    backend = backends(kind, model)
    x = _input(size, size)
    measure(lambda: backend.denoise(x), backend=backend.name, model=name, weights=model.weights, case=f"frame {size}x{size}")


@pytest.mark.parametrize("kind", BACKENDS)
def test_streaming_update(measure, backends, models, kind):
    from maed.bridge.streaming import StreamingDenoiser
    from maed.data import make_pair

    model = models(PRODUCT)
    backend = backends(kind, model)
    rows = 2 * WIDTH
    raw = np.vstack([make_pair(123_456 + k, WIDTH).noisy for k in range(2)]).astype(np.float32)
    # A full band of context in, and past the rows over which levelling is still refitted
    done = CONTEXT_ROWS + BAND_ROWS
    primed = StreamingDenoiser(rows, WIDTH, "down")
    primed.update(np.where(np.arange(rows)[:, None] < done, raw, np.nan), done, backend)
    frame = np.where(np.arange(rows)[:, None] < done + BAND_ROWS, raw, np.nan)

    def update(state: StreamingDenoiser) -> None:
        state.update(frame, done + BAND_ROWS, backend)

    measure(
        update,
        setup=lambda: (copy.deepcopy(primed),),
        backend=backend.name,
        model=PRODUCT,
        weights=model.weights,
        case=f"update {BAND_ROWS} rows x {WIDTH}",
    )
