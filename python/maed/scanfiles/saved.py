"""A scan the MAED-RT bridge saved (``bridge/store.py``), read as an instrument file of two passes.

The bridge saves each scan to a folder of its own: ``raw_trace.npy`` and ``raw_retrace.npy`` (float32, the frame's
orientation, rows never scanned NaN) and ``meta.json``, whose ``start`` is the scan's ``scan.start`` (channel, unit,
range, slow axis). ``maed denoise`` and ``maed adapt`` take such a folder as one scan, both passes and the physical
range with it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .channel import MAX_PIXELS, ChannelImage, ScanFile, ScanFileError

FORMAT = "maed-bridge"
SAVED_FILES = ("meta.json", "raw_trace.npy", "raw_retrace.npy")
"""What a folder the bridge saved a scan to holds."""
MAX_META_BYTES = 16 << 20
"""The largest ``meta.json`` read (the bridge's hold a scan's header and alerts: kilobytes)."""


def is_saved_scan(path: Path | str) -> bool:
    """Whether ``path`` is a folder the bridge saved a scan to (``SAVED_FILES``)."""
    path = Path(path)
    return path.is_dir() and all((path / name).is_file() for name in SAVED_FILES)


def _pass(path: Path) -> np.ndarray:
    """A saved pass: its header read first, so that shape and type are checked before any pixel is."""
    try:
        stored = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # an empty file (EOFError), a damaged header, an unreadable one: a bad file, not a crash
        raise ScanFileError(f"{path}: not a saved pass ({type(exc).__name__}: {exc})") from None
    if stored.ndim != 2 or stored.dtype.kind != "f":
        raise ScanFileError(f"{path}: expected a 2-D array of floats, got {stored.dtype} of shape {stored.shape}")
    if stored.size > MAX_PIXELS:
        raise ScanFileError(f"{path}: {stored.size:,} pixels, over the budget of {MAX_PIXELS:,}")
    return np.asarray(stored, dtype=np.float64)


def _start(folder: Path) -> dict:
    """``meta.json``'s ``start``, its fields a scan file needs checked."""
    path = folder / "meta.json"
    if path.stat().st_size > MAX_META_BYTES:
        raise ScanFileError(f"{path}: over {MAX_META_BYTES:,} bytes: not the bridge's")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: a meta.json nested thousands deep
        raise ScanFileError(f"{path}: unreadable ({exc})") from None
    start = meta.get("start") if isinstance(meta, dict) else None
    if not isinstance(start, dict):
        raise ScanFileError(f"{path}: no scan start in it")
    scan_range = start.get("range", (1.0, 1.0))
    if not (
        isinstance(scan_range, (list, tuple))
        and len(scan_range) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in scan_range)
    ):
        raise ScanFileError(f"{path}: its range {scan_range!r} is not two positive numbers")
    for key in ("channel", "unit"):
        if not isinstance(start.get(key, ""), str):
            raise ScanFileError(f"{path}: its {key} {start.get(key)!r} is not text")
    return start


def read(folder: Path) -> ScanFile:
    """The scan saved in ``folder``: its trace, and its retrace where any row of it was measured in full."""
    folder = Path(folder)
    start = _start(folder)
    trace, retrace = _pass(folder / SAVED_FILES[1]), _pass(folder / SAVED_FILES[2])
    if trace.shape != retrace.shape:
        raise ScanFileError(f"{folder}: the retrace {retrace.shape} and the trace {trace.shape} differ in shape")
    channel, unit = start.get("channel") or "Z", start.get("unit") or "m"
    scan_range = tuple(float(v) for v in start.get("range", (1.0, 1.0)))  # two positive numbers (``_start``)

    def image(data: np.ndarray, pass_: str) -> ChannelImage:
        return ChannelImage(data, channel, pass_, unit, scan_range, dict(start), FORMAT)

    images = (image(trace, "trace"),)
    if np.isfinite(retrace).all(axis=1).any():
        images += (image(retrace, "retrace"),)
    # A height channel is the topograph; a current saved by the bridge is the image of a constant-height scan.
    return ScanFile(folder, FORMAT, channel if unit == "m" else None, images, feedback=None if unit == "m" else False)
