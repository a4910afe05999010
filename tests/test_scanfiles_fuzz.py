"""Property-based fuzzing of every file reader ``maed denoise`` uses, with size bombs.

Each reader gets damaged files (bytes changed, files cut short) and headers declaring any size,
negative, zero or absurd. Whatever the file, ``read_scan`` returns a scan or raises ``ScanError``
with a one-line message (what ``maed denoise`` prints); nothing else escapes, and a file of a few
kilobytes never makes the process's resident memory grow by ``MEMORY_BOUND`` or more, with the
pixel budget at ``FUZZ_PIXELS``: declared sizes are checked against it before anything is decoded,
and Createc data are inflated with a cap.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scanfile_helpers import (
    GWYDDION_FILE,
    MATRIX_IMAGE,
    MATRIX_PARAMETERS,
    REAL_DIR,
    matrix_pair,
    write_createc,
    write_sxm,
)

from maed.io import ScanError, read_scan
from maed.scanfiles import channel

FUZZ_PIXELS = 512 * 512
"""The pixel budget while fuzzing (``MAX_PIXELS``, 64 Mpx in use): every reader must refuse a larger
declared image before decoding it, whatever the budget, and what fits it costs a few dozen bytes a pixel."""
MEMORY_BOUND = 64 << 20
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SIZES = st.integers(-(2**31), 2**31) | st.integers(-2, 70_000)
"""Declared sizes: anything a 32-bit field holds, and the plausible range near its edges."""


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def read_within_bound(path: Path) -> None:
    """Read ``path`` as ``maed denoise`` does: a scan or a one-line ``ScanError``, within ``MEMORY_BOUND``.

    Memory is the process's peak resident set over the read (``VmHWM``, reset first through
    ``/proc/self/clear_refs``), so that what C libraries allocate (Pillow's image buffers) counts too."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _rss_kib("VmRSS")
    try:
        read_scan(path)
    except ScanError as exc:
        message = str(exc)
        assert message and "\n" not in message and str(path) in message
    grown = (_rss_kib("VmHWM") - before) << 10
    assert grown < MEMORY_BOUND, f"{grown / 2**20:.0f} MiB to read a file of {path.stat().st_size} bytes"


edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8)
cuts = st.none() | st.floats(0, 1)


def damaged(original: bytes, changes: list[tuple[float, int]], cut: float | None) -> bytes:
    """``original`` with bytes changed at relative positions, then cut to a fraction of its length."""
    data = bytearray(original)
    for where, value in changes:
        data[int(where * len(data))] = value
    return bytes(data[: int(cut * len(data))] if cut is not None else data)


@pytest.fixture(scope="module", autouse=True)
def small_pixel_budget():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(channel, "MAX_PIXELS", FUZZ_PIXELS)
        yield


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("originals")
    write_sxm(folder / "s.sxm", rows=16, cols=16)
    write_createc(folder / "c.dat", [np.arange(256.0).reshape(16, 16) * k for k in (1, 2)])
    write_createc(folder / "u.dat", [np.arange(256.0).reshape(16, 16) * k for k in (1, 2)], compressed=False)
    np.save(folder / "a.npy", np.arange(256, dtype="<f4").reshape(16, 16))
    from PIL import Image

    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(folder / "g.png")
    import tifffile

    tifffile.imwrite(folder / "t.tif", np.arange(256, dtype=np.uint16).reshape(16, 16))
    found = {p.suffix: p.read_bytes() for p in folder.iterdir() if p.name != "u.dat"}
    found["_uncompressed.dat"] = (folder / "u.dat").read_bytes()
    rhk = sorted(REAL_DIR.glob("*.sm4")) if REAL_DIR.is_dir() else []
    if rhk:  # no writer of our own: the smallest real scan, where the real scans are
        found[".sm4"] = min(rhk, key=lambda p: p.stat().st_size).read_bytes()
    found[".gwy"] = GWYDDION_FILE.read_bytes()  # written by Gwyddion itself
    return found


@pytest.mark.parametrize("suffix", [".sxm", ".dat", "_uncompressed.dat", ".npy", ".png", ".tif", ".sm4", ".gwy"])
@FUZZ
@given(changes=edits, cut=cuts)
def test_damaged_files_are_read_or_refused_in_one_line(originals, tmp_path, suffix, changes, cut):
    if suffix not in originals:
        pytest.skip(f"no .sm4 scan at {REAL_DIR}")
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(damaged(originals[suffix], changes, cut))
    read_within_bound(path)


@FUZZ
@given(cols=SIZES, rows=SIZES)
def test_sxm_declaring_any_size(originals, tmp_path, cols, rows):
    path = tmp_path / "declared.sxm"
    path.write_bytes(originals[".sxm"].replace(b"16       16", f"{cols}       {rows}".encode(), 1))
    read_within_bound(path)


@FUZZ
@given(cols=SIZES, rows=SIZES, channels=st.integers(-3, 70_000), inflated=st.integers(0, 64 << 20))
def test_createc_declaring_any_size_and_inflating_to_any_size(tmp_path, cols, rows, channels, inflated):
    header = (
        f"[Paramco32]\r\nNum.X / Num.X={cols}\r\nNum.Y / Num.Y={rows}\r\nChannels / Channels={channels}\r\n"
        "Channelselectval / Channelselectval=3\r\nGainZ / GainZ=10\r\nZPiezoconst=19.2\r\n"
        "Gainpreamp / GainPre 10^=9\r\nLength x[A]=50\r\nLength y[A]=50\r\n"
    ).encode()
    body = zlib.compress(bytes(inflated), 9)  # zeros compress ~1000:1: up to 64 MiB from ~64 kB
    path = tmp_path / "declared.dat"
    path.write_bytes(header + b"\x00" * 64 + b"DATA" + body)
    read_within_bound(path)


needs_matrix = pytest.mark.skipif(not (REAL_DIR / MATRIX_IMAGE).is_file(), reason=f"no MATRIX pair in {REAL_DIR}")


@needs_matrix
@FUZZ
@given(changes=edits, cut=cuts, damaged_file=st.sampled_from([MATRIX_IMAGE, MATRIX_PARAMETERS]))
def test_damaged_matrix_image_or_parameter_file(tmp_path, changes, cut, damaged_file):
    # No writer of our own (a file we wrote would prove nothing): the real pair, one of its files damaged.
    image = matrix_pair(tmp_path)
    target = tmp_path / damaged_file
    target.write_bytes(damaged(target.read_bytes(), changes, cut))
    read_within_bound(image)


@needs_matrix
@FUZZ
@given(
    points=st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 70_000),
    lines=st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 70_000),
    both_ways=st.booleans(),
)
def test_matrix_declaring_any_size(tmp_path, points, lines, both_ways):
    read_within_bound(matrix_pair(tmp_path, Points=points, Lines=lines, X_Retrace=1, Y_Retrace=int(both_ways)))


@FUZZ
@given(xres=st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 70_000), yres=st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 70_000))
def test_gwy_declaring_any_size(originals, tmp_path, xres, yres):
    raw = bytearray(originals[".gwy"])
    for name, value in ((b"xres", xres), (b"yres", yres)):
        for found in re.finditer(re.escape(name + b"\0i"), bytes(raw)):  # every channel's
            struct.pack_into("<i", raw, found.end(), value)
    path = tmp_path / "declared.gwy"
    path.write_bytes(bytes(raw))
    read_within_bound(path)


def png(width: int, height: int, bit_depth: int, colour: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zeros_deflated(size: int) -> bytes:
    """A zlib stream of ``size`` zero bytes (deflate's best ratio, ~1000:1), made in chunks."""
    z = zlib.compressobj(9)
    chunk = bytes(min(size, 16 << 20))
    body = [z.compress(chunk[: min(len(chunk), size - done)]) for done in range(0, size, max(len(chunk), 1))]
    return b"".join(body) + z.flush()


BOMB_BYTES = 160 << 20
"""A PNG whose pixel data inflate to its whole declared image is built up to this size (a real bomb)."""


@FUZZ
@example(width=12000, height=12000, bit_depth=8, colour=0, whole=True)  # issue 13: 11.1 GB, 4 min 53 s
@given(
    width=st.integers(0, 2**31 - 1) | st.integers(0, 40_000),
    height=st.integers(0, 2**31 - 1) | st.integers(0, 40_000),
    bit_depth=st.sampled_from([1, 8, 16]),
    colour=st.sampled_from([0, 2, 4, 6]),
    whole=st.booleans(),
)
def test_png_declaring_any_size(tmp_path, width, height, bit_depth, colour, whole):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = height * (1 + (width * channels * bit_depth + 7) // 8)  # filter byte and packed pixels of each row
    path = tmp_path / "declared.png"
    path.write_bytes(png(width, height, bit_depth, colour, zeros_deflated(raw if whole and raw <= BOMB_BYTES else 4096)))
    read_within_bound(path)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy's memmap sizing an absurd shape
@FUZZ
@given(
    shape=st.lists(SIZES, min_size=0, max_size=3), dtype=st.sampled_from(["<f4", "<f8", "|u1", "<c8", "|O"]), payload=st.integers(0, 4096)
)
def test_npy_declaring_any_shape(tmp_path, shape, dtype, payload):
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path = tmp_path / "declared.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(payload))
    read_within_bound(path)
