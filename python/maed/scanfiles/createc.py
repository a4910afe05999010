"""Createc ``.dat`` scans: a ``key=value`` header, ``DATA``, then the values, zlib-compressed
(``[Paramco32]``) or as they are (``[Paramet32]``, from byte ``HEADER_BYTES`` on where there is no ``DATA``).

Our own reader, not the ``createc`` package (see docs/files.md). The values are little-endian
float32: one dummy value, then every image as rows x columns, the selected channels forward and
then the same channels backward (here Z, I, Z, I). Values are DAC
counts: heights become metres with the Z piezo constant, the Z gain and the DAC's volts per
count, currents become amperes with the DAC's volts per count and the preamplifier gain, as
Gwyddion does. Rows are stored top first and backward lines already left to right (checked
against the forward images of the real scans), so nothing is flipped. A scan stopped early
holds 0 in every channel of its unmeasured rows: those become NaN.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from .channel import ChannelImage, ScanFile, ScanFileError, check_file_pixels, check_size

MAGICS = (b"[Paramco32]", b"[Paramet32]", b"[Parameter]")
COMPRESSED, UNCOMPRESSED = MAGICS[:2]
HEADER_BYTES = 16384
"""Where an uncompressed file's values start where its header holds no ``DATA`` marker (Gwyddion's ``createc.c``
reads them from there): the header's usual length; its text ends at the first NUL. In the real compressed files the
marker ends there (nine files) or 112 bytes before (four files of another lab), and the values follow it."""
DAC_VOLTS = 20.0  # the DACs span -10 V to +10 V
MIN_DAC_BITS, MAX_DAC_BITS = 8, 32
"""The DAC resolutions a header's ``DAC-Type`` may name (Createc's are 16 and 20 bits)."""
# Channelselectval is a bit mask of the recorded channels; the first two bits are the
# topograph and the tunnelling current (other bits are auxiliary ADCs, kept in raw counts).
_CHANNELS = {0: ("Z", "m"), 1: ("Current", "A")}
TOPOGRAPH = "Z"


def parse_header(text: str) -> dict[str, str]:
    """``key=value`` lines; a key written ``Long name / Short name`` is stored under both names."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        for name in {key.strip(), *(part.strip() for part in key.split(" / "))}:
            if name:
                header.setdefault(name, value.strip())
    return header


def _number(header: dict[str, str], key: str, path: Path) -> float:
    try:
        return float(header[key])
    except (KeyError, ValueError):
        raise ScanFileError(f"{path}: Createc header field {key!r} missing or not a number") from None


def read(path: Path, raw: bytes) -> ScanFile:
    """Every channel and pass of the Createc ``.dat`` file ``path`` whose bytes are ``raw``."""
    compressed = raw.startswith(COMPRESSED)
    if not compressed and not raw.startswith(UNCOMPRESSED):
        raise ScanFileError(f"{path}: 16-bit Createc file ([Parameter]); only [Paramco32] and [Paramet32] are supported")
    # The header text ends at the first NUL; what follows up to the values is padding, sometimes junk.
    text_end = raw.find(b"\x00")
    marker = raw.find(b"DATA", max(text_end, 0), None if compressed else HEADER_BYTES + 3)
    if marker < 0 and compressed:
        raise ScanFileError(f"{path}: Createc header without its DATA marker")
    # Uncompressed values have no stream to check them by: a header that does not end where they begin is refused.
    if not compressed and (marker + 4 > HEADER_BYTES or (marker < 0 and not 0 <= text_end <= HEADER_BYTES - 4)):
        raise ScanFileError(f"{path}: uncompressed Createc header does not end by byte {HEADER_BYTES}, where its values begin")
    start = marker + 4 if marker >= 0 else HEADER_BYTES
    header = parse_header(raw[: text_end if 0 <= text_end < start - 4 else start - 4].decode("latin-1"))
    cols, rows = int(_number(header, "Num.X", path)), int(_number(header, "Num.Y", path))
    stored = int(_number(header, "Channels", path))
    mask = int(_number(header, "Channelselectval", path))
    selected = [bit for bit in range(32) if mask >> bit & 1]
    if not selected:
        raise ScanFileError(f"{path}: Channelselectval {mask} selects no channel: the file holds no image")
    if stored == len(selected):
        passes = ("trace",)
    elif stored == 2 * len(selected):
        passes = ("trace", "retrace")
    else:
        raise ScanFileError(f"{path}: {stored} stored images do not fit the {len(selected)} selected channels")
    rows, cols = check_size(rows, cols, path)
    size = rows * cols
    check_file_pixels(stored * size, path)
    needed = 4 * (1 + stored * size)
    if compressed:
        # Decompressed with a cap: the header says how many values there are, and a stream that would
        # inflate beyond them (a decompression bomb) is cut there instead of filling memory.
        try:
            values = np.frombuffer(zlib.decompressobj().decompress(raw[start:], needed + 65536)[:needed], dtype="<f4")
        except zlib.error as exc:
            raise ScanFileError(f"{path}: Createc data do not decompress ({exc})") from None
    else:
        stored_bytes = raw[start : start + needed]
        values = np.frombuffer(stored_bytes[: len(stored_bytes) // 4 * 4], dtype="<f4")
    if values.size < 1 + stored * size:
        raise ScanFileError(
            f"{path}: truncated: {stored} images of {rows}x{cols} need {stored * size} values, found {max(values.size - 1, 0)}"
        )
    stack = values[1 : 1 + stored * size].reshape(stored, rows, cols)
    unmeasured = (stack == 0).all(axis=(0, 2))  # a measured row is never exactly 0 in every channel

    found = re.search(r"\d+", header.get("DAC-Type", "20bit"))
    bits = int(found.group()) if found else 0
    if not MIN_DAC_BITS <= bits <= MAX_DAC_BITS:  # 2**bits of a huge count never ends
        raise ScanFileError(f"{path}: DAC-Type {header.get('DAC-Type')!r} is no DAC of {MIN_DAC_BITS} to {MAX_DAC_BITS} bits")
    volts = DAC_VOLTS / 2**bits
    scales = {
        "m": volts * _number(header, "ZPiezoconst", path) * _number(header, "GainZ", path) * 1e-10,  # Å/V -> m
        "A": volts / 10 ** _number(header, "Gainpreamp", path),  # the preamplifier gives 10^Gainpreamp V/A
        "": 1.0,
    }
    scan_range = (_number(header, "Length x[A]", path) * 1e-10, _number(header, "Length y[A]", path) * 1e-10)
    images = []
    for d, pass_ in enumerate(passes):
        for c, bit in enumerate(selected):
            name, unit = _CHANNELS.get(bit, (f"ADC{bit - 1}", ""))
            image = stack[d * len(selected) + c].astype(np.float64) * scales[unit]
            image[unmeasured] = np.nan
            images.append(ChannelImage(image, name, pass_, unit, scan_range, header, "createc"))
    return ScanFile(path, "createc", TOPOGRAPH if 0 in selected else None, tuple(images))
