"""Gwyddion ``.gwy`` files in: every channel (``/N/data``) with its title, unit and size, via ``gwyfile``.

A ``.gwy`` file is a tree of serialised objects (``GWYP``, then a ``GwyContainer``); gwyfile decodes it.
Its decoder trusts the file, though: a string list whose strings never end loops as many times as
the file declares, and each component it reads costs a copy of the rest of its object. So the tree
is first walked here without decoding anything (``check_structure``): every declared size must fit
inside its parent, nesting and the decoder's copying are bounded, and a file that fails gets one line.

Channels are read as Gwyddion shows them (row 0 at the top; Gwyddion's importers have already
oriented and mirrored them), each its own channel named by its title, pass ``trace``. Rows a mask
(``/N/mask``) covers whole are NaN: that is how Gwyddion, and ``maed denoise``'s own ``.gwy``, mark
rows never measured. The topograph is the first channel in metres; the channel's metadata
(``/N/meta``) is its header.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
from gwyfile.objects import GwyObject

from .channel import ChannelImage, ScanFile, ScanFileError, check_size

MAGIC = b"GWYP"
MAGICS = (MAGIC, b"GWYO")
"""Gwyddion 2 files and the older Gwyddion 1 ones, recognised so that the latter are refused by name."""
MAX_DEPTH = 64
MAX_COPIED = 1 << 32
"""Bytes gwyfile may copy while decoding (each component of an object costs the rest of the object):
real files cost well under 1 % of it."""
HELD_PER_BYTE, MIN_HELD = 4, 1 << 28
"""gwyfile keeps a copy of each object it is decoding inside another, so an object nested n deep is held n + 1 times
at once: the bytes so held may reach ``HELD_PER_BYTE`` times the file's, or ``MIN_HELD`` for a small file (a real
file nests its data 2 or 3 deep; 62 MB nested 63 deep took 4 GB)."""
_FIXED = {"b": 1, "c": 1, "i": 4, "q": 8, "d": 8}
_ARRAYS = {"C": 1, "I": 4, "Q": 8, "D": 8}
_CHANNEL = re.compile(r"^/(\d+)/data$")


class _Walk:
    """One pass over the serialised tree, raising ``ValueError`` at the first size that does not fit."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.copied = raw, 0
        self.max_held = max(HELD_PER_BYTE * len(raw), MIN_HELD)

    def _name(self, at: int, end: int) -> int:
        nul = self.raw.find(b"\0", at, end)
        if nul < 0:
            raise ValueError(f"a name at byte {at} does not end inside its object")
        return nul + 1

    def object(self, at: int, end: int, depth: int, held: int = 0) -> int:
        """Check the object at ``at`` (within ``end``; ``held``: the bytes of the objects around it); returns where
        it ends."""
        if depth > MAX_DEPTH:
            raise ValueError(f"objects nested deeper than {MAX_DEPTH}")
        at = self._name(at, end)
        if at + 4 > end:
            raise ValueError("an object's size runs past its parent")
        (size,) = struct.unpack_from("<I", self.raw, at)
        at += 4
        stop = at + size
        if stop > end:
            raise ValueError(f"an object of {size} bytes runs past its parent")
        held += size
        if held > self.max_held:
            raise ValueError(f"objects nested so that decoding would hold {held:,} bytes at once")
        while at < stop:
            self.copied += stop - at
            if self.copied > MAX_COPIED:
                raise ValueError("too many components to decode")
            at = self.component(at, stop, depth, held)
        return stop

    def component(self, at: int, end: int, depth: int, held: int) -> int:
        at = self._name(at, end)
        if at >= end:
            raise ValueError("a component without its type")
        kind = chr(self.raw[at])
        at += 1
        if kind in _FIXED:
            at += _FIXED[kind]
        elif kind == "s":
            at = self._name(at, end)
        elif kind == "o":
            at = self.object(at, end, depth + 1, held)
        elif kind in _ARRAYS or kind in "SO":
            if at + 4 > end:
                raise ValueError("an array's length runs past its object")
            (count,) = struct.unpack_from("<I", self.raw, at)
            at += 4
            if kind in _ARRAYS:
                at += count * _ARRAYS[kind]
            elif count > end - at:  # every string or object takes at least one byte
                raise ValueError(f"a list of {count} items in {end - at} bytes")
            else:
                for _ in range(count):
                    at = self._name(at, end) if kind == "S" else self.object(at, end, depth + 1, held)
        else:
            raise ValueError(f"unknown component type {kind!r}")
        if at > end:
            raise ValueError("a component runs past its object")
        return at


def check_structure(raw: bytes, path: Path) -> None:
    """Raise ``ScanFileError`` unless ``raw`` is a ``.gwy`` tree whose every declared size fits."""
    if not raw.startswith(MAGIC):
        raise ScanFileError(f"{path}: not a Gwyddion 2 file (GWYP); older GWYO files are not supported")
    try:
        end = _Walk(raw).object(len(MAGIC), len(raw), 0)
    except (ValueError, struct.error) as exc:
        raise ScanFileError(f"{path}: damaged Gwyddion file ({exc})") from None
    if end != len(raw):
        raise ScanFileError(f"{path}: damaged Gwyddion file ({len(raw) - end} bytes after its container)")


def _unit(field: GwyObject, key: str) -> str:
    unit = field.get(key)
    return str(unit.get("unitstr", "") or "") if isinstance(unit, GwyObject) else ""


def _image(container: GwyObject, prefix: str, path: Path) -> tuple[np.ndarray, GwyObject]:
    """The values of the channel whose keys begin ``prefix`` (``/0``; float64, fully masked rows NaN) and its data
    field, sizes checked."""
    field = container[f"{prefix}/data"]
    rows, cols = check_size(int(field.get("yres", 0)), int(field.get("xres", 0)), path)
    values = field.get("data")
    if not isinstance(values, np.ndarray) or values.size != rows * cols:
        raise ScanFileError(f"{path}: channel {prefix[1:]} declares {rows}x{cols} values and holds {getattr(values, 'size', 0)}")
    data = values.astype(np.float64).reshape(rows, cols)
    mask = container.get(f"{prefix}/mask")
    if isinstance(mask, GwyObject) and np.shape(mask.get("data")) == (rows * cols,):
        data[(mask["data"].reshape(rows, cols) > 0).all(axis=1)] = np.nan
    return data, field


def read(path: Path, raw: bytes) -> ScanFile:
    """Every channel of the Gwyddion file ``path`` whose bytes are ``raw``."""
    check_structure(raw, path)
    container = GwyObject.frombuffer(raw[len(MAGIC) :])
    # Keyed as written (a file may write /00/data), in the channels' order.
    channels = sorted((int(m[1]), f"/{m[1]}") for key in container.keys() if (m := _CHANNEL.match(key)))
    images, topograph = [], None
    for number, prefix in channels:
        if not isinstance(container[f"{prefix}/data"], GwyObject):
            continue
        data, field = _image(container, prefix, path)
        name = str(container.get(f"{prefix}/data/title", f"channel {number}")).strip()
        if any(image.name == name for image in images):  # titles need not be unique; names must
            name = f"{name} ({number})"
        unit = _unit(field, "si_unit_z")
        if unit == "m" and topograph is None:
            topograph = name
        meta = container.get(f"{prefix}/meta")
        header = {str(k): str(v) for k, v in meta.items()} if isinstance(meta, GwyObject) else {}
        header |= {"xy unit": _unit(field, "si_unit_xy"), "xoff": str(field.get("xoff", 0.0)), "yoff": str(field.get("yoff", 0.0))}
        scan_range = (float(field.get("xreal", 1.0)), float(field.get("yreal", 1.0)))
        images.append(ChannelImage(data, name, "trace", unit, scan_range, header, "gwyddion"))
    if not images:
        raise ScanFileError(f"{path}: Gwyddion file without images (no /N/data channel)")
    return ScanFile(path, "gwyddion", topograph, tuple(images))
