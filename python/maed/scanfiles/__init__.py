"""Scans of the major STM controllers, read by content into physical units.

``read_file`` reads every channel of a Nanonis ``.sxm``, Createc ``.dat``, RHK ``.sm4`` or Omicron
MATRIX ``.Z_mtrx``/``.I_mtrx`` file (with its ``_0001.mtrx`` parameter file beside it) or Gwyddion ``.gwy`` file,
and the folder of a scan the MAED-RT bridge saved (``saved``);
``read_channel`` picks one image (default: the scan's signal, ``signal.choose``: the topograph,
or the current of a constant-height scan; trace); ``list_channels`` says what a file holds. The reader is
chosen by ``detect_format`` from the file's first bytes, never by its extension alone. Every problem with
a file raises ``ScanFileError`` whose one-line message names the file. ``write_gwy`` writes images to a Gwyddion ``.gwy`` file, to scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import createc, gwy_read, matrix, nanonis, rhk, saved
from .channel import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    PASS_ALIASES,
    PASSES,
    ChannelImage,
    ChannelKey,
    ScanFile,
    ScanFileError,
    canonical_pass,
    check_size,
)
from .gwy import write_gwy
from .signal import Choice, choose, is_flat

READERS = {"nanonis": nanonis.read, "createc": createc.read, "rhk": rhk.read, "matrix": matrix.read, "gwyddion": gwy_read.read}
FORMAT_NAMES = {
    "nanonis": "Nanonis .sxm",
    "createc": "Createc .dat",
    "rhk": "RHK .sm4",
    "matrix": "Omicron MATRIX .Z_mtrx/.I_mtrx",
    "gwyddion": "Gwyddion .gwy",
}
is_saved_scan = saved.is_saved_scan
SUFFIXES = (".sxm", ".dat", ".sm4", ".z_mtrx", ".i_mtrx", ".gwy")
"""Usual extensions (lowercased), for callers' routing, folder walks and messages; content decides."""


def detect_format(head: bytes) -> str | None:
    """``nanonis``, ``createc``, ``rhk``, ``matrix`` or ``gwyddion`` from a file's first bytes (64 are enough);
    None if none."""
    if head.startswith(nanonis.MAGIC):
        return "nanonis"
    if head.startswith(matrix.MAGIC):
        return "matrix"
    if head.startswith(gwy_read.MAGICS):
        return "gwyddion"
    if head.startswith(createc.MAGICS):
        return "createc"
    if head[2 : 2 + len(rhk.MAGIC)] == rhk.MAGIC:
        return "rhk"
    return None


def sniff(path: Path) -> str | None:
    """The instrument format of the file at ``path`` by its content, None if it is none of them."""
    with open(path, "rb") as f:
        return detect_format(f.read(64))


def not_a_file(path: Path) -> str:
    """Why ``path``, which is no regular file, cannot be read as a scan: missing, a folder, or something else (a
    device such as /dev/zero, a FIFO, a socket), which reading would never end or never start."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "a folder, not a file"
    return "not a regular file (a device, a FIFO or a socket)"


def read_file(path: Path | str) -> ScanFile:
    """Every channel, in both passes where recorded, of the instrument file at ``path``, or of the scan the bridge
    saved to the folder ``path`` (``saved``)."""
    path = Path(path)
    if saved.is_saved_scan(path):
        return saved.read(path)
    if not path.is_file():
        raise ScanFileError(f"{path}: {not_a_file(path)}")
    if (size := path.stat().st_size) > MAX_FILE_BYTES:
        raise ScanFileError(f"{path}: {size:,} bytes, over the budget of {MAX_FILE_BYTES:,} bytes for a scan file")
    raw = path.read_bytes()
    fmt = detect_format(raw[:64])
    if fmt is None:
        raise ScanFileError(f"{path}: not a scan file of a known instrument ({', '.join(FORMAT_NAMES.values())})")
    try:
        # Stored bytes that are a signalling NaN raise the floating-point "invalid" flag when widened to float64; a
        # NaN is an unmeasured pixel to the readers' callers, not news for the user's terminal.
        with np.errstate(invalid="ignore"):
            return READERS[fmt](path, raw)
    except ScanFileError:
        raise
    except OSError as exc:  # a companion file (a MATRIX parameter file) that cannot be read is not damaged
        raise ScanFileError(f"{path}: cannot read {exc.filename or 'a file it needs'}: {exc.strerror or exc}") from None
    except Exception as exc:  # a damaged file trips the parser anywhere: report it, never crash
        if isinstance(exc, ValueError) and "buffer" in str(exc):  # numpy reading the images past the file's end
            raise ScanFileError(f"{path}: truncated {FORMAT_NAMES[fmt]} file: it ends before the images its header announces") from None
        raise ScanFileError(f"{path}: damaged {FORMAT_NAMES[fmt]} file ({type(exc).__name__}: {exc})") from None


def companion_files(path: Path | str) -> list[Path]:
    """Other files the scan at ``path`` is read with (a MATRIX image's parameter files), for callers that
    fingerprint an input; none for self-contained formats."""
    path = Path(path)
    return matrix.companions(path) if path.suffix.lower().endswith("_mtrx") else []


ORDER_RECORDED = ("nanonis", "matrix", "maed-bridge")
"""Formats whose files say both which pass an image is and which way the slow axis ran (``scan_order_known``); a scan
the bridge saved says the latter in its start (``slow_axis``)."""


def scanned_upwards(image: ChannelImage) -> bool:
    """Whether ``image``'s last row was scanned first: its reader turned the frame for display (a Nanonis scan that
    ran up, a MATRIX file's up frame, a scan the bridge saved with its slow axis up). Createc, RHK and Gwyddion
    images are taken as the first row scanned first: their files do not say otherwise in a way this package reads."""
    if image.format == "nanonis":
        return nanonis.scanned_up(image.header)
    if image.format == "matrix":
        return matrix.scanned_up(image.name)
    if image.format == "maed-bridge":
        return image.header.get("slow_axis") == "up"
    return False


def scan_order_known(image: ChannelImage) -> bool:
    """Whether ``image``'s file records the order it was scanned in: which pass it is (a retrace's lines run from the
    right) and which way the slow axis ran (``ORDER_RECORDED``). A Gwyddion file names every channel a trace, and
    Createc and RHK files do not say which way the slow axis ran in a way this package reads."""
    return image.format in ORDER_RECORDED


def known_retrace(image: ChannelImage) -> bool | None:
    """Whether ``image`` is a retrace, where its file records the scan order (``scan_order_known``); else None, as
    ``maed.denoise.denoise_guarded`` is told of a scan whose order is not known."""
    return image.pass_ == "retrace" if scan_order_known(image) else None


def read_channel(path: Path | str, channel: str | None = None, pass_: str = "trace") -> ChannelImage:
    """One image of the file at ``path``: channel ``channel`` of pass ``pass_``; None: the scan's signal
    (the topograph, or the current where the scan was taken at constant height: ``signal.choose``)."""
    scan = read_file(path)
    return choose(scan, pass_).image if channel is None else scan.channel(channel, pass_)


def list_channels(path: Path | str) -> list[ChannelKey]:
    """(name, pass, unit) of every image in the file at ``path``, in file order."""
    return [image.key for image in read_file(path).images]


__all__ = [
    "MAX_PIXELS",
    "PASSES",
    "PASS_ALIASES",
    "canonical_pass",
    "check_size",
    "FORMAT_NAMES",
    "SUFFIXES",
    "ChannelImage",
    "ChannelKey",
    "ScanFile",
    "ScanFileError",
    "Choice",
    "choose",
    "companion_files",
    "is_flat",
    "detect_format",
    "sniff",
    "read_file",
    "not_a_file",
    "read_channel",
    "list_channels",
    "known_retrace",
    "scan_order_known",
    "scanned_upwards",
    "write_gwy",
]
