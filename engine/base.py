"""The interface every inference back end implements."""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

THREADS_PER_CORE = 4
"""The most CPU threads a back end may be given per logical core: more only queue for the cores (100 000 took 3 GB and
denoised nothing in a minute)."""


def check_threads(threads: int | None) -> None:
    """A one-line ``ValueError`` unless ``threads`` (None: the runtime's default) is 1 to ``THREADS_PER_CORE`` per core."""
    most = THREADS_PER_CORE * (os.cpu_count() or 1)
    if threads is not None and not 1 <= threads <= most:
        raise ValueError(f"threads must be 1 to {most} ({THREADS_PER_CORE} per core of this machine), got {threads}")


class Backend(Protocol):
    name: str
    """Short back-end name reported to users and in frame headers (``torch``, ``onnx``...)."""
    model: str
    """Name of the model it runs."""
    size_multiple: int
    """Input height and width must be multiples of this."""
    weights_sha256: str
    """SHA-256 of the weights file the model was built from, so every output can name its weights."""
    adapted_from: dict | None
    """For weights ``maed adapt`` fine-tuned: the base model they came from (its name, configuration, weights' SHA-256
    and levelling), as the adapted checkpoint's card records it; None for weights trained whole."""
    passes: int
    """Images of one scan the model takes, stacked as the input's channels: 1 (one pass), or 2 (the trace and the
    retrace registered onto it: ``maed denoise --pass both``)."""
    max_batch: int
    """Tiles of one shape worth sending in one ``denoise`` call (``maed.denoise.run_tiled``): 1 on the CPU, where a
    batch ran no faster than its tiles one by one (measured) and grew ONNX Runtime's arena; a TensorRT engine's
    largest batch. A back end that does not say takes one tile a call."""

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        """Denoise a (N, passes, H, W) float32 batch of normalised scans into (N, 1, H, W)."""
        ...
