"""Writing finished scans to disk, so nothing is lost when no one was subscribed.

One folder per scan, named after the scan id: ``raw_trace.npy``, ``raw_retrace.npy``,
``denoised.npy`` (float32, frame orientation, NaN where not scanned) and ``meta.json``. The folder is written under
a temporary name (``.<name>.partial``), synced and renamed, so it appears complete or not at all, and stays
so through a power loss once ``save_scan`` returns. A ``.partial`` folder a crash left is removed at the
next start (``remove_partials``): the scan's journal outlives it and is saved again from there.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
PARTIAL = ".partial"


_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def folder_name(scan_id: str) -> str:
    """A file-system-safe folder name for a scan id (which the controller chose freely), on Windows too: no device
    name (``CON``, ``NUL``...) and no trailing dot."""
    name = _UNSAFE.sub("_", scan_id)[:120].strip(".")
    if name.split(".")[0].upper() in _WINDOWS_DEVICES:
        name = "_" + name
    return name or "scan"


def _unused(out: Path, name: str) -> Path:
    path, n = out / name, 1
    while path.exists():
        n += 1
        path = out / f"{name}-{n}"
    return path


def sync_dir(folder: Path) -> None:
    """fsync a folder, so that the names created or renamed in it survive a power loss. Windows opens no folder as a
    file (NTFS journals its names itself): nothing to do there."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_ready(value: object) -> object:
    """``value`` as strict JSON holds it: every map key a string (as text: a nested map of a controller's extra header
    keys may be keyed by bytes), and a number that is not finite (a controller's NaN angle) null, which every JSON
    reader takes (``NaN`` and ``Infinity`` are not JSON)."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):  # numpy's float32 is no float: written as text "nan" before
        return float(value) if math.isfinite(value) else None
    return value


def _write_synced(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def save_scan(out: Path, scan_id: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` (name to frame) and ``meta`` into a new folder under ``out``; return it.

    On failure (a full disk) the temporary folder is removed and the error raised.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dest = _unused(out, folder_name(scan_id))
    tmp = out / f".{dest.name}{PARTIAL}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, array in arrays.items():
            _write_synced(tmp / f"{name}.npy", lambda f, a=array: np.save(f, np.asarray(a, dtype="<f4")))
        # Controllers may add header keys of any msgpack type; those JSON cannot hold are written as text.
        text = json.dumps(_json_ready(meta), indent=2, default=str, allow_nan=False) + "\n"
        _write_synced(tmp / "meta.json", lambda f: f.write(text.encode()))
        sync_dir(tmp)
        tmp.rename(dest)
        sync_dir(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written folder must not keep the space
        raise
    return dest


def remove_partials(out: Path) -> list[Path]:
    """Remove the ``.<name>.partial`` folders a crash during a save left in ``out``; return them."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [p for p in out.iterdir() if p.name.startswith(".") and p.name.endswith(PARTIAL) and p.is_dir()]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found
