"""Inference back ends behind one small interface, chosen by name.

A back end takes a batch of normalised scans (N, 1, H, W) float32 whose sides are multiples
of its ``size_multiple`` and returns the denoised batch. Back ends that need heavy
dependencies (torch) import them only when chosen, so the acquisition side stays light.
"""

from __future__ import annotations

from .base import Backend

BACKENDS = ("auto", "torch")


def load_backend(name: str = "auto", model: str = "rt") -> Backend:
    """The back end ``name`` running ``model`` (a shipped model name or a checkpoint path)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    from .torch_backend import TorchBackend

    return TorchBackend(model)


__all__ = ["Backend", "BACKENDS", "load_backend"]
