"""Gwyddion ``.gwy`` files in: a file Gwyddion 2.62 wrote itself, our own output read back, hostile trees.

``tests/data/gwyddion-2.62-small-up.gwy`` is ``gwyddion --convert-to-gwy`` of the synthetic Nanonis scan
``write_sxm(rows=12, cols=20, scan_range=(4e-9, 2e-9), scan_dir="up")`` (no real data): Gwyddion's
titles, units and orientation, which must agree with our Nanonis reader's image of the same scan.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from scanfile_helpers import GWYDDION_FILE, stored_plane, write_sxm

from maed.cli import main
from maed.io import ScanError, read_scan
from maed.scanfiles import read_channel, read_file, write_gwy


def test_a_file_gwyddion_wrote_reads_as_our_nanonis_reader_reads_its_source(tmp_path):
    write_sxm(tmp_path / "small.sxm", rows=12, cols=20, scan_range=(4e-9, 2e-9), scan_dir="up")
    source, gwy = read_file(tmp_path / "small.sxm"), read_file(GWYDDION_FILE)
    assert (gwy.format, gwy.topograph) == ("gwyddion", "Z (Forward)")
    assert [image.key for image in gwy.images] == [
        ("Z (Forward)", "trace", "m"),
        ("Z (Backward)", "trace", "m"),
        ("Current (Forward)", "trace", "A"),
    ]
    for ours, gwyddions in zip(source.images, gwy.images):
        np.testing.assert_array_equal(gwyddions.data, ours.data)  # up scan turned over, backward mirrored
        assert gwyddions.scan_range == (4e-9, 2e-9)
    assert gwy.images[0].header["xy unit"] == "m" and "Bias" in gwy.images[0].header
    assert read_channel(GWYDDION_FILE, "Current (Forward)").unit == "A"


def test_our_own_output_reads_back_with_its_unmeasured_rows_empty(tmp_path):
    planes = [stored_plane(i, 16, 24) for i in range(3)]
    planes[0][12:] = np.nan
    write_sxm(tmp_path / "s.sxm", rows=16, cols=24, scan_range=(6e-9, 4e-9), planes=planes)
    z = read_channel(tmp_path / "s.sxm")
    write_gwy(tmp_path / "s.gwy", z, {"Z trace (raw)": z.data, "Z trace (half)": z.data * 0.5})
    back = read_file(tmp_path / "s.gwy")
    assert [image.name for image in back.images] == ["Z trace (raw)", "Z trace (half)"]
    np.testing.assert_array_equal(back.images[0].data, z.data)  # NaN rows included: masked whole
    assert back.images[1].scan_range == (6e-9, 4e-9) and back.images[1].unit == "m"


def test_a_channel_keyed_with_a_leading_zero_is_read_by_its_own_keys(tmp_path):
    """``/00/data`` names channel 0 as well: it was read as ``/0/data`` and refused as damaged (found by fuzzing)."""
    z = read_channel(GWYDDION_FILE)
    write_gwy(tmp_path / "s.gwy", z, {"Z (raw)": z.data})
    raw = (tmp_path / "s.gwy").read_bytes()
    (tmp_path / "zero.gwy").write_bytes(_resized(raw.replace(b"/0/", b"/00/")))  # the channel's keys, all top-level
    (image,) = read_file(tmp_path / "zero.gwy").images
    assert image.name == "Z (raw)" and np.array_equal(image.data, z.data)


def _resized(raw: bytes) -> bytes:
    """A .gwy whose top container's keys were lengthened: its declared size mended."""
    body = raw[4 + len(b"GwyContainer\0") + 4 :]
    return raw[:4] + b"GwyContainer\0" + struct.pack("<I", len(body)) + body


def test_maed_denoise_takes_a_gwy_file(tmp_path):
    assert main(["denoise", str(GWYDDION_FILE), "-o", str(tmp_path), "--backend", "onnx", "--model", "rt"]) == 0
    out = np.load(tmp_path / "gwyddion-2.62-small-up.npy")
    assert out.shape == (12, 20) and np.isfinite(out).all()
    fields = [image.name for image in read_file(tmp_path / "gwyddion-2.62-small-up.gwy").images]
    # A frame this small falls back: the published channel is named after what was published.
    output = json.loads((tmp_path / "gwyddion-2.62-small-up.json").read_text())["trust"]["output"]
    published = "denoised, rt" if output == "network" else "conservative result: the guard did not trust rt"
    assert fields[:2] == ["Z (Forward) trace (raw)", f"Z (Forward) trace ({published})"]


def _component(raw: bytes, name: bytes) -> int:
    """Where the value of the component ``name`` (a NUL-ended name and a type letter) begins."""
    at = raw.find(name + b"\0")
    assert at > 0
    return at + len(name) + 2


def test_damaged_and_hostile_trees_are_refused_in_one_line(tmp_path):
    raw = GWYDDION_FILE.read_bytes()
    cases = {
        "old.gwy": b"GWYO" + raw[4:],
        "cut.gwy": raw[: len(raw) // 2],
        "tail.gwy": raw + b"junk",
    }
    huge = bytearray(raw)
    struct.pack_into("<i", huge, _component(raw, b"xres"), 100_000)
    struct.pack_into("<i", huge, _component(raw, b"yres"), 100_000)
    cases["huge.gwy"] = bytes(huge)
    wrong = bytearray(raw)
    struct.pack_into("<i", wrong, _component(raw, b"xres"), 21)  # 12 x 21 declared, 12 x 20 stored
    cases["wrong.gwy"] = bytes(wrong)
    # A string list declaring four billion strings: gwyfile alone would loop that many times.
    endless = raw[:4] + b"GwyContainer\0" + struct.pack("<I", 16) + b"/s\0S" + struct.pack("<I", 2**32 - 1) + b"abcdefgh"
    cases["endless.gwy"] = endless
    messages = {}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ScanError) as caught:
            read_scan(tmp_path / name)
        messages[name] = str(caught.value)
        assert "\n" not in messages[name] and messages[name].startswith(str(tmp_path / name))
    assert "older GWYO files are not supported" in messages["old.gwy"]
    assert "over the budget" in messages["huge.gwy"]
    assert "declares 12x21 values and holds 240" in messages["wrong.gwy"]
    assert "a list of 4294967295 items" in messages["endless.gwy"]
