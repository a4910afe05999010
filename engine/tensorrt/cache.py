"""Where TensorRT engines and timing caches live, and when a built engine may be loaded.

A TensorRT engine runs only on the GPU model and TensorRT version that built it, and is only
right for the weights it was built from. Each ``NAME.PRECISION.engine`` therefore has a
``NAME.PRECISION.json`` beside it recording its key: GPU name, TensorRT version, the SHA-256 of the
weights (from the ONNX metadata ``maed.weights_sha256``) and the precision. An engine whose key
differs from the present one is rebuilt, never loaded. The build settings (profiles, workspace,
optimisation level) are recorded beside the key but are not part of it: a rebuild with other
profiles replaces the engine, and any engine of the right key is good to run.

The folder is ``$MAED_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/maed/engines``, else
``~/.cache/maed/engines``. Pure Python (no TensorRT), so the rules are tested anywhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class EngineKey:
    """What must match for a built engine to be loaded."""

    gpu: str
    tensorrt: str
    weights_sha256: str
    precision: str

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose fp16 or fp32")

    def mismatch(self, other: EngineKey) -> str | None:
        """What differs from ``other`` (the engine's), in words; None when they match."""
        for field, mine in asdict(self).items():
            theirs = getattr(other, field)
            if mine != theirs:
                return f"{field} {theirs!r}, here {mine!r}"
        return None


def cache_dir() -> Path:
    """The engine cache folder (not created)."""
    if os.environ.get("MAED_ENGINE_CACHE"):
        return Path(os.environ["MAED_ENGINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "maed" / "engines"


def engine_path(model: str, precision: str, folder: Path | None = None) -> Path:
    """The cached engine of ``model`` (its metadata name) in ``precision``."""
    return (folder or cache_dir()) / f"{model}.{precision}.engine"


def key_path(engine: Path) -> Path:
    """The JSON record beside an engine file."""
    return Path(engine).with_suffix(".json")


def timing_cache_path(gpu: str, tensorrt: str, folder: Path | None = None) -> Path:
    """The timing cache for one GPU model and TensorRT version (TensorRT rejects others')."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", gpu).strip("-").lower()
    return (folder or cache_dir()) / f"timing.{slug}.trt{tensorrt}.cache"


def write_record(engine: Path, key: EngineKey, settings: dict) -> None:
    """Write the engine's JSON record: its key and the settings it was built with."""
    path = key_path(engine)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"key": asdict(key), "settings": settings}, indent=2) + "\n")
    tmp.replace(path)


def read_record(engine: Path) -> tuple[EngineKey, dict] | None:
    """The key and settings recorded beside ``engine``; None when either file is missing or unreadable."""
    path = key_path(engine)
    if not Path(engine).is_file() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return EngineKey(**record["key"]), record.get("settings", {})
    except (ValueError, KeyError, TypeError):  # a truncated or foreign file: rebuild
        return None


def stale_reason(engine: Path, key: EngineKey) -> str | None:
    """Why ``engine`` may not be loaded for ``key``, in words; None when it may."""
    record = read_record(engine)
    if record is None:
        return f"no engine with a readable record at {engine}"
    difference = key.mismatch(record[0])
    return f"{engine} was built for {difference}" if difference else None
