"""ONNX Runtime back end: the default on the CPU, and on a GPU where the CUDA provider is installed.

It reads everything it needs (model name, size multiple) from the ONNX file's metadata and never
imports torch, so a Jetson or the controller PC runs it with onnxruntime and numpy alone.

Memory: ONNX Runtime keeps what a run allocated in its CPU arena for the next run, which makes
small repeated runs (live bands) fast, but after one large input the arena stays at that input's
peak for good: a 512 x 512 tile of the ``rt`` model leaves it at about 500 MB, and the varied
shapes of a bridge following 1024 x 1024 scans took the process to 1.7 GB. So a run whose input is
larger than ``ARENA_KEEP_PIXELS`` asks the arena to give back, at its end, the memory no tensor uses
any more (``memory.enable_memory_arena_shrinkage``); smaller runs keep it (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from maed.normalise import PLANE_AND_ROWS

from .base import check_threads
from .heap import give_back_free_memory
from .onnx_model import KEY_LEVELLING, KEY_MODEL, KEY_SIZE_MULTIPLE, KEY_WEIGHTS_SHA256, adapted_from

_PROVIDER_NAMES = {"CUDAExecutionProvider": "onnxruntime-cuda", "CPUExecutionProvider": "onnxruntime-cpu"}
ARENA_KEEP_PIXELS = 256 * 256
"""Inputs up to this many pixels (a 256 x 256 frame, its live bands) keep the CPU arena's memory for the
next run; larger ones give back what they grew it by, and the C heap hands it to the system
(``maed.engine.heap``): 30 to 50 % slower a run, measured on a loaded 2-core CPU, where the arena would
otherwise hold 0.5 to 1.5 GB."""


def cuda_available() -> bool:
    """Whether this onnxruntime build has the CUDA provider (it may still fail to start on no GPU)."""
    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxBackend:
    """Runs an exported MAED-CNN ONNX file.

    Args:
        path: The ``.onnx`` file, as written by ``maed export onnx``.
        threads: Intra-op threads on the CPU; None lets onnxruntime use one per physical core.
        spin: Whether those threads spin-wait for the next run (``session.intra_op.allow_spinning``): back-to-back
            runs start sooner, but an idle pool keeps its cores busy; without spinning they sleep and leave the CPU to
            other processes (``maed serve --share-cpu``).
        device: ``"cuda"``, ``"cpu"`` or None for CUDA where the provider is installed, else CPU.
    """

    def __init__(self, path: str | Path, threads: int | None = None, device: str | None = None, spin: bool = True) -> None:
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"unknown device {device!r}; choose cpu or cuda")
        check_threads(threads)
        if device == "cuda" and not cuda_available():
            raise ValueError("this onnxruntime has no CUDA provider; install onnxruntime-gpu")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A missing CUDA library is reported by which provider we end up on, not by a page of warnings.
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device == "cuda" or (device is None and cuda_available()):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own classes for unreadable files
            raise ValueError(f"{path}: not a loadable ONNX model ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [key for key in (KEY_MODEL, KEY_SIZE_MULTIPLE) if key not in meta]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} in its metadata; export it with `maed export onnx`")
        self.path = Path(path)
        """The ONNX file it runs (``<stem>.json`` names it with its own hash)."""
        self.model = meta[KEY_MODEL]
        self.size_multiple = int(meta[KEY_SIZE_MULTIPLE])
        self.metadata = dict(meta)
        self.weights_sha256 = meta.get(KEY_WEIGHTS_SHA256, "unknown")
        self.adapted_from = adapted_from(meta)
        self.levelling = meta.get(KEY_LEVELLING, PLANE_AND_ROWS)
        self.name = _PROVIDER_NAMES[self.session.get_providers()[0]]
        self.max_batch = 1  # on the CPU a batch of 144-pixel tiles ran no faster than one by one; the CUDA provider's is unmeasured
        self._input = self.session.get_inputs()[0].name
        channels = self.session.get_inputs()[0].shape[1]
        self.passes = channels if isinstance(channels, int) else 1
        self._shrink = None
        if self.name == "onnxruntime-cpu":
            self._shrink = ort.RunOptions()
            self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != self.passes:
            raise ValueError(f"expected a batch of shape (N, {self.passes}, H, W), got {batch.shape}")
        h, w = batch.shape[-2:]
        m = self.size_multiple
        if h <= 0 or w <= 0 or h % m or w % m:
            raise ValueError(f"H and W must be positive multiples of {m}, got {h}x{w}")
        large = self._shrink is not None and batch.size > ARENA_KEEP_PIXELS
        output = self.session.run(None, {self._input: batch}, self._shrink if large else None)[0]
        if large:  # what the arena gave back is in the C heap until trimmed (engine/heap.py)
            give_back_free_memory()
        return output
