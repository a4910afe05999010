"""Instrument scan files: the real scans read at the size, range and units their headers give;
small Nanonis files written here pin orientation (up and down scans, backward mirroring),
channel choice, incomplete scans and errors; Gwyddion output keeps size, range, units and NaN rows."""

import dataclasses
import re
import warnings
import zlib

import gwyfile
import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, REAL_SCANS, needs_real, stored_plane, write_createc, write_sxm

from maed.scanfiles import (
    MAX_FILE_BYTES,
    PASS_ALIASES,
    ScanFileError,
    detect_format,
    known_retrace,
    list_channels,
    read_channel,
    read_file,
    scan_order_known,
    scanned_upwards,
    write_gwy,
)


def _header(name: str) -> str:
    raw = (REAL_DIR / name).read_bytes()
    return raw[: raw.find(b"\x00") if name.endswith(".dat") else raw.find(b"\x1a\x04")].decode("latin-1")


def _field(header: str, key: str) -> list[float]:
    """Numbers after a Nanonis ``:KEY:`` line or in a Createc ``key=value`` line, found by regex."""
    match = re.search(rf"^:{re.escape(key)}:\s*\n(.*)$", header, re.M) or re.search(rf"^{re.escape(key)}=(.*)$", header, re.M)
    return [float(v) for v in match.group(1).split()]


def _data_info(header: str) -> list[tuple[str, str, str]]:
    """(name, pass, unit) of every stored image, from the ``:DATA_INFO:`` table of an .sxm header."""
    table = re.search(r"^:DATA_INFO:\s*\n(.*?)\n\s*\n", header, re.M | re.S).group(1).splitlines()
    columns = table[0].split()
    keys = []
    for line in table[1:]:
        row = dict(zip(columns, line.split()))
        passes = ("trace", "retrace") if row["Direction"] == "both" else (PASS_ALIASES[row["Direction"]],)
        keys += [(row["Name"], pass_, row["Unit"]) for pass_ in passes]
    return keys


def _levelled(image: np.ndarray) -> np.ndarray:
    """The measured rows of ``image``, each less its own mean (line offsets would swamp the rest)."""
    rows = image[np.isfinite(image).all(axis=1)]
    return rows - rows.mean(axis=1, keepdims=True)


@needs_real
@pytest.mark.parametrize("name", [n for n in REAL_SCANS if n.endswith(".sxm")] or ["absent"])  # skipped, with the reason
def test_real_nanonis_scans_match_their_header(name):
    raw = (REAL_DIR / name).read_bytes()
    header = _header(name)
    cols, rows = (int(v) for v in _field(header, "SCAN_PIXELS"))
    width, height = _field(header, "SCAN_RANGE")
    # The channels are whatever the file's own :DATA_INFO: lists, in file order; every real scan
    # here has the topograph and the current, both passes.
    keys = _data_info(header)
    assert list_channels(REAL_DIR / name) == keys
    assert {("Z", "trace", "m"), ("Z", "retrace", "m"), ("Current", "trace", "A"), ("Current", "retrace", "A")} <= set(keys)
    # Decoded here from the bytes: big-endian float32 after 0x1A 0x04, image after image, each in
    # scan order; the file holds exactly the images its table lists.
    stored = np.frombuffer(raw, ">f4", offset=raw.index(b"\x1a\x04", raw.index(b":SCANIT_END:")) + 2)
    assert stored.size == len(keys) * rows * cols
    stored = stored.reshape(len(keys), rows, cols)
    up = re.search(r"^:SCAN_DIR:\s*\n\s*(\w+)", header, re.M).group(1) == "up"
    scan = read_file(REAL_DIR / name)
    for image, plane in zip(scan.images, stored, strict=True):
        assert image.data.shape == (rows, cols) and image.data.dtype == np.float64
        assert image.scan_range == (width, height)
        assert np.isfinite(image.data).all()
        # Shown as the instrument shows it: an up scan (first line at the bottom) turned over,
        # backward lines (recorded right to left) mirrored.
        expected = plane[::-1] if up else plane
        np.testing.assert_array_equal(image.data, expected[:, ::-1] if image.pass_ == "retrace" else expected)
    # Physical units, not raw volts: with the feedback on, the current is of the size of the Z
    # controller's setpoint (its sign follows the bias; a coarse 5 um scan tracks loosely); the Z
    # channel is near the Z the controller reported on saving, where the header has it.
    controller = dict(zip(*(row.strip().split("\t") for row in header.split(":Z-CONTROLLER:\n")[1].splitlines()[:2])))
    if controller["on"] == "1":
        setpoint = float(controller["Setpoint"].split()[0])
        assert setpoint / 2 < abs(np.median(scan.channel("current").data)) < 2 * setpoint
    if ":Z-Controller>Z (m):" in header:
        assert abs(np.mean(scan.channel().data) - _field(header, "Z-Controller>Z (m)")[0]) < 1e-9


def _createc_marker(raw: bytes) -> int:
    """Where the data begin: the ``DATA`` that a zlib stream follows (the header text may hold
    ``DATA`` too, as in a path ``...\\STMDATA\\...``; the offset differs between files)."""
    match = re.search(rb"DATA(?=\x78[\x01\x5e\x9c\xda])", raw)
    assert match and match.start() > raw.find(b"\x00") > 0  # after the header text and its NUL padding
    return match.end()


@needs_real
@pytest.mark.parametrize("name", [n for n in REAL_SCANS if n.endswith(".dat")] or ["absent"])  # skipped, with the reason
def test_real_createc_scans_match_their_header(name):
    raw = (REAL_DIR / name).read_bytes()
    header = _header(name)
    rows, cols = int(_field(header, "Num.Y / Num.Y")[0]), int(_field(header, "Num.X / Num.X")[0])
    width = _field(header, "Length x[A]")[0] * 1e-10
    # The channels from the header: the Channelselectval bits (0: Z, 1: current) and, when
    # Channels is twice their number, all of them forward and then all backward.
    stored_count = int(_field(header, "Channels / Channels")[0])
    mask = int(_field(header, "Channelselectval / Channelselectval")[0])
    names = [{0: ("Z", "m"), 1: ("Current", "A")}[bit] for bit in range(32) if mask >> bit & 1]
    passes = {len(names): ("trace",), 2 * len(names): ("trace", "retrace")}[stored_count]
    keys = [(name_, pass_, unit) for pass_ in passes for name_, unit in names]
    scan = read_file(REAL_DIR / name)
    assert [image.key for image in scan.images] == keys
    assert ("Z", "trace", "m") in keys and ("Current", "trace", "A") in keys
    for image in scan.images:
        assert image.data.shape == (rows, cols) and image.data.dtype == np.float64
        assert image.scan_range[0] == pytest.approx(width)

    # Decoded here from the bytes: a dummy value, then the images in the order above.
    counts = np.frombuffer(zlib.decompress(raw[_createc_marker(raw) :]), "<f4")
    assert counts[0] == 0 and counts.size >= 1 + stored_count * rows * cols
    planes = counts[1 : 1 + stored_count * rows * cols].reshape(stored_count, rows, cols)
    measured = ~(planes == 0).all(axis=(0, 2))  # a stopped scan leaves 0 in every channel of its rows
    assert measured.any()
    for image, plane in zip(scan.images, planes, strict=True):
        assert (image.measured_rows == measured).all() and np.isnan(image.data[~measured]).all()
        # Pixel for pixel the stored counts times one positive scale: rows top first and backward
        # lines already left to right, nothing is flipped.
        largest = np.unravel_index(np.argmax(np.abs(plane[measured])), plane[measured].shape)
        scale = image.data[measured][largest] / plane[measured][largest]
        assert scale > 0
        np.testing.assert_allclose(image.data[measured], plane[measured] * scale, rtol=1e-6, atol=0)
    # Heights: the DAC counts scaled as the header's own calibration Dacto[A]z x GainZ says,
    # within the rounding of Dacto[A]z to the digits it is written with.
    dac_to_a = re.search(r"^Dacto\[A\]z=\s*(\S+)", header, re.M).group(1)
    rounding = 0.5 * 10.0 ** -len(dac_to_a.partition(".")[2]) / float(dac_to_a)
    per_count = float(dac_to_a) * _field(header, "GainZ / GainZ")[0] * 1e-10
    for pass_, plane in zip(passes, planes[names.index(("Z", "m")) :: len(names)]):
        z = scan.channel("Z", pass_).data
        np.testing.assert_allclose(z[measured], plane[measured] * per_count, rtol=rounding)
    # Currents in amperes, near the feedback setpoint (given in pA) in size; the sign follows the bias.
    current = scan.channel("Current").data
    assert abs(np.mean(current[measured])) == pytest.approx(_field(header, "FBLogIset")[0] * 1e-12, rel=0.1)


@needs_real
@pytest.mark.parametrize("name", [n for n in REAL_SCANS if n.endswith((".sxm", ".dat"))] or ["absent"])
def test_real_backward_images_overlay_the_forward_ones(name):
    # Every real .sxm and .dat holds both passes: read in one orientation, the backward image
    # matches the forward one better than its mirror image does (Nanonis stores backward lines
    # right to left, Createc already left to right). The topograph, unless it is flat (a
    # constant-height scan), then the current.
    scan = read_file(REAL_DIR / name)
    channel = scan.topograph if np.nanmax(scan.channel().data) > np.nanmin(scan.channel().data) else "Current"
    forward, backward = (_levelled(scan.channel(channel, d).data) for d in ("trace", "retrace"))
    aligned = np.corrcoef(forward.ravel(), backward.ravel())[0, 1]
    mirrored = np.corrcoef(forward.ravel(), backward[:, ::-1].ravel())[0, 1]
    assert aligned > 0.3 and aligned > mirrored + 0.1


@needs_real
@pytest.mark.parametrize(
    ("name", "measured"), [("createc_scan_step_20nm.dat", 330), ("A200619.213320.dat", 512 - 283), ("A200622.190818.dat", 512 - 150)]
)
def test_stopped_createc_scans_keep_their_unmeasured_rows_empty(name, measured):
    if not (REAL_DIR / name).is_file():
        pytest.skip(f"{name} is not in {REAL_DIR}")
    z = read_channel(REAL_DIR / name)  # PROVENANCE: the rows after the first ``measured`` hold 0
    assert z.measured_rows.sum() == measured
    assert z.measured_rows[:measured].all() and np.isnan(z.data[measured:]).all()


@needs_real
def test_real_rhk_scan_matches_spym_and_gwyddion():
    scan = read_file(REAL_DIR / "hopg_300k_2020_08_11_16_04_06_999.sm4")
    assert scan.topograph == "Topography"
    assert {image.key for image in scan.images} == {
        (name, pass_, unit)
        for name, unit in (("Topography", "m"), ("Current", "A"), ("LIA Current", "A"))
        for pass_ in ("trace", "retrace")
    }
    z = scan.channel()
    assert z.data.shape == (256, 256) and z.scan_range == pytest.approx((1e-7, 1e-7))  # 256 x 3.90625e-10 m
    # Values read with spym 0.9.2 and Gwyddion 2.62 from the same file (both agree to the last bit).
    assert z.data[0, 0] == pytest.approx(-3.75705e-07, rel=1e-5)
    assert np.mean(z.data) == pytest.approx(-3.73923e-07, rel=1e-5)
    assert np.mean(scan.channel("Current").data) == pytest.approx(4.99698e-10, rel=1e-5)  # setpoint 500 pA


@pytest.mark.parametrize("scan_dir", ["down", "up"])
def test_orientation_of_up_and_down_scans_and_backward_lines(tmp_path, scan_dir):
    stored = write_sxm(tmp_path / "s.sxm", scan_dir=scan_dir)
    forward = read_channel(tmp_path / "s.sxm")
    backward = read_channel(tmp_path / "s.sxm", "Z", "retrace")
    # Rows are stored in scan order: an up scan began at the bottom, so it is turned over;
    # backward lines run right to left and are mirrored onto the forward ones.
    rows = slice(None, None, -1) if scan_dir == "up" else slice(None)
    np.testing.assert_array_equal(forward.data, stored[0][rows])
    np.testing.assert_array_equal(backward.data, stored[1][rows, ::-1])


def test_channels_units_shape_and_range_of_a_multichannel_file(tmp_path):
    stored = write_sxm(tmp_path / "s.sxm", rows=12, cols=20, scan_range=(4e-9, 2e-9))
    assert list_channels(tmp_path / "s.sxm") == [("Z", "trace", "m"), ("Z", "retrace", "m"), ("Current", "trace", "A")]
    z = read_channel(tmp_path / "s.sxm")  # default: the topograph, forward
    assert (z.name, z.pass_, z.unit, z.data.shape) == ("Z", "trace", "m", (12, 20))
    assert (z.width, z.height) == (4e-9, 2e-9) and z.format == "nanonis"
    assert z.header["COMMENT"] == "written by a test\nsecond line" and z.header["SCAN_DIR"] == "down"
    current = read_channel(tmp_path / "s.sxm", "current")  # names match whatever their case
    np.testing.assert_array_equal(current.data, stored[2])
    assert current.unit == "A"


def test_wrong_channel_or_pass_is_a_one_line_error(tmp_path):
    write_sxm(tmp_path / "s.sxm")
    with pytest.raises(ScanFileError, match=r"s\.sxm: no channel 'Bias'; channels: Z, Current"):
        read_channel(tmp_path / "s.sxm", "Bias")
    with pytest.raises(ScanFileError, match="'Current' has no retrace"):
        read_channel(tmp_path / "s.sxm", "Current", "retrace")
    with pytest.raises(ScanFileError, match="unknown pass 'sideways'"):
        read_channel(tmp_path / "s.sxm", "Z", "sideways")
    # The vendors' words name the passes too.
    np.testing.assert_array_equal(
        read_channel(tmp_path / "s.sxm", "Z", "backward").data, read_channel(tmp_path / "s.sxm", "Z", "retrace").data
    )
    write_sxm(tmp_path / "noz.sxm", channels=(("Bias", "V", "both"),))
    with pytest.raises(ScanFileError, match="no topograph channel; choose one of Bias"):
        read_channel(tmp_path / "noz.sxm")


def test_rows_never_scanned_stay_nan(tmp_path):
    planes = [stored_plane(i, 16, 16) for i in range(3)]
    for p in planes:
        p[10:] = np.nan  # Nanonis stores the rows of a stopped scan as NaN
    write_sxm(tmp_path / "s.sxm", rows=16, cols=16, planes=planes)
    z = read_channel(tmp_path / "s.sxm")
    assert z.measured_rows.tolist() == [True] * 10 + [False] * 6


def test_format_is_told_by_content_not_extension(tmp_path):
    write_sxm(tmp_path / "renamed.dat")
    assert read_file(tmp_path / "renamed.dat").format == "nanonis"
    assert detect_format(b"[Paramco32]\r\nDAC-Type=20bit") == "createc"
    assert detect_format(b"\x38\x00" + "STiMage 005.006 1".encode("utf-16-le")) == "rhk"
    (tmp_path / "fake.sxm").write_text("just some text")
    with pytest.raises(ScanFileError, match="fake.sxm: not a scan file of a known instrument"):
        read_file(tmp_path / "fake.sxm")


def test_damaged_files_are_one_line_errors(tmp_path):
    write_sxm(tmp_path / "s.sxm")
    raw = (tmp_path / "s.sxm").read_bytes()
    (tmp_path / "short.sxm").write_bytes(raw[:-100])
    with pytest.raises(ScanFileError, match="short.sxm: truncated"):
        read_file(tmp_path / "short.sxm")
    (tmp_path / "bad.dat").write_bytes(b"[Paramco32]\r\nNum.X=8\r\nNum.Y=8\r\nChannels=2\r\nChannelselectval=1\r\nDATAnot zlib")
    with pytest.raises(ScanFileError, match="bad.dat: Createc data do not decompress"):
        read_file(tmp_path / "bad.dat")
    (tmp_path / "bad.sm4").write_bytes(b"\x38\x00" + "STiMage 005.006 1".encode("utf-16-le") + b"\x01\x00")
    with pytest.raises(ScanFileError, match=r"bad.sm4: damaged RHK .sm4 file \(error"):
        read_file(tmp_path / "bad.sm4")


@needs_real
@pytest.mark.parametrize(("name", "kind"), [("A200306.161609.dat", "Createc .dat"), ("hopg_300k_2020_08_11_16_04_06_999.sm4", "RHK .sm4")])
def test_a_real_file_cut_short_is_said_to_be_truncated(tmp_path, name, kind):
    (tmp_path / name).write_bytes((REAL_DIR / name).read_bytes()[:30000])
    with pytest.raises(ScanFileError, match=f"{re.escape(name)}: truncated {re.escape(kind)} file: it ends before the images"):
        read_file(tmp_path / name)


def test_gwy_keeps_both_images_to_scale_with_unmeasured_rows_masked(tmp_path):
    planes = [stored_plane(i, 16, 24) for i in range(3)]
    planes[0][12:] = np.nan
    write_sxm(tmp_path / "s.sxm", rows=16, cols=24, scan_range=(6e-9, 4e-9), planes=planes)
    z = read_channel(tmp_path / "s.sxm")
    smooth = z.data * 0.5
    write_gwy(tmp_path / "s.gwy", z, {"Z forward (raw)": z.data, "Z forward (denoised)": smooth})

    fields = gwyfile.util.get_datafields(gwyfile.load(str(tmp_path / "s.gwy")))
    assert list(fields) == ["Z forward (raw)", "Z forward (denoised)"]
    container = gwyfile.load(str(tmp_path / "s.gwy"))
    for i, (title, expected) in enumerate((("Z forward (raw)", z.data), ("Z forward (denoised)", smooth))):
        field = fields[title]
        assert field.data.shape == (16, 24) and (field.xreal, field.yreal) == (6e-9, 4e-9)
        assert field["si_unit_xy"]["unitstr"] == "m" and field["si_unit_z"]["unitstr"] == "m"
        assert np.isfinite(field.data).all()  # Gwyddion cannot show NaN: filled, and masked
        np.testing.assert_array_equal(field.data[:12], expected[:12])
        mask = container[f"/{i}/mask"].data
        assert mask[12:].all() and not mask[:12].any()
        assert container[f"/{i}/meta"]["SCAN_DIR"] == "down"


def test_createc_scaling_layout_and_stopped_scans(tmp_path):
    rows, cols = 10, 16
    z_counts = np.full((rows, cols), 1000.0)
    i_counts = np.full((rows, cols), 2000.0)
    z_back, i_back = z_counts + 1, i_counts + 1
    for counts in (z_counts, i_counts, z_back, i_back):
        counts[7:] = 0  # never measured: 0 in every channel
    write_createc(tmp_path / "s.dat", [z_counts, i_counts, z_back, i_back], channel_mask=3, gain_z=3)
    scan = read_file(tmp_path / "s.dat")
    assert [image.key for image in scan.images] == [
        ("Z", "trace", "m"),
        ("Current", "trace", "A"),
        ("Z", "retrace", "m"),
        ("Current", "retrace", "A"),
    ]
    volts = 20 / 2**20
    z = scan.channel()
    assert z.data[0, 0] == pytest.approx(1000 * volts * 19.2 * 3 * 1e-10)  # Z piezo constant in Å/V, Z gain 3
    assert scan.channel("Current").data[0, 0] == pytest.approx(2000 * volts / 1e9)  # preamplifier 10^9 V/A
    assert scan.channel("Z", "retrace").data[0, 0] == pytest.approx(1001 * volts * 19.2 * 3 * 1e-10)
    assert z.measured_rows.tolist() == [True] * 7 + [False] * 3 and np.isnan(z.data[7:]).all()
    assert z.scan_range == pytest.approx((50e-10, 50e-10 * rows / cols))

    write_createc(tmp_path / "forward.dat", [z_counts], channel_mask=1)  # topograph only, forward only
    assert list_channels(tmp_path / "forward.dat") == [("Z", "trace", "m")]
    write_createc(tmp_path / "odd.dat", [z_counts] * 3, channel_mask=3)
    with pytest.raises(ScanFileError, match="odd.dat: 3 stored images do not fit the 2 selected channels"):
        read_file(tmp_path / "odd.dat")


def test_an_uncompressed_createc_file_reads_as_the_compressed_one(tmp_path):
    """``[Paramet32]`` holds the values a ``[Paramco32]`` file compresses (here from byte 16384 on, with no ``DATA``
    marker): the same images. A file cut short says so; a 16-bit ``[Parameter]`` file is refused in one line."""
    rows, cols = 10, 16
    planes = [np.arange(rows * cols, dtype=float).reshape(rows, cols) + k for k in (1, 2, 3, 4)]
    for counts in planes:
        counts[7:] = 0  # never measured
    for compressed in (True, False):
        write_createc(tmp_path / f"{compressed}.dat", planes, compressed=compressed)
    packed, plain = (read_file(tmp_path / f"{compressed}.dat") for compressed in (True, False))
    assert [image.key for image in plain.images] == [image.key for image in packed.images]
    for a, b in zip(packed.images, plain.images, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    assert np.isnan(plain.channel().data[7:]).all() and np.isfinite(plain.channel().data[:7]).all()
    raw = (tmp_path / "False.dat").read_bytes()
    (tmp_path / "short.dat").write_bytes(raw[: 16384 + 4 * rows * cols])
    with pytest.raises(ScanFileError, match="short.dat: truncated: 4 images of 10x16"):
        read_file(tmp_path / "short.dat")
    # With no stream to check them by, values are read only where the header ends by byte 16384: a header text that
    # runs past it, or a DATA marker across it, would shift them silently.
    header = raw[: raw.find(b"\x00")]
    (tmp_path / "long.dat").write_bytes(header + b"x" * 16384 + b"\x00DATA" + raw[16384:])
    (tmp_path / "across.dat").write_bytes(header.ljust(16382, b"\x00") + b"DATA" + raw[16384:])
    for name in ("long.dat", "across.dat"):
        with pytest.raises(ScanFileError, match=f"{name}: uncompressed Createc header does not end by byte 16384"):
            read_file(tmp_path / name)
    (tmp_path / "old.dat").write_bytes(raw.replace(b"[Paramet32]", b"[Parameter]", 1))
    with pytest.raises(ScanFileError, match=r"old.dat: 16-bit Createc file \(\[Parameter\]\)"):
        read_file(tmp_path / "old.dat")


def test_which_files_record_their_scan_order(tmp_path):
    """Nanonis and MATRIX files, and scans the bridge saved (``slow_axis`` in their start), say which pass an image is
    and which way the slow axis ran; Createc, RHK and Gwyddion files are taken as scanned from the top."""
    write_sxm(tmp_path / "up.sxm", scan_dir="up")
    write_createc(tmp_path / "c.dat", [np.arange(64.0).reshape(8, 8) % 7], channel_mask=1)
    nanonis, createc = read_channel(tmp_path / "up.sxm"), read_channel(tmp_path / "c.dat")
    assert scan_order_known(nanonis) and scanned_upwards(nanonis) and known_retrace(nanonis) is False
    assert not scan_order_known(createc) and not scanned_upwards(createc) and known_retrace(createc) is None
    for slow_axis in ("up", "down"):
        saved = dataclasses.replace(nanonis, header={"slow_axis": slow_axis}, format="maed-bridge")
        assert scan_order_known(saved) and scanned_upwards(saved) == (slow_axis == "up")


@needs_real
def test_a_real_createc_scan_stored_uncompressed_reads_alike(tmp_path):
    """No real ``[Paramet32]`` file was at hand: a real ``[Paramco32]`` scan's header up to its ``DATA`` marker (112
    bytes before the usual 16384 in this lab's files) and its values decompressed after it, read as the original."""
    name = "createc_scan_atomic_11nm.dat"
    raw = (REAL_DIR / name).read_bytes()
    marker = _createc_marker(raw)
    assert marker < 16384
    (tmp_path / name).write_bytes(raw[:marker].replace(b"[Paramco32]", b"[Paramet32]", 1) + zlib.decompress(raw[marker:]))
    original, rewritten = read_file(REAL_DIR / name), read_file(tmp_path / name)
    for a, b in zip(original.images, rewritten.images, strict=True):
        assert a.key == b.key
        np.testing.assert_array_equal(a.data, b.data)


def test_declared_sizes_are_checked_before_decoding(tmp_path):
    # A negative or absurd size in a header is refused in one line, before any pixel is read.
    write_sxm(tmp_path / "s.sxm", rows=16, cols=16)
    text = (tmp_path / "s.sxm").read_bytes()
    for name, pixels, message in (("neg", b"-256       256", "declares an image of"), ("huge", b"100000       100000", "over the budget")):
        (tmp_path / f"{name}.sxm").write_bytes(text.replace(b"16       16", pixels, 1))
        with pytest.raises(ScanFileError, match=message):
            read_file(tmp_path / f"{name}.sxm")


def test_a_createc_decompression_bomb_is_cut_at_the_declared_size(tmp_path):
    import tracemalloc
    import zlib as z

    write_createc(tmp_path / "c.dat", [np.ones((16, 16)) * k for k in (1, 2)])
    raw = (tmp_path / "c.dat").read_bytes()
    marker = raw.find(b"DATA", raw.find(b"\x00"))
    bomb = raw[: marker + 4] + z.compress(np.ones(64 * 2**20, dtype="<f4").tobytes(), 9)  # 256 MB inflated
    (tmp_path / "bomb.dat").write_bytes(bomb)
    tracemalloc.start()
    scan = read_file(tmp_path / "bomb.dat")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(bomb) < 1_000_000 and peak < 50 * 2**20
    assert scan.images[0].data.shape == (16, 16)


def test_a_signalling_nan_in_the_data_is_an_unmeasured_pixel_without_a_warning(tmp_path):
    path = tmp_path / "snan.sxm"
    write_sxm(path)
    data = bytearray(path.read_bytes())
    first = data.index(b"\x1a\x04") + 2
    data[first : first + 4] = b"\x7f\xa0\x00\x00"  # a big-endian float32 signalling NaN, as damage can leave
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in cast" reached the user's terminal
        image = read_file(path).images[0]
    assert np.isnan(image.data).sum() == 1


def test_what_a_whole_file_declares_is_budgeted_before_decoding(tmp_path):
    """Found by fuzzing (2026-12-07): each image within its budget, but many of them, a DAC of 10^10 bits (2**bits
    never ended) or no channel at all; each a one-line error before anything is inflated."""
    write_createc(tmp_path / "c.dat", [np.ones((16, 16)) * k for k in (1, 2)])
    text = (tmp_path / "c.dat").read_bytes()
    many = text.replace(b"Num.X / Num.X=16", b"Num.X / Num.X=8192").replace(b"Num.Y / Num.Y=16", b"Num.Y / Num.Y=8192")
    many = many.replace(b"Channels / Channels=2", b"Channels / Channels=64").replace(b"Channelselectval=3", b"Channelselectval=4294967295")
    cases = {
        "many.dat": (many, "pixels over all its images, over the budget"),
        "dac.dat": (text.replace(b"DAC-Type=20bit", b"DAC-Type=10000000000bit"), "DAC-Type '10000000000bit' is no DAC of 8 to 32 bits"),
        "none.dat": (text.replace(b"Channelselectval=3", b"Channelselectval=0"), "selects no channel"),
    }
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ScanFileError, match=re.escape(message)):
            read_file(tmp_path / name)


def test_a_file_over_the_size_budget_is_refused_unread(tmp_path):
    write_sxm(tmp_path / "s.sxm", rows=16, cols=16)
    with open(tmp_path / "s.sxm", "r+b") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk, and reading it would cost 2 GB
    with pytest.raises(ScanFileError, match=f"{MAX_FILE_BYTES + 1:,} bytes, over the budget of {MAX_FILE_BYTES:,} bytes for a scan file"):
        read_file(tmp_path / "s.sxm")


def test_a_byte_after_a_nanonis_files_images_is_no_truncation(tmp_path):
    planes = write_sxm(tmp_path / "s.sxm", rows=16, cols=16)
    with open(tmp_path / "s.sxm", "ab") as f:
        f.write(b"x")
    assert np.array_equal(read_file(tmp_path / "s.sxm").channel("Z", "trace").data, planes[0])


def test_objects_nested_to_hold_a_gwy_file_many_times_over_are_refused(tmp_path):
    import struct

    def component(name: str, kind: str, payload: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + payload

    def gwy_object(name: str, components: list[bytes]) -> bytes:
        body = b"".join(components)
        return name.encode() + b"\0" + struct.pack("<I", len(body)) + body

    # 5 MB nested 60 deep: gwyfile holds a copy per level, 300 MB at once, against a file of 5 MB.
    inner = gwy_object("GwyContainer", [component("big", "D", struct.pack("<I", 5 * 2**17) + bytes(5 * 2**20))])
    for _ in range(60):
        inner = gwy_object("GwyContainer", [component("n", "o", inner)])
    (tmp_path / "deep.gwy").write_bytes(b"GWYP" + gwy_object("GwyContainer", [component("n", "o", inner)]))
    with pytest.raises(ScanFileError, match="objects nested so that decoding would hold"):
        read_file(tmp_path / "deep.gwy")


def test_a_nul_in_a_unit_or_a_title_leaves_the_gwy_output_readable(tmp_path):
    write_sxm(tmp_path / "s.sxm", channels=(("Z", "m\x00x", "both"),), rows=16, cols=16)
    image = read_file(tmp_path / "s.sxm").images[0]
    write_gwy(tmp_path / "out.gwy", image, {"raw\x00 title": image.data})
    (channel,) = read_file(tmp_path / "out.gwy").images
    assert channel.name == "raw title" and channel.unit == "mx" and np.array_equal(channel.data, image.data)
