"""Where a model's ONNX file lives and the metadata keys it carries.

Shared by the exporter (``maed.export``) and the ONNX Runtime back end. It imports neither torch
nor onnx, so the acquisition side can resolve and describe a model with onnxruntime alone.

An exported file describes itself in the ONNX ``metadata_props`` (string keys and values), so the
runtime needs nothing beside it:

``maed.model``          the model's name (``rt``, or the checkpoint's file stem)
``maed.config``         JSON: the architecture name (MAED-CNN configuration or baseline) and, for
                        MAED-CNN, every field of its ``ModelConfig``
``maed.size_multiple``  input height and width must be multiples of this (decimal)
``maed.precision``      ``fp32`` or ``fp16`` (weights and activations; input and output are float32)
``maed.normalisation``  what the input must be: how ``maed.normalise`` prepares a scan
``maed.levelling``      the levelling that prepares it, by name (``plane+rows`` or ``plane``; files
                        exported before it was recorded lack it and mean ``plane+rows``)
``maed.training_data``  JSON: simulator version, training settings and validation scores, as
                        recorded with the weights (``unrecorded`` where the weights say nothing)
``maed.weights_sha256`` SHA-256 of the weights file it was exported from, to tell a stale export
``maed.exporter``       versions of maed, torch and onnx that wrote it
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from maed.zoo import resolve

KEY_MODEL = "maed.model"
KEY_CONFIG = "maed.config"
KEY_SIZE_MULTIPLE = "maed.size_multiple"
KEY_PRECISION = "maed.precision"
KEY_NORMALISATION = "maed.normalisation"
KEY_LEVELLING = "maed.levelling"
KEY_TRAINING_DATA = "maed.training_data"
KEY_WEIGHTS_SHA256 = "maed.weights_sha256"
KEY_EXPORTER = "maed.exporter"
METADATA_KEYS = (
    KEY_MODEL,
    KEY_CONFIG,
    KEY_SIZE_MULTIPLE,
    KEY_PRECISION,
    KEY_NORMALISATION,
    KEY_LEVELLING,
    KEY_TRAINING_DATA,
    KEY_WEIGHTS_SHA256,
    KEY_EXPORTER,
)


def shipped_onnx(name: str) -> Path:
    """Path of the ONNX model shipped for model ``name`` (or an alias) inside the package (may not exist)."""
    return Path(str(resources.files("maed.weights").joinpath(f"{resolve(name)}.onnx")))


def find_onnx(name_or_path: str) -> Path | None:
    """The ONNX file for a shipped model name or an ``.onnx`` path; None where there is none.

    A name (no suffix) resolves to the package's ``NAME.onnx`` when that was exported; a path with
    another suffix (a ``.pt`` checkpoint) has no ONNX file.
    """
    path = Path(name_or_path)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ValueError(f"{path}: no such ONNX model")
        return path
    if path.suffix:
        return None
    shipped = shipped_onnx(name_or_path)
    return shipped if shipped.is_file() else None


def adapted_from(meta: Mapping[str, str]) -> dict | None:
    """The base model that ``maed adapt`` fine-tuned these weights from, as the ``adapted_from`` of their card in
    ``maed.training_data``; None for weights trained whole (or metadata that cannot be read as JSON)."""
    try:
        training = json.loads(meta.get(KEY_TRAINING_DATA, "{}"))
    except ValueError:
        return None
    base = training.get("adapted_from") if isinstance(training, dict) else None
    return base if isinstance(base, dict) else None
