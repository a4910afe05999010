"""Helpers of the scan-file tests: where the real scans live, and small Nanonis files written here.

The real scans are never copied into the repository: they are read from
``../shared/data/real-stm/`` beside it, and the tests that need them skip where it is absent.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-stm"
REAL_SCANS = sorted(p.name for p in REAL_DIR.glob("*") if p.suffix in (".sxm", ".dat", ".sm4", ".Z_mtrx")) if REAL_DIR.is_dir() else []
MATRIX_IMAGE, MATRIX_PARAMETERS = "20201111--4_1.Z_mtrx", "20201111_0001.mtrx"
"""The real Omicron MATRIX pair: an image file and its experiment's parameter file."""
GWYDDION_FILE = Path(__file__).parent / "data" / "gwyddion-2.62-small-up.gwy"
"""A .gwy that Gwyddion 2.62 wrote (``--convert-to-gwy``) from ``write_sxm(rows=12, cols=20,
scan_range=(4e-9, 2e-9), scan_dir="up")``: synthetic, no real data."""
needs_real = pytest.mark.skipif(not REAL_SCANS, reason=f"the real scans are not at {REAL_DIR}")


def stored_plane(index: int, rows: int, cols: int) -> np.ndarray:
    """An image whose every pixel tells its plane, row and column: 10000*plane + 100*row + column, plus a
    fraction below 1.5 (0.5 * (row*column mod 3)) so that it is no geometric plane,
    which a reader would take for the flat Z of a constant-height scan (``maed.scanfiles.signal``)."""
    r, c = np.indices((rows, cols))
    return (10000.0 * index + 100.0 * r + c + 0.5 * (r * c % 3)).astype(np.float32)


def write_sxm(
    path: Path,
    channels=(("Z", "m", "both"), ("Current", "A", "forward")),
    rows: int = 12,
    cols: int = 20,
    scan_range=(4e-9, 2e-9),
    scan_dir: str = "down",
    planes: list[np.ndarray] | None = None,
    extra_header: str = "",
) -> list[np.ndarray]:
    """A Nanonis .sxm with our own header; returns the planes in stored order (stored_plane by default)."""
    count = sum(2 if direction == "both" else 1 for _, _, direction in channels)
    planes = planes if planes is not None else [stored_plane(i, rows, cols) for i in range(count)]
    table = "\n".join(f"\t{i}\t{name}\t{unit}\t{direction}\t1.000E+0\t0.000E+0" for i, (name, unit, direction) in enumerate(channels))
    header = (
        ":NANONIS_VERSION:\n2\n:SCANIT_TYPE:\n              FLOAT            MSBFIRST\n"
        f":SCAN_PIXELS:\n       {cols}       {rows}\n"
        f":SCAN_RANGE:\n           {scan_range[0]:E}           {scan_range[1]:E}\n"
        f":SCAN_DIR:\n{scan_dir}\n:BIAS:\n            5.000E-2\n:COMMENT:\nwritten by a test\nsecond line\n{extra_header}"
        f":DATA_INFO:\n\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n{table}\n\n:SCANIT_END:\n\n\n"
    )
    data = b"".join(np.asarray(p, dtype=">f4").tobytes() for p in planes)
    path.write_bytes(header.encode("latin-1") + b"\x1a\x04" + data)
    return planes


def write_createc(
    path: Path,
    planes: list[np.ndarray],
    channel_mask: int = 3,
    gain_z: float = 10.0,
    z_piezo: float = 19.2,
    gain_pre: float = 9.0,
    length_a: float = 50.0,
    compressed: bool = True,
) -> None:
    """A Createc .dat with our own header: ``planes`` are DAC counts in stored order, compressed
    ([Paramco32]) or not ([Paramet32], the values from byte 16384 on)."""
    rows, cols = planes[0].shape
    header = (
        f"{'[Paramco32]' if compressed else '[Paramet32]'}\r\nDAC-Type=20bit\r\n"
        f"Num.X / Num.X={cols}\r\nNum.Y / Num.Y={rows}\r\nChannels / Channels={len(planes)}\r\n"
        f"Channelselectval / Channelselectval={channel_mask}\r\nGainZ / GainZ={gain_z}\r\nZPiezoconst={z_piezo}\r\n"
        f"Gainpreamp / GainPre 10^={gain_pre}\r\nLength x[A]={length_a}\r\nLength y[A]={length_a * rows / cols}\r\n"
    ).encode("latin-1")
    counts = np.concatenate([[0.0], *(np.asarray(p, dtype=np.float64).ravel() for p in planes), np.zeros(64)]).astype("<f4").tobytes()
    if compressed:
        path.write_bytes(header + b"\x00" * 64 + b"DATA" + zlib.compress(counts))
    else:
        path.write_bytes(header.ljust(16384, b"\x00") + counts)


def matrix_pair(folder: Path, **changes: int) -> Path:
    """The real MATRIX pair in ``folder`` (copies, as tests may change them), with integer or boolean
    scanner parameters of the parameter file set to new values (``Lines=200``, ``Y_Retrace=1``);
    returns the image file's path."""
    params = bytearray((REAL_DIR / MATRIX_PARAMETERS).read_bytes())
    for prop, value in changes.items():
        unit = "--" if prop.endswith("Retrace") else "Count"
        # The EEPA entry: name and unit as UTF-16 strings after their lengths, 4 bytes, the type tag, the value.
        entry = b"".join(struct.pack("<I", len(t)) + t.encode("utf-16-le") for t in (prop, unit))
        at = params.find(entry)
        assert at > 0 and params.find(entry, at + 1) < 0, f"{prop} is not once in {MATRIX_PARAMETERS}"
        struct.pack_into("<i", params, at + len(entry) + 8, value)
    (folder / MATRIX_PARAMETERS).write_bytes(bytes(params))
    (folder / MATRIX_IMAGE).write_bytes((REAL_DIR / MATRIX_IMAGE).read_bytes())
    return folder / MATRIX_IMAGE
