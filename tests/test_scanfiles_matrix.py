"""Omicron MATRIX images read with their parameter file, every value checked against two independent
readers on the real pair: access2thematrix 0.4.4 (bit for bit) and Gwyddion 2.62 (to rounding).

Neither is a dependency: their values were read once from the same files and are pinned here
(docs/files.md says how). Up/down and stopped scans are read from copies of the real pair whose
parameter file says so, checked against the stored counts.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from scanfile_helpers import MATRIX_IMAGE, MATRIX_PARAMETERS, REAL_DIR, matrix_pair

from maed.io import ScanError, read_scan
from maed.scanfiles import ScanFileError, detect_format, read_channel, read_file

needs_matrix = pytest.mark.skipif(not (REAL_DIR / MATRIX_IMAGE).is_file(), reason=f"no MATRIX pair in {REAL_DIR}")

ACCESS2THEMATRIX_SHA256 = {
    # SHA-256 of access2thematrix's forward/up and backward/up images as float64, rows turned top first
    "trace": "be1d5c1bbfe3f51743bfe44737ca5d20ae199f2c4adab4c8bce92f48e3d1f9a5",
    "retrace": "76a34e5d66b6ec0a3b2b31cd52f09b11b3bf36f5b9cb4e879f45bf5e305f0850",
}
GWYDDION = {
    # Z TraceUp / RetraceUp of ``gwyddion --convert-to-gwy``: [0, 0], [0, -1], [-1, 0], [200, 123], mean, std
    "trace": (
        -5.114040449999999e-07,
        -5.123383158333333e-07,
        -5.1307076625e-07,
        -5.126837958333333e-07,
        -5.12759951432724e-07,
        5.334144035803312e-10,
    ),
    "retrace": (
        -5.1140357875e-07,
        -5.1234715375e-07,
        -5.130563212499999e-07,
        -5.126597370833334e-07,
        -5.127590343641927e-07,
        5.317503308966717e-10,
    ),
}
Z_FACTOR = 2.4e15
"""Counts per metre of Z (the parameter file's TFF_Linear1D, offset 0), as both readers apply it."""
DATA_AT = 104
"""Where the image file's int32 counts begin (after the bricklet, description and data records' headers)."""


@needs_matrix
def test_the_real_pair_matches_access2thematrix_and_gwyddion():
    scan = read_file(REAL_DIR / MATRIX_IMAGE)
    assert detect_format((REAL_DIR / MATRIX_IMAGE).read_bytes()[:64]) == "matrix"
    assert (scan.format, scan.topograph, scan.feedback) == ("matrix", "Z", True)
    assert [image.key for image in scan.images] == [("Z", "trace", "m"), ("Z", "retrace", "m")]
    for image in scan.images:
        assert image.data.shape == (400, 400) and image.scan_range == (1e-7, 1e-7)  # PROVENANCE: 400x400, 100 nm
        assert hashlib.sha256(image.data.tobytes()).hexdigest() == ACCESS2THEMATRIX_SHA256[image.pass_]
        d = image.data
        np.testing.assert_allclose((d[0, 0], d[0, -1], d[-1, 0], d[200, 123], d.mean(), d.std()), GWYDDION[image.pass_], rtol=1e-12)
    header = scan.images[0].header  # the bias was changed from 1.5 V before the scan: the replay gives 0.6
    assert header["GapVoltageControl.Voltage"].startswith("0.6") and header["Regulator.Setpoint_1"] == "3e-10 Ampere"


@needs_matrix
def test_layout_orientation_and_retrace_against_the_stored_counts():
    counts = np.frombuffer((REAL_DIR / MATRIX_IMAGE).read_bytes(), "<i4", offset=DATA_AT).reshape(400, 2, 400)
    trace, retrace = read_file(REAL_DIR / MATRIX_IMAGE).images
    # Up scan: the first stored line is the bottom row; retrace lines are stored right to left.
    np.testing.assert_array_equal(trace.data, counts[::-1, 0] / Z_FACTOR)
    np.testing.assert_array_equal(retrace.data, counts[::-1, 1, ::-1] / Z_FACTOR)
    levelled = [d - d.mean(axis=1, keepdims=True) for d in (trace.data, retrace.data)]
    aligned = np.corrcoef(levelled[0].ravel(), levelled[1].ravel())[0, 1]
    assert aligned > np.corrcoef(levelled[0].ravel(), levelled[1][:, ::-1].ravel())[0, 1] + 0.1


@needs_matrix
def test_up_and_down_frames(tmp_path):
    # The parameter file says the slow axis was scanned back too, over 200 lines: 200 up, then 200 down.
    path = matrix_pair(tmp_path, Lines=200, Y_Retrace=1)
    counts = np.frombuffer(path.read_bytes(), "<i4", offset=DATA_AT).reshape(400, 2, 400)
    scan = read_file(path)
    assert [image.key[:2] for image in scan.images] == [("Z", "trace"), ("Z", "retrace"), ("Z down", "trace"), ("Z down", "retrace")]
    np.testing.assert_array_equal(scan.channel("Z").data, counts[199::-1, 0] / Z_FACTOR)  # bottom line first
    np.testing.assert_array_equal(scan.channel("Z down").data, counts[200:, 0] / Z_FACTOR)  # top line first
    np.testing.assert_array_equal(scan.channel("Z down", "retrace").data, counts[200:, 1, ::-1] / Z_FACTOR)


@needs_matrix
def test_a_stopped_scan_keeps_its_size_with_the_rest_empty(tmp_path):
    path = matrix_pair(tmp_path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<i", raw, DATA_AT - 8 - 56 + 24, 100 * 800)  # the description's count: 100 lines stored
    path.write_bytes(bytes(raw))
    z = read_channel(path)
    assert z.data.shape == (400, 400)
    assert z.measured_rows.tolist() == [False] * 300 + [True] * 100  # an up scan fills from the bottom
    assert read_scan(path).data.shape == (400, 400)


@needs_matrix
def test_one_line_errors(tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / MATRIX_IMAGE).symlink_to(REAL_DIR / MATRIX_IMAGE)
    with pytest.raises(ScanFileError, match=rf"{MATRIX_IMAGE}: its parameter file 20201111_0001.mtrx is not beside it$"):
        read_file(alone / MATRIX_IMAGE)
    (alone / "renamed.Z_mtrx").symlink_to(REAL_DIR / MATRIX_IMAGE)
    with pytest.raises(ScanFileError, match="not named as MATRIX names its images"):
        read_file(alone / "renamed.Z_mtrx")
    with pytest.raises(ScanError, match="an Omicron MATRIX parameter file, not an image"):
        read_scan(REAL_DIR / MATRIX_PARAMETERS)
    other = tmp_path / "other"
    other.mkdir()
    (other / "20201111--4_2.Z_mtrx").symlink_to(REAL_DIR / MATRIX_IMAGE)  # a name the parameters never give
    (other / MATRIX_PARAMETERS).symlink_to(REAL_DIR / MATRIX_PARAMETERS)
    with pytest.raises(ScanFileError, match="its parameter files never mention it"):
        read_file(other / "20201111--4_2.Z_mtrx")
    with pytest.raises(ScanFileError, match="over the budget"):
        read_file(matrix_pair(tmp_path, Points=100_000, Lines=100_000))
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / MATRIX_IMAGE).symlink_to(REAL_DIR / MATRIX_IMAGE)
    (cut / MATRIX_PARAMETERS).write_bytes((REAL_DIR / MATRIX_PARAMETERS).read_bytes()[:200_000])
    with pytest.raises(ScanFileError, match=rf"{MATRIX_IMAGE}: its parameter file {MATRIX_PARAMETERS} is damaged \("):
        read_file(cut / MATRIX_IMAGE)  # the image is whole: the message names the file that is not
