"""Saving and loading model weights: training checkpoints and the weights shipped in the package.

A checkpoint is a dict with ``config`` (the architecture: a MAED-CNN configuration or a
baseline, see ``maed.model.ARCHITECTURES``), ``model`` (the state dict) and ``levelling`` (what the
input was levelled with in training, ``maed.normalise``; weights from before it was recorded
say nothing and mean ``plane+rows``), plus whatever training state the trainer adds. Shipped
weights keep only those three and a ``card`` of training facts, in float16 to stay a few MB;
they are loaded as float32.
"""

from __future__ import annotations

import hashlib
import pickle
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from ..normalise import PLANE_AND_ROWS, check_levelling
from ..zoo import TABLE_MODELS, resolve
from .registry import build_model


def save_checkpoint(path: Path, model: torch.nn.Module, config: str, extra: dict | None = None) -> None:
    state = {"config": config, "model": model.state_dict(), **(extra or {})}
    with atomic_path(Path(path)) as tmp:  # never a half-written checkpoint under its name
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path``; a file that is none (damaged, or not torch's) is a one-line ``ValueError``."""
    if Path(path).is_dir():
        raise ValueError(f"{path}: a folder, not a model checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError):  # torch's text is about its own defaults
        if Path(path).suffix.lower() == ".onnx":
            raise ValueError(f"{path}: an ONNX file, not the torch checkpoint this needs (a .pt, or a shipped name)") from None
        raise ValueError(f"{path}: not a model checkpoint that maed can read (damaged, or not a file torch saved)") from None


def shipped_weights(name: str) -> Path:
    """Path of the weights shipped for model ``name`` (or an alias of it) inside the package."""
    return Path(str(resources.files("maed.weights").joinpath(f"{resolve(name)}.pt")))


def shipped_names() -> list[str]:
    """The names of the models whose weights this install ships, by name."""
    return sorted(entry.name[: -len(".pt")] for entry in resources.files("maed.weights").iterdir() if entry.name.endswith(".pt"))


def weights_file(name_or_path: str) -> Path:
    """The weights file behind a shipped name or a checkpoint path."""
    path = Path(name_or_path)
    return path if path.suffix else shipped_weights(name_or_path)


def model_name(name_or_path: str) -> str:
    """The name every output gives a model: a shipped name as given; a checkpoint's stem, or for a run's ``last.pt``
    (``maed train`` names every run's checkpoint so) its run folder's name. Its ONNX export carries the same name, so
    one model reads alike from either file; the file itself is named beside it (``model_file``)."""
    path = Path(name_or_path)
    if not path.suffix:
        return name_or_path
    return path.parent.resolve().name if path.stem == "last" else path.stem


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file: the identity every output names."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ship_weights(checkpoint: Path, dest: Path, card: dict) -> None:
    """Write a training checkpoint's weights as float16 for shipping, with a card of facts and the number of
    processes that trained the checkpoint's last stretch (``maed.training.processes``)."""
    state = load_checkpoint(checkpoint)
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    card = card | {"processes": state.get("processes", 1)}
    torch.save({"config": state["config"], "model": weights, "levelling": levelling(state), "card": card}, dest)


def levelling(state: dict) -> str:
    """The levelling a checkpoint's weights were trained with."""
    return check_levelling(state.get("levelling", PLANE_AND_ROWS))


def _model_state(name_or_path: str) -> dict:
    """The saved state behind a shipped name (``rt``, ``dncnn``) or a checkpoint path, checked to hold a model; every
    problem a one-line ValueError."""
    path = Path(name_or_path)
    if path.is_dir():
        hint = f"; give the one in it, {path / 'last.pt'}" if (path / "last.pt").is_file() else ""
        raise ValueError(f"{path}: a folder, not a model checkpoint{hint}")
    if not path.suffix:
        path = shipped_weights(name_or_path)
        if not path.exists():
            comparison = resolve(name_or_path) in TABLE_MODELS  # shipped by the full wheel
            raise ValueError(
                f"no shipped weights for model {name_or_path!r}"
                + (
                    " in this install: it holds the product's weights alone (a wheel built with MAED_WEIGHTS=product); "
                    "the full wheel ships them"
                    if comparison
                    else "; a file of that name exists, but a model file is told from a model name by its suffix: "
                    "name it .pt (a checkpoint) or .onnx"
                    if Path(name_or_path).is_file()
                    else f"; the shipped models: {', '.join(shipped_names())}, or give a .pt or .onnx file"
                )
            )
    elif not path.exists():
        raise ValueError(f"{path}: no such checkpoint")
    state = load_checkpoint(path)
    if not (isinstance(state, dict) and isinstance(state.get("model"), dict) and "config" in state):
        raise ValueError(f"{path}: a file torch saved, but no model checkpoint (no 'config' and 'model' in it)")
    return state


def _card(state: dict) -> dict:
    """A model state's card, with the ``config`` and ``levelling`` it was trained with."""
    card = dict(state.get("card", {}))
    if "train_config" in state and "train_config" not in card:  # a training checkpoint: its settings and last figures
        card["train_config"] = state["train_config"]
        if state.get("history"):
            card["validation"] = state["history"][-1]
    return {**card, "config": state["config"], "levelling": levelling(state)}


def model_card(name_or_path: str) -> dict:
    """The card of a shipped name or a checkpoint path (``load_model``'s), without building the model."""
    return _card(_model_state(name_or_path))


def load_model(name_or_path: str) -> tuple[nn.Module, dict]:
    """A model in eval mode, from a shipped name (``rt``, ``dncnn``) or a checkpoint path, and its card
    (with the ``config`` and ``levelling`` it was trained with)."""
    state = _model_state(name_or_path)
    model = build_model(state["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    return model.eval(), _card(state)
