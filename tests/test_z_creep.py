"""The creep of z at the start of a frame is found and taken off; the surface's own profile across the rows
(steps along the rows, diagonal terraces, an island over some of the columns) is not taken for it."""

import json

import numpy as np
import pytest
from scanfile_helpers import write_sxm

from maed.bridge.streaming import StreamingDenoiser
from maed.denoise import denoise_guarded
from maed.denoise_files import denoise_file, record_notes, result_record
from maed.normalise import PLANE
from maed.scanfiles import ChannelImage, read_channel, scanned_upwards
from maed.z_creep import MIN_ROWS, find_creep, left_in

SIZE = 256


def _lattice(rows: int = SIZE, cols: int = SIZE) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    return np.cos(2 * np.pi * x / 7.0) + np.cos(2 * np.pi * (0.5 * x + 0.87 * y) / 7.0)


def _creep(amplitude: float, tau: float, rows: int = SIZE) -> np.ndarray:
    return amplitude * np.exp(-np.arange(rows) / tau)[:, None]


def _noise(seed: int = 1, sigma: float = 0.3, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, sigma, shape)


def test_creep_over_a_lattice_is_found_measured_and_taken_off():
    surface = _lattice()
    frame = surface + _creep(20.0, 30.0) + _noise()
    creep = find_creep(frame)
    assert creep is not None
    assert creep.from_row == "first"
    assert abs(creep.amplitude / 20.0 - 1) < 0.1
    assert abs(creep.tau_rows / 30.0 - 1) < 0.2
    left = (frame - creep.profile[:, None] - surface).mean(axis=1)
    left -= np.polyval(np.polyfit(np.arange(SIZE), left, 1), np.arange(SIZE))
    assert np.sqrt(np.mean(left**2)) < 0.05 * 20.0


def test_what_a_frame_still_holds_of_a_creep_found_in_the_raw_scan():
    creep = find_creep(_lattice() + _creep(20.0, 30.0) + _noise(13))
    assert creep is not None
    for share in (1.0, 0.3, 0.0):
        assert left_in(_lattice() + share * _creep(20.0, 30.0) + _noise(14), creep) == pytest.approx(share, abs=0.05)


def test_logarithmic_creep_is_mostly_taken_off_too():
    # piezo creep is often modelled as logarithmic in time: no exponential, but close enough over a frame
    rows = np.arange(SIZE, dtype=float)
    creep = -20.0 * np.log1p(rows / 3.0)
    creep = creep - np.polyval(np.polyfit(rows, creep, 1), rows)  # what is left of it about a line
    found = find_creep(_lattice() + creep[:, None] + _noise(3))
    assert found is not None
    left = creep - found.profile
    left -= np.polyval(np.polyfit(rows, left, 1), rows)
    assert np.sqrt(np.mean(left**2)) < 0.25 * np.sqrt(np.mean(creep**2))


def test_a_frame_scanned_upwards_relaxes_from_its_last_row():
    frame = (_lattice() + _creep(-20.0, 40.0) + _noise(2))[::-1]
    creep = find_creep(frame, scanned_up=True)
    assert creep is not None
    assert creep.from_row == "last"
    assert abs(creep.amplitude / -20.0 - 1) < 0.1


def test_a_relaxation_into_the_row_scanned_last_is_no_creep():
    # the piezo relaxes after the move to the frame's start, not towards its end
    assert find_creep((_lattice() + _creep(-20.0, 40.0) + _noise(2))[::-1]) is None


def test_steps_along_the_rows_do_not_hide_the_creep_nor_pass_for_it():
    terraces = 3.0 * (np.arange(SIZE) // 50)[:, None] * np.ones((1, SIZE))
    assert find_creep(terraces + _lattice() + _noise(3)) is None
    creep = find_creep(terraces + _lattice() + _creep(20.0, 25.0) + _noise(3))
    assert creep is not None
    assert abs(creep.amplitude / 20.0 - 1) < 0.1


def test_creep_under_steps_that_cross_the_rows_at_a_small_angle_is_found():
    # Each edge crosses a strip of 64 columns within 11 rows, at other rows in each strip: fitted over a strip's whole
    # profile its staircase takes the amplitude off (a ratio of 0.3 in a strip), the rows' changes fitted robustly
    # leave the edges out.
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    across = y - np.tan(np.radians(10)) * x
    terraces = 25.0 * sum(0.5 * (1 + np.tanh((across - edge) / 3)) for edge in (40, 100, 160, 220))
    creep = find_creep(terraces + _creep(-27.0, 47.0) + _noise(3))
    assert creep is not None
    assert abs(creep.amplitude / -27.0 - 1) < 0.1
    assert find_creep(terraces + _noise(3)) is None


def test_diagonal_terraces_whose_row_profile_is_bowed_are_no_creep():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    distance = (x + y) / np.sqrt(2)
    terraces = 4.0 * np.floor(distance / 40.0)
    # a staircase down then up: its row means bow as a relaxation would
    bowed = np.where(distance < 180, terraces, 2 * 4.0 * np.floor(180 / 40.0) - terraces)
    assert find_creep(bowed + _noise(4)) is None


def test_a_relaxation_that_part_of_the_columns_show_is_the_surface():
    # Three strips of four show it, so the strips' median (the shared profile) is a relaxation through and through
    # (0.996 of it about a line, 24 rows): only the strip that does not move tells.
    left = (np.arange(SIZE) < 3 * SIZE // 4)[None, :]
    assert find_creep(_lattice() + _creep(20.0, 30.0) * left + _noise(12)) is None
    assert find_creep(_lattice() + _creep(20.0, 30.0) + _noise(12)) is not None


def test_an_island_over_some_of_the_columns_is_no_creep():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    island = 5.0 * (np.hypot((y - 20) / 40, (x - 50) / 45) < 1)
    assert find_creep(island + _lattice() + _noise(5)) is None


def test_too_few_rows_are_not_judged():
    frame = _lattice(MIN_ROWS) + _creep(20.0, 10.0, MIN_ROWS) + _noise(10, 0.3, (MIN_ROWS, SIZE))
    assert find_creep(frame) is not None
    assert find_creep(frame[: MIN_ROWS - 1]) is None


class _PlaneIdentity:
    """A network that levels nothing and removes nothing: what it is given comes back."""

    name = model = "identity"
    weights_sha256 = "none"
    adapted_from = None
    levelling = PLANE
    size_multiple = 16

    def denoise(self, batch):
        return batch


def test_maed_denoise_takes_the_creep_off_and_says_so(tmp_path):
    # a corrugation that the creep does not dominate: the rows are not aligned, which would take the creep off too
    surface = 4.0 * _lattice()
    scan = surface + _creep(12.0, 35.0) + _noise(6, 0.05)
    result = denoise_guarded(scan, _PlaneIdentity())
    error = (result.data - surface).mean(axis=1)
    error -= np.polyval(np.polyfit(np.arange(SIZE), error, 1), np.arange(SIZE))
    assert np.sqrt(np.mean(error**2)) < 0.05 * 12.0
    record = json.loads(json.dumps(result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, _PlaneIdentity(), result)))
    assert record["z_creep"]["taken_off"] is True
    assert abs(record["z_creep"]["amplitude"] / 12.0 - 1) < 0.1
    assert record["z_creep"]["from_row"] == "first" and record["z_creep"]["before_network"] is False  # found in the frame
    (said,) = [note for note in record_notes(tmp_path / "a.sxm", record, "trace") if "creep" in note]
    assert f"from the first row scanned: {record['z_creep']['amplitude']:+.4g}" in said


def test_maed_denoise_says_when_there_was_no_creep(tmp_path):
    result = denoise_guarded(_lattice() + _noise(7, 0.05), _PlaneIdentity())
    record = result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, _PlaneIdentity(), result)
    assert record["z_creep"] == {"taken_off": False}


def test_maed_denoise_seeks_the_creep_from_the_row_a_nanonis_scan_began(tmp_path):
    surface = 4.0e-10 * _lattice()
    scan = surface + 12.0e-10 * np.exp(-np.arange(SIZE) / 35.0)[:, None] + _noise(8, 0.05e-10)
    # stored as scanned, the first line first; the reader turns an upward scan for display
    path = tmp_path / "up.sxm"
    write_sxm(path, (("Z", "m", "both"),), SIZE, SIZE, scan_dir="up", planes=[scan, scan[:, ::-1]])
    assert scanned_upwards(read_channel(path))
    _, record = denoise_file(path, tmp_path / "denoised", _PlaneIdentity())
    assert record["z_creep"]["taken_off"] is True
    assert record["z_creep"]["from_row"] == "last"
    assert abs(record["z_creep"]["amplitude"] / 12.0e-10 - 1) < 0.1
    denoised = np.load(tmp_path / "denoised.npy")
    error = (denoised - surface[::-1]).mean(axis=1)
    error -= np.polyval(np.polyfit(np.arange(SIZE), error, 1), np.arange(SIZE))
    assert np.sqrt(np.mean(error**2)) < 0.05 * 12.0e-10


def test_the_final_live_frame_of_an_upward_scan_takes_the_creep_off_its_bottom_rows():
    surface = 4.0 * _lattice()
    scanned = surface + _creep(12.0, 35.0) + _noise(9, 0.05)  # acquisition order: the first line first
    stream = StreamingDenoiser(SIZE, SIZE, "up")
    final = stream.final(scanned[::-1], SIZE, _PlaneIdentity())  # the frame as displayed: the first line at the bottom
    assert stream.z_creep["taken_off"] is True and stream.z_creep["from_row"] == "last"
    error = (final - surface[::-1]).mean(axis=1)
    error -= np.polyval(np.polyfit(np.arange(SIZE), error, 1), np.arange(SIZE))
    assert np.sqrt(np.mean(error**2)) < 0.05 * 12.0


def test_a_matrix_up_frame_was_scanned_bottom_first_and_its_down_frame_top_first():
    assert scanned_upwards(_image("matrix", "Z"))
    assert not scanned_upwards(_image("matrix", "Z down"))
    assert not scanned_upwards(_image("createc", "Z"))


def _image(format_: str, name: str) -> ChannelImage:
    return ChannelImage(np.zeros((4, 4)), name, "trace", "m", (1e-9, 1e-9), {}, format_)


def test_a_frame_of_three_columns_is_judged_one_strip_a_column():
    frame = _lattice(SIZE, 3) + _creep(20.0, 30.0) + _noise(11, 0.3, (SIZE, 3))
    creep = find_creep(frame)
    assert creep is not None and abs(creep.amplitude / 20.0 - 1) < 0.15
