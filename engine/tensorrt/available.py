"""Can TensorRT run here? Decided without importing TensorRT, and said in one line where not.

TensorRT needs three things: the ``tensorrt`` Python module (JetPack ships it on a Jetson; a
workstation installs it from NVIDIA), cuda-python for buffers and streams (``maed[tensorrt]``) and
a CUDA GPU. ``--backend tensorrt`` and ``maed engine build`` stop with the reason; ``--backend
auto`` moves on to the next back end.
"""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from types import ModuleType


class TensorRTUnavailable(ValueError):
    """TensorRT, cuda-python or a CUDA GPU is missing; the message says which, in one line."""


@cache
def unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, in one line; None when it can (as far as can be told unloaded)."""
    if find_spec("tensorrt") is None:
        return "TensorRT is not installed: no Python module 'tensorrt' (JetPack ships it; elsewhere pip install tensorrt)"
    from .cuda import gpu_count

    try:
        count, why = gpu_count()
    except ImportError:
        return "TensorRT is not installed: cuda-python is missing (pip install 'maed[tensorrt]')"
    if count == 0:
        return f"TensorRT is not available: no CUDA GPU ({why})"
    return None


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module; TensorRTUnavailable (one line) where it, cuda-python or a GPU is missing."""
    reason = unavailable_reason()
    if reason:
        raise TensorRTUnavailable(reason)
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # the module is there but its libraries (libnvinfer) are not
        raise TensorRTUnavailable(f"TensorRT is not installed: {exc}") from None
    return tensorrt
