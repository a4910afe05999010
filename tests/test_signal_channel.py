"""The default channel: the topograph, or the current of a constant-height scan, and never a flat image.

The real constant-height scan (``Au_mica_2023_Y_A_diPAMY_195.sxm``: Z-controller off, Z one value)
must give its current by default and say why; a topograph that is a plane (tilt compensation) counts
as flat in every format, header or not; a flat image asked for by name is refused in one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, REAL_SCANS, needs_real, stored_plane, write_createc, write_sxm

from maed.cli import main
from maed.io import ScanError, read_scan
from maed.scanfiles import ScanFileError, is_flat, read_channel, read_file

CONSTANT_HEIGHT = "Au_mica_2023_Y_A_diPAMY_195.sxm"


def tilted_plane(rows: int, cols: int) -> np.ndarray:
    """Z of a constant-height scan with tilt compensation: a plane, stored as float32."""
    r, c = np.indices((rows, cols))
    return (1.7e-8 + 3e-12 * c - 2e-12 * r).astype(np.float32)


def textured(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return (1e-10 * (1 + 0.1 * np.random.default_rng(seed).standard_normal((rows, cols)))).astype(np.float32)


@needs_real
def test_the_real_constant_height_scan_gives_its_current_and_says_why():
    scan = read_file(REAL_DIR / CONSTANT_HEIGHT)
    assert scan.feedback is False and is_flat(scan.channel("Z").data)
    image = read_channel(REAL_DIR / CONSTANT_HEIGHT)
    assert (image.name, image.unit) == ("Current", "A") and not is_flat(image.data)
    assert "Z-controller was off" in read_scan(REAL_DIR / CONSTANT_HEIGHT).channel_why
    with pytest.raises(ScanError, match=r"Z trace is flat .*constant height.*use --channel Current$"):
        read_scan(REAL_DIR / CONSTANT_HEIGHT, "Z")


@needs_real
@pytest.mark.parametrize("name", [n for n in REAL_SCANS if n != CONSTANT_HEIGHT] or ["absent"])
def test_every_other_real_scan_keeps_its_topograph(name):
    scan = read_file(REAL_DIR / name)
    assert scan.feedback is not False
    assert read_channel(REAL_DIR / name).name == scan.topograph
    assert read_scan(REAL_DIR / name).channel_why is None


@pytest.mark.parametrize("z", ["constant", "plane"])
def test_a_flat_topograph_gives_the_current_without_a_header_saying_so(tmp_path, z):
    rows, cols = 16, 20
    flat = np.full((rows, cols), 2e-8, np.float32) if z == "constant" else tilted_plane(rows, cols)
    current = textured(rows, cols)
    write_sxm(tmp_path / "s.sxm", rows=rows, cols=cols, planes=[flat, flat[:, ::-1], current])
    assert read_file(tmp_path / "s.sxm").feedback is None  # our test header has no Z-controller
    scan = read_scan(tmp_path / "s.sxm")
    assert scan.source.name == "Current" and "Z is flat" in scan.channel_why
    np.testing.assert_array_equal(scan.data, current)


def test_a_createc_scan_with_a_flat_topograph_gives_the_current(tmp_path):
    write_createc(tmp_path / "c.dat", [np.full((16, 16), 1234.0), 100 + stored_plane(0, 16, 16) % 7])
    scan = read_scan(tmp_path / "c.dat")
    assert scan.source.name == "Current" and scan.source.format == "createc"


def test_the_header_decides_where_it_says_the_feedback_was_off(tmp_path):
    # Z-controller off in the header: the current, even where Z is not flat (a drifting piezo).
    off = ":Z-CONTROLLER:\n\tName\ton\tSetpoint\n\tlog Current\t0\t2.500E-11 A\n"
    write_sxm(tmp_path / "off.sxm", extra_header=off)
    assert read_file(tmp_path / "off.sxm").feedback is False
    assert read_channel(tmp_path / "off.sxm").name == "Current"
    write_sxm(tmp_path / "on.sxm", extra_header=":Z-Controller>Controller status:\nON\n")
    assert read_file(tmp_path / "on.sxm").feedback is True
    assert read_channel(tmp_path / "on.sxm").name == "Z"


def test_a_flat_image_with_no_current_is_refused_in_one_line(tmp_path):
    write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "forward"),), planes=[tilted_plane(12, 20)])
    with pytest.raises(ScanFileError, match=r"s\.sxm: Z trace is flat \(a plane, nothing to denoise\)$"):
        read_channel(tmp_path / "s.sxm")
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(out), "--backend", "onnx", "--model", "rt"]) == 1
    assert not list(out.glob("s.*"))  # nothing written for it


@needs_real
def test_maed_denoise_prints_and_records_the_channel_it_took(tmp_path, capsys):
    assert (
        main(["denoise", str(REAL_DIR / CONSTANT_HEIGHT), "-o", str(tmp_path), "--backend", "onnx", "--model", "rt", "--threads", "1"]) == 0
    )
    assert "channel Current trace: the Z-controller was off (constant height)" in capsys.readouterr().err
    record = json.loads((tmp_path / f"{CONSTANT_HEIGHT[:-4]}.json").read_text())
    assert record["channel"] == "Current" and "constant height" in record["channel_why"]
    denoised = np.load(tmp_path / f"{CONSTANT_HEIGHT[:-4]}.npy")
    assert not is_flat(denoised.astype(np.float64))
