"""Which models a remote ``set_model`` may load: shipped names, and regular files inside the models folder.

A control client must not make the bridge open any file it can name: a FIFO would block the
control thread, ``/dev/zero`` would eat memory, ``../`` would reach outside. So a remote model is
either a shipped name (letters, digits and ``-``, with weights in the package) or a path that,
relative to the models folder (``maed serve --models DIR``) and with every symbolic link resolved,
is a regular file inside that folder with a model suffix. Without a models folder, only shipped
names are taken.
"""

from __future__ import annotations

import re
import stat
from importlib import resources
from pathlib import Path

from maed.zoo import resolve

MODEL_SUFFIXES = (".pt", ".onnx", ".engine")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


def _shipped(name: str) -> bool:
    # Looked up here, not through maed.model.checkpoint, which imports torch.
    weights = resources.files("maed.weights")
    return any(weights.joinpath(f"{resolve(name)}{suffix}").is_file() for suffix in (".pt", ".onnx"))


def regular_file_problem(model: str) -> str | None:
    """Why ``model``, a path to a model file, cannot be loaded: it is not a regular file (a FIFO would
    block whoever opens it, a device never ends); None for a regular file, a missing one (the loader
    says so) or a name (no suffix: the back ends take it for a shipped model)."""
    if not Path(model).suffix:
        return None
    try:
        mode = Path(model).stat().st_mode
    except (OSError, ValueError):  # no such file, or a NUL byte in the path: the loader says what is wrong
        return None
    return None if stat.S_ISREG(mode) else f"model {model[:200]!r} is not a regular file"


def remote_model(model: str, folder: Path | None) -> str:
    """The model to load for a remote ``set_model``: the shipped name, or the checked file's full path.

    Raises ``ValueError`` with a one-line reason for anything else.
    """
    if _NAME.match(model) and _shipped(model):
        return model
    if folder is None:
        raise ValueError(f"no shipped model named {model[:80]!r}; model files need maed serve --models DIR")
    if "\0" in model:
        raise ValueError("model path holds a NUL byte")
    root = folder.resolve()
    candidate = Path(model)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"model {model[:200]!r} is outside the models folder {folder}")
    if path.suffix not in MODEL_SUFFIXES:
        raise ValueError(f"model {model[:200]!r} is not a model file ({', '.join(MODEL_SUFFIXES)})")
    try:
        mode = path.stat().st_mode
    except OSError:
        raise ValueError(f"model {model[:200]!r} does not exist in the models folder {folder}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"model {model[:200]!r} is not a regular file")
    return str(path)
