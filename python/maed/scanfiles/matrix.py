"""Omicron MATRIX images (``<experiment>--<run>_<cycle>.<channel>_mtrx``) with their parameter file.

Our own reader, not access2thematrix (see docs/files.md); there is no public specification, so the
layout follows access2thematrix 0.4.4 and Gwyddion's ``omicronmatrix.c``, and every value is
checked against both on the real pair. An image file holds raw int32 counts only; what they mean
is in the experiment's parameter file ``<experiment>_0001.mtrx`` (continued in ``_0002.mtrx``, ...)
beside it: a log of timestamped records, replayed here up to the record that names the image
file (``BREF``), which gives the scanner's state for it: points, lines, size, whether the fast axis
was scanned back (trace and retrace) and the slow axis too (up and down), the channel's name and
unit, and the transfer function from counts to physical units.

Both files start ``ONTMATRX0101`` and are a sequence of records: a reversed four-letter tag
(``APEE`` for EEPA), a little-endian uint32 length, for most tags an 8-byte timestamp, then the
body. Strings are a uint32 count of UTF-16 characters and the characters.

Storage is line by line in scan order, each line the trace then (X retrace) the retrace right to
left, the up lines (bottom first) and then (Y retrace) the down lines (top first). Images come out
as everywhere in MAED-RT: row 0 at the top, retrace mirrored onto the trace; the down frame is the
channel ``<name> down``. A scan stopped early keeps its declared size with the rows never measured
NaN.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .channel import ChannelImage, ScanFile, ScanFileError, check_size

MAGIC = b"ONTMATRX0101"
UNTIMED = {b"REFX", b"NACS", b"TCID", b"SCHC", b"TSNI", b"SXNC", b"LNEG", b"CSED", b"ATAD"}
"""Record tags (as stored, reversed) without the 8-byte timestamp after their length."""
NAME = re.compile(r"^(?P<chain>.+)--(?P<run>\d+)_(?P<cycle>\d+)\.(?P<channel>[^.]+)_mtrx$", re.IGNORECASE)
PARAMETER_FILES = 99
"""At most this many parameter files of one experiment (``_0001.mtrx`` ...) are read."""
TOPOGRAPH = "Z"


class _Reader:
    """A cursor over one record's body; every read past its end raises ``struct.error``."""

    def __init__(self, data: bytes, at: int = 0) -> None:
        self.data, self.at = data, at

    def skip(self, n: int) -> None:
        if self.at + n > len(self.data):
            raise struct.error("record ends early")
        self.at += n

    def uint(self) -> int:
        (value,) = struct.unpack_from("<I", self.data, self.at)
        self.at += 4
        return value

    def string(self) -> str:
        n = self.uint()
        if self.at + 2 * n > len(self.data):
            raise struct.error("string runs past its record")
        self.at += 2 * n
        return self.data[self.at - 2 * n : self.at].decode("utf-16-le", errors="replace")

    def value(self) -> Any:
        kind = self.data[self.at : self.at + 4]
        self.skip(4)
        if kind == b"LOOB":
            return bool(self.uint())
        if kind == b"GNOL":
            (value,) = struct.unpack_from("<i", self.data, self.at)
        elif kind == b"BUOD":
            (value,) = struct.unpack_from("<d", self.data, self.at)
            self.at += 4
        elif kind == b"GRTS":
            return self.string()
        else:
            raise struct.error(f"unknown value type {kind!r}")
        self.at += 4
        return value


def records(data: bytes, start: int = len(MAGIC)):
    """(tag, body) of each record of ``data`` from ``start``; a record running past the end raises."""
    at = start
    while at < len(data):
        tag = data[at : at + 4]
        (length,) = struct.unpack_from("<I", data, at + 4)
        begin = at + 8 + (0 if tag in UNTIMED else 8)
        if begin + length > len(data):
            raise struct.error(f"record {tag[::-1].decode('latin-1')} runs past the end of the file")
        yield tag, data[begin : begin + length]
        at = begin + length


class Parameters:
    """The experiment's state replayed from its parameter files up to one image file's record."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[Any, str]] = {}  # "XYScanner.Points" -> (400, "Count")
        self.channels: dict[int, tuple[str, str]] = {}  # dictionary key -> (name, unit)
        self.transfers: dict[int, tuple[str, dict[str, float]]] = {}  # key -> (function, parameters)

    def replay(self, data: bytes, image_name: str) -> bool:
        """Apply the records of one parameter file; True once the record naming ``image_name`` is met."""
        for tag, body in records(data):
            if tag == b"FERB":
                r = _Reader(body, 4)
                if r.string() == image_name:
                    return True
            elif tag == b"APEE":
                self._experiment(body)
            elif tag == b"DOMP":
                r = _Reader(body, 4)
                element, prop, unit = r.string(), r.string(), r.string()
                r.skip(4)
                self.values[f"{element}.{prop}"] = (r.value(), unit)
            elif tag == b"YSCC":
                for inner, inner_body in records(body, 4):
                    if inner == b"TCID":
                        self._dictionary(inner_body)
                    elif inner == b"REFX":
                        self._transfers(inner_body)
        return False

    def _experiment(self, body: bytes) -> None:
        r = _Reader(body, 4)
        for _ in range(r.uint()):
            element = r.string()
            for _ in range(r.uint()):
                prop, unit = r.string(), r.string()
                r.skip(4)
                self.values[f"{element}.{prop}"] = (r.value(), unit)

    def _dictionary(self, body: bytes) -> None:
        r = _Reader(body, 8)
        for _ in range(r.uint()):  # names of the experiment's properties: not needed
            r.skip(16)
            r.string(), r.string()
        for _ in range(r.uint()):
            r.skip(4)
            key = r.uint()
            r.skip(8)
            self.channels[key] = (r.string(), r.string())

    def _transfers(self, body: bytes) -> None:
        r = _Reader(body)
        while r.at < len(body):
            r.skip(4)
            key = r.uint()
            function = r.string()
            r.string()  # the physical unit, which the channel dictionary gives too
            self.transfers[key] = (function, {r.string(): r.value() for _ in range(r.uint())})

    def get(self, key: str, path: Path) -> Any:
        try:
            return self.values[key][0]
        except KeyError:
            raise ScanFileError(f"{path}: MATRIX parameters without {key}") from None

    def physical(self, channel: str, counts: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
        """``counts`` of ``channel`` in its physical unit (the last dictionary entry of that name)."""
        keys = [k for k, (name, _) in self.channels.items() if name == channel]
        if not keys:
            raise ScanFileError(f"{path}: the MATRIX parameters do not define the channel {channel!r}")
        key = max(keys)
        unit = self.channels[key][1]
        function, p = self.transfers.get(key, ("", {}))
        divisor = {"TFF_Linear1D": ("Factor",), "TFF_MultiLinear1D": ("NeutralFactor", "PreFactor")}.get(function, ())
        if any(p[name] == 0 for name in divisor):
            raise ScanFileError(f"{path}: MATRIX channel {channel!r}: its transfer function divides by a {'/'.join(divisor)} of 0")
        if function == "TFF_Linear1D":
            return (counts - p["Offset"]) / p["Factor"], unit
        if function == "TFF_MultiLinear1D":
            return (p["Raw_1"] - p["PreOffset"]) * (counts - p["Offset"]) / (p["NeutralFactor"] * p["PreFactor"]), unit
        raise ScanFileError(f"{path}: MATRIX channel {channel!r} has an unknown transfer function {function!r}")


def parameter_files(path: Path, chain: str) -> list[Path]:
    """The experiment's parameter files beside ``path``: ``<chain>_0001.mtrx``, ``_0002.mtrx``, ..."""
    found = []
    for i in range(1, PARAMETER_FILES + 1):
        candidate = path.with_name(f"{chain}_{i:04d}.mtrx")
        if not candidate.is_file():
            break
        found.append(candidate)
    return found


def companions(path: Path) -> list[Path]:
    """The files besides ``path`` its image depends on: its experiment's parameter files (none if it is no
    MATRIX image name)."""
    match = NAME.match(Path(path).name)
    return parameter_files(Path(path), match["chain"]) if match else []


def _counts(raw: bytes, path: Path) -> tuple[np.ndarray, int]:
    """The image file's int32 counts (a view) and how many were stored, checked against each other."""
    for tag, body in records(raw):
        if tag != b"TLKB":
            continue
        count, data = None, None
        for inner, inner_body in records(body, 4):  # after the bricklet's 4-byte counter
            if inner == b"CSED":
                (count,) = struct.unpack_from("<i", inner_body, 24)
            elif inner == b"ATAD":
                data = inner_body
        if count is None or data is None:
            break
        if count < 0 or 4 * count > len(data):
            raise ScanFileError(f"{path}: truncated: {count} values declared, {len(data) // 4} stored")
        return np.frombuffer(data, dtype="<i4", count=count), count
    raise ScanFileError(f"{path}: Omicron MATRIX file without image data")


def scanned_up(name: str) -> bool:
    """Whether the image named ``name`` is of the up frame, scanned bottom first (the down frame is ``<name> down``)."""
    return not name.endswith(" down")


def read(path: Path, raw: bytes) -> ScanFile:
    """Every pass of the MATRIX image file ``path`` whose bytes are ``raw``, with its parameter file."""
    if raw[len(MAGIC) : len(MAGIC) + 4] == b"ATEM":
        raise ScanFileError(f"{path}: an Omicron MATRIX parameter file, not an image; give the .Z_mtrx or .I_mtrx beside it")
    match = NAME.match(path.name)
    if match is None:
        raise ScanFileError(
            f"{path}: not named as MATRIX names its images (<experiment>--<run>_<cycle>.<channel>_mtrx), "
            "so its parameter file cannot be found"
        )
    params_files = parameter_files(path, match["chain"])
    if not params_files:
        raise ScanFileError(f"{path}: its parameter file {match['chain']}_0001.mtrx is not beside it")
    params = Parameters()
    for params_file in params_files:
        data = params_file.read_bytes()
        if not data.startswith(MAGIC):
            raise ScanFileError(f"{path}: {params_file.name} is not a MATRIX parameter file")
        try:
            found = params.replay(data, path.name)
        except ScanFileError:
            raise
        except Exception as exc:  # the image may be whole: name the parameter file that is damaged
            raise ScanFileError(f"{path}: its parameter file {params_file.name} is damaged ({type(exc).__name__}: {exc})") from None
        if found:
            break
    else:
        raise ScanFileError(f"{path}: its parameter files never mention it (another experiment's?)")

    cols, rows = int(params.get("XYScanner.Points", path)), int(params.get("XYScanner.Lines", path))
    rows, cols = check_size(rows, cols, path)
    x_back, y_back = bool(params.get("XYScanner.X_Retrace", path)), bool(params.get("XYScanner.Y_Retrace", path))
    passes, frames = 1 + x_back, 1 + y_back
    check_size(rows * frames, cols * passes, path)  # everything the file may hold, before decoding
    counts, stored = _counts(raw, path)
    full = np.full(frames * rows * passes * cols, np.nan)
    full[: min(stored, full.size)] = counts[: full.size]
    channel = match["channel"]
    values, unit = params.physical(channel, full, path)
    lines = values.reshape(frames * rows, passes, cols)

    scan_range = (float(params.get("XYScanner.Width", path)), float(params.get("XYScanner.Height", path)))
    header = {key: f"{value} {unit}".strip() for key, (value, unit) in params.values.items()}
    images = []
    for frame in range(frames):
        block = lines[frame * rows : (frame + 1) * rows]
        # Up lines were scanned bottom first, down lines top first: row 0 becomes the top either way.
        block = block[::-1] if frame == 0 else block
        name = channel if frame == 0 else f"{channel} down"
        for p in range(passes):
            image = block[:, p, ::-1] if p == 1 else block[:, p]  # retrace lines run right to left
            pass_ = "retrace" if p == 1 else "trace"
            images.append(ChannelImage(np.ascontiguousarray(image), name, pass_, unit, scan_range, header, "matrix"))
    feedback = params.values.get("Regulator.Feedback_Loop_Enabled", (None, ""))[0]
    topograph = TOPOGRAPH if channel == TOPOGRAPH else None
    return ScanFile(path, "matrix", topograph, tuple(images), feedback if isinstance(feedback, bool) else None)
