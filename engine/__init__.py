"""Inference back ends behind one small interface, chosen by name.

A back end takes a batch of normalised scans (N, passes, H, W) float32 whose sides are multiples
of its ``size_multiple`` (``passes`` 1, or 2 for a two-pass model) and returns the denoised (N, 1, H, W). Back ends that need heavy
dependencies (torch) import them only when chosen, so the acquisition side stays light.
"""

from __future__ import annotations

from maed.zoo import PRODUCT

from .base import Backend, check_threads

BACKENDS = ("auto", "tensorrt", "onnx", "torch")


def load_backend(name: str = "auto", model: str = PRODUCT, threads: int | None = None, spin: bool = True) -> Backend:
    """The back end ``name`` running ``model``: a shipped model name, a checkpoint or an ``.onnx`` path.

    ``auto`` takes TensorRT where it can run here (tensorrt, cuda-python and a GPU) and the model has
    an ONNX file to build from, or is an ``.engine``; then ONNX Runtime (with CUDA where its provider
    is installed, else on the CPU) when the model has an ONNX file (a shipped ``NAME.onnx`` or an
    ``.onnx`` path), and torch otherwise.
    It never imports torch to decide, so the acquisition side runs without it. ``threads`` sets
    the CPU threads (None: the runtime's default, one per physical core); ``spin``: whether ONNX Runtime's CPU
    threads spin-wait between runs (``OnnxBackend``; the other back ends have no such pool).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    check_threads(threads)
    if name == "tensorrt" or (name == "auto" and _tensorrt_first(model)):
        from .tensorrt.backend import load_tensorrt

        return load_tensorrt(model)
    from .onnx_model import find_onnx

    onnx_file = find_onnx(model) if name in ("auto", "onnx") else None
    if onnx_file is not None:
        from .onnx_backend import OnnxBackend

        return OnnxBackend(onnx_file, threads=threads, spin=spin)
    if name == "onnx":
        raise ValueError(f"no ONNX file for model {model!r}; write one with `maed export onnx --model {model}`")
    if model.endswith(".onnx"):
        raise ValueError(f"{model}: the torch back end needs a checkpoint (.pt), not an ONNX file")
    try:
        from .torch_backend import TorchBackend
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"model {model!r} has no ONNX file and the torch back end cannot load ({exc}); install maed[torch] or pass an .onnx model"
        ) from None
    return TorchBackend(model, threads=threads)


def _tensorrt_first(model: str) -> bool:
    """Whether ``auto`` takes TensorRT: always for an ``.engine``, else where it runs and can build."""
    if model.endswith(".engine"):
        return True
    from .onnx_model import find_onnx
    from .tensorrt.available import unavailable_reason

    return unavailable_reason() is None and find_onnx(model) is not None


__all__ = ["Backend", "BACKENDS", "load_backend"]
