"""What every reader returns: one scan file's channels as oriented 2-D images in SI units.

Orientation is the same for every format: row 0 is the top of the image as the instrument
software shows it, column 0 its left; retrace images (the vendors' "backward") are mirrored into
the trace's orientation, so trace and retrace pixels of the same spot share an index. The
fast-axis pass is ``trace`` or ``retrace`` everywhere in MAED-RT; the vendors' ``forward`` and
``backward`` are accepted wherever a pass is named (``canonical_pass``). Rows that were
never measured (a scan stopped early) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

PASSES = ("trace", "retrace")
"""The fast-axis passes: the trace (left to right) and the retrace (back)."""
PASS_ALIASES = {"forward": "trace", "backward": "retrace"}
"""The instrument vendors' words for the passes, accepted wherever a pass is named."""


def canonical_pass(name: str) -> str:
    """``trace`` or ``retrace`` for a pass named by our word or the vendors' (``forward``, ``backward``)."""
    name = PASS_ALIASES.get(name, name)
    if name not in PASSES:
        raise ValueError(f"unknown pass {name!r}; choose trace or retrace (forward and backward are accepted too)")
    return name


class ScanFileError(ValueError):
    """An instrument file cannot be read; the message names the file and the problem in one line."""


MAX_PIXELS = 8192 * 8192
"""The largest image a file may declare (64 Mpx, 512 MB as float64): checked before any decoding,
so a file of a hundred bytes that declares a gigapixel image costs nothing."""


MAX_FILE_PIXELS = 4 * MAX_PIXELS
"""The most pixels a file may hold over all its images (256 Mpx, 2 GB as float64, as the readers return them): a
header that declares many channels, or lists one page many times, is refused before it is decoded."""
MAX_FILE_BYTES = 8 * MAX_FILE_PIXELS + (64 << 20)
"""The largest scan file read (about 2 GiB: ``MAX_FILE_PIXELS`` stored as float64, and room for headers); the readers
hold a file's bytes whole."""


def check_file_pixels(pixels: int, path: object) -> None:
    """A ``ScanFileError`` where the images a file declares hold more than ``MAX_FILE_PIXELS`` together."""
    if pixels > MAX_FILE_PIXELS:
        raise ScanFileError(f"{path}: the header declares {pixels:,} pixels over all its images, over the budget of {MAX_FILE_PIXELS:,}")


def check_size(rows: int, cols: int, path: object) -> tuple[int, int]:
    """``rows`` and ``cols`` as read from a header if they make a plausible image, else a ``ScanFileError``."""
    if rows <= 0 or cols <= 0:
        raise ScanFileError(f"{path}: the header declares an image of {rows}x{cols} pixels")
    if rows * cols > MAX_PIXELS:
        raise ScanFileError(f"{path}: the header declares {rows}x{cols} pixels, over the budget of {MAX_PIXELS:,}")
    return rows, cols


class ChannelKey(NamedTuple):
    """One image of a scan file: channel name, pass (trace or retrace) and the unit of its values."""

    name: str
    pass_: str
    unit: str


@dataclass(frozen=True, eq=False)  # compared by identity: equality of arrays has no single answer
class ChannelImage:
    """One channel of a scan in one pass (trace or retrace), in physical units.

    ``data`` is float64 in ``unit`` (metres for heights, amperes for currents), NaN where rows
    were never measured; ``scan_range`` is (width, height) of the image in metres; ``header``
    holds the file's (or, for RHK, the page's) header as read.
    """

    data: np.ndarray
    name: str
    pass_: str
    unit: str
    scan_range: tuple[float, float]
    header: dict[str, Any] = field(repr=False)
    format: str = ""

    @property
    def width(self) -> float:
        """Width of the image (along its rows) in metres."""
        return self.scan_range[0]

    @property
    def height(self) -> float:
        """Height of the image (across its rows) in metres."""
        return self.scan_range[1]

    @property
    def measured_rows(self) -> np.ndarray:
        """True for every row whose pixels were all measured."""
        return np.isfinite(self.data).all(axis=1)

    @property
    def key(self) -> ChannelKey:
        return ChannelKey(self.name, self.pass_, self.unit)


@dataclass(frozen=True, eq=False)
class ScanFile:
    """Every image in one instrument file, which channel is its topograph, and whether Z followed the surface."""

    path: Path
    format: str
    topograph: str | None
    images: tuple[ChannelImage, ...]
    feedback: bool | None = None
    """The Z feedback as the header records it: True on (constant current), False off (constant
    height, the surface is in the current), None where the format does not say."""

    def channel(self, name: str | None = None, pass_: str = "trace") -> ChannelImage:
        """The image of channel ``name`` (case-insensitive; None: the topograph) of pass ``pass_``."""
        try:
            pass_ = canonical_pass(pass_)
        except ValueError as exc:
            raise ScanFileError(f"{self.path}: {exc}") from None
        names = list(dict.fromkeys(image.name for image in self.images))
        wanted = name if name is not None else self.topograph
        if wanted is None:
            raise ScanFileError(f"{self.path}: no topograph channel; choose one of {', '.join(names)}")
        matches = [image for image in self.images if image.name.lower() == wanted.lower()]
        if not matches:
            raise ScanFileError(f"{self.path}: no channel {wanted!r}; channels: {', '.join(names)}")
        for image in matches:
            if image.pass_ == pass_:
                return image
        raise ScanFileError(f"{self.path}: channel {matches[0].name!r} has no {pass_}")
