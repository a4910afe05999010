"""Writing finished scans to disk, so nothing is lost when no one was subscribed.

One folder per scan, named after the scan id: ``raw_trace.npy``, ``raw_retrace.npy``,
``denoised.npy`` (float32, frame orientation, NaN where not scanned) and ``meta.json``. The folder is written under
a temporary name and renamed, so it appears complete or not at all.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def folder_name(scan_id: str) -> str:
    """A file-system-safe folder name for a scan id (which the controller chose freely)."""
    name = _UNSAFE.sub("_", scan_id)[:120].lstrip(".")
    return name or "scan"


def _unused(out: Path, name: str) -> Path:
    path, n = out / name, 1
    while path.exists():
        n += 1
        path = out / f"{name}-{n}"
    return path


def save_scan(out: Path, scan_id: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` (name to frame) and ``meta`` into a new folder under ``out``; return it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dest = _unused(out, folder_name(scan_id))
    tmp = out / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", np.asarray(array, dtype="<f4"))
    # Controllers may add header keys of any msgpack type; those JSON cannot hold are written as text.
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    tmp.rename(dest)
    return dest
