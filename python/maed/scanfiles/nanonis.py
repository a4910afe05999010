"""Nanonis ``.sxm`` scans: a text header of ``:KEY:`` blocks, then 0x1A 0x04, then the images.

Our own reader, not nanonispy2 (see docs/files.md): the format is a page of text and one
array, and the published readers assume both passes for every channel, ignore
``:SCANIT_TYPE:`` or leave the orientation to the caller. Orientation follows Gwyddion and the
Nanonis-made MATLAB loader: rows are stored in the order they were scanned, so an ``up`` scan
(first row at the bottom) is flipped top to bottom, and retrace lines (Nanonis: backward),
stored right to left, are mirrored. Rows never scanned are stored as NaN and stay NaN. The header
says whether the Z-controller was on (``feedback``): off, the scan was taken at constant height.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .channel import PASS_ALIASES, ChannelImage, ScanFile, ScanFileError, check_file_pixels, check_size

MAGIC = b":NANONIS_VERSION:"
DATA_START = b"\x1a\x04"
TOPOGRAPH = "Z"
_TYPES = {"FLOAT": "f4", "DOUBLE": "f8", "INT": "i4", "UINT": "u4"}
_ORDER = {"MSBFIRST": ">", "LSBFIRST": "<"}


def parse_header(text: str) -> dict[str, str]:
    """``:KEY:`` blocks as key -> value text (lines of multi-line values joined by newlines)."""
    header: dict[str, str] = {}
    key = None
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if len(stripped) > 1 and stripped.startswith(":") and stripped.endswith(":"):
            if key is not None:
                header[key] = "\n".join(lines).strip()
            key, lines = stripped[1:-1], []
        elif key is not None:
            lines.append(line.rstrip())
    if key is not None:
        header[key] = "\n".join(lines).strip()
    return header


def data_info(header: dict[str, str], path: Path) -> list[dict[str, str]]:
    """The ``:DATA_INFO:`` table: one dict per channel with Name, Unit and Direction."""
    rows = [line.split("\t") for line in header.get("DATA_INFO", "").splitlines() if line.strip()]
    rows = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    if len(rows) < 2 or not {"Name", "Unit", "Direction"} <= set(rows[0]):
        raise ScanFileError(f"{path}: Nanonis header has no :DATA_INFO: channel table")
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def feedback(header: dict[str, str]) -> bool | None:
    """Whether the Z-controller was on (constant current) during the scan; None if the header does not say.

    Newer files write ``Z-Controller>Controller status`` (``ON``/``OFF``); every version has the
    ``:Z-CONTROLLER:`` table, whose ``on`` column is 1 or 0."""
    status = header.get("Z-Controller>Controller status", "").strip().upper()
    if status in ("ON", "OFF"):
        return status == "ON"
    rows = [line.split("\t") for line in header.get("Z-CONTROLLER", "").splitlines()]
    rows = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    if len(rows) >= 2 and "on" in rows[0] and len(rows[1]) == len(rows[0]):
        value = rows[1][rows[0].index("on")]
        if value in ("0", "1"):
            return value == "1"
    return None


def _numbers(header: dict[str, str], key: str, path: Path) -> list[float]:
    try:
        return [float(v) for v in header[key].split()]
    except (KeyError, ValueError):
        raise ScanFileError(f"{path}: Nanonis header field :{key}: missing or not numbers") from None


def scanned_up(header: dict) -> bool:
    """Whether the scan ran up (``SCAN_DIR``): its first line is stored first and is the bottom row on display."""
    return str(header.get("SCAN_DIR", "down")).strip().lower() == "up"


def read(path: Path, raw: bytes) -> ScanFile:
    """Every channel and pass of the ``.sxm`` file ``path`` whose bytes are ``raw``."""
    end = raw.find(b":SCANIT_END:")
    start = raw.find(DATA_START, end)
    if end < 0 or start < 0:
        raise ScanFileError(f"{path}: Nanonis header without its end (:SCANIT_END: and 0x1A 0x04)")
    # Nanonis writes the header in the Windows code page; latin-1 decodes any byte.
    header = parse_header(raw[:start].decode("latin-1"))
    cols, rows = (int(v) for v in _numbers(header, "SCAN_PIXELS", path)[:2])
    rows, cols = check_size(rows, cols, path)
    width, height = _numbers(header, "SCAN_RANGE", path)[:2]
    kind = header.get("SCANIT_TYPE", "FLOAT MSBFIRST").split()
    if len(kind) != 2 or kind[0] not in _TYPES or kind[1] not in _ORDER:
        raise ScanFileError(f"{path}: unknown Nanonis data type {' '.join(kind)!r}")
    dtype = np.dtype(_ORDER[kind[1]] + _TYPES[kind[0]])

    planes = []
    for channel in data_info(header, path):
        recorded = channel["Direction"].lower()
        # The file names its passes as Nanonis does: "forward", "backward" or "both" (in that order).
        recorded_passes = ("forward", "backward") if recorded == "both" else (recorded,)
        if not set(recorded_passes) <= set(PASS_ALIASES):
            raise ScanFileError(f"{path}: channel {channel['Name']!r} has an unknown pass {recorded!r}")
        planes += [(channel["Name"], PASS_ALIASES[p], channel["Unit"]) for p in recorded_passes]
    size = rows * cols
    check_file_pixels(len(planes) * size, path)
    held = (len(raw) - start - len(DATA_START)) // dtype.itemsize  # bytes after the images (a stray one) are not read
    if held < len(planes) * size:
        raise ScanFileError(
            f"{path}: truncated: {len(planes)} images of {rows}x{cols} need {len(planes) * size} values, the file holds {held}"
        )
    values = np.frombuffer(raw, dtype=dtype, count=len(planes) * size, offset=start + len(DATA_START))

    flip_rows = scanned_up(header)
    images = []
    for i, (name, pass_, unit) in enumerate(planes):
        image = values[i * size : (i + 1) * size].reshape(rows, cols).astype(np.float64)
        if pass_ == "retrace":
            image = image[:, ::-1]
        if flip_rows:
            image = image[::-1]
        images.append(ChannelImage(np.ascontiguousarray(image), name, pass_, unit, (width, height), header, "nanonis"))
    names = {name for name, _, _ in planes}
    return ScanFile(path, "nanonis", TOPOGRAPH if TOPOGRAPH in names else None, tuple(images), feedback(header))
