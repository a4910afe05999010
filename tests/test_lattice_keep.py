"""Lattice peaks confirmed by the other pass, or spanning a 2-D lattice in one pass, are given back to the
network's output; pick-up is not."""

import json

import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, needs_real
from scipy import ndimage

from maed.bridge.streaming import StreamingDenoiser
from maed.denoise import denoise_guarded
from maed.denoise_files import denoise_files, result_record
from maed.io import read_scan
from maed.lattice_keep import BOTH_PASSES, ONE_PASS, _harmonics, lattice_peaks, local_give_back
from maed.noreference import classify_peaks, peak_power
from maed.normalise import PLANE, normalise
from maed.publish import MIN_LATTICE_ROWS

SIZE = 128


def _passes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(trace, retrace, lattice, pick-up of the trace): one hexagonal-ish lattice in both passes,
    white noise of their own, and pick-up whose place in the spectrum differs between the passes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    lattice = sum(np.cos(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / 6.3) for a in (0.2, 0.2 + np.pi / 3, 0.2 + 2 * np.pi / 3))
    # Pick-up in time: a sinusoid along the raster, which runs the other way in the retrace.
    t = y * 2 * SIZE + x
    pickup_trace = 1.5 * np.cos(2 * np.pi * t / 23.7)
    t_retrace = y * 2 * SIZE + SIZE + (SIZE - 1 - x)  # recorded after the trace line, right to left
    pickup_retrace = 1.5 * np.cos(2 * np.pi * t_retrace / 23.7)
    trace = lattice + pickup_trace + rng.normal(0, 1.0, lattice.shape)
    retrace = lattice + pickup_retrace + rng.normal(0, 1.0, lattice.shape)
    return trace, retrace, lattice, pickup_trace


def _eraser(x: np.ndarray) -> np.ndarray:
    """A network that erases everything periodic: a blur far wider than the lattice."""
    return ndimage.gaussian_filter(x, 6)


def _peaks_of(image: np.ndarray) -> np.ndarray:
    from maed.lattice import power_spectrum, significant_peaks

    return significant_peaks(power_spectrum(image))


def test_the_lattice_comes_back_and_the_pickup_stays_removed():
    trace, retrace, lattice, pickup = _passes()
    output = _eraser(trace)
    found = lattice_peaks(trace, output, retrace)
    restored = found.give_back(trace, output)
    true_peaks, pickup_peaks = _peaks_of(lattice), _peaks_of(pickup)
    assert found.peaks >= len(true_peaks)
    before = peak_power(trace, output, true_peaks)
    after = peak_power(trace, restored, true_peaks)
    assert before["kept"] < 0.05
    assert 0.8 <= after["kept"] <= 1.2 and after["in_residual"] <= 0.1
    # The pick-up moved between the passes: it is not given back.
    assert peak_power(trace, restored, pickup_peaks)["kept"] < 0.05
    # What was given back is the lattice, not noise.
    assert np.corrcoef((restored - output).ravel(), lattice.ravel())[0, 1] > 0.9


def test_a_lattice_on_part_of_the_scan_comes_back_there_and_nothing_elsewhere():
    """A lattice over a corner (a substrate beside an island) holds too little of the scan's power for its spectrum:
    windows of the scan find it where both passes show it, and give back nothing where there is none."""
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:192, 0:192].astype(float)
    corner = (y < 64) & (x < 64)
    angles = (0.3, 0.3 + np.pi / 3, 0.3 + 2 * np.pi / 3)
    lattice = np.where(corner, sum(np.cos(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / 5.0) for a in angles), 0.0)
    trace = lattice + rng.normal(0, 0.5, lattice.shape)
    retrace = lattice + rng.normal(0, 0.5, lattice.shape)
    erased = np.zeros_like(trace)
    restored, windows = local_give_back(trace, erased, retrace)
    assert windows >= 1
    inner = np.s_[8:56, 8:56]  # away from the corner's edge, where the windows fade
    assert np.corrcoef(restored[inner].ravel(), lattice[inner].ravel())[0, 1] > 0.8
    away = (y > 100) & (x > 100)
    assert np.sqrt(np.mean(restored[away] ** 2)) < 0.05
    noise_only = local_give_back(rng.normal(0, 1, (192, 192)), erased, rng.normal(0, 1, (192, 192)))
    assert noise_only[1] == 0 and not noise_only[0].any()


def _ring_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Noise whose spectrum is a bump around 0.17 cycles per pixel (about 6 bins wide at 256 pixels): a window's few
    bins show it as a peak here and there."""
    k = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])
    coloured = np.fft.ifft2(np.fft.fft2(rng.normal(0, 1, (size, size))) * np.exp(-(((k - 0.17) / 0.025) ** 2) / 2)).real
    return 3 * coloured / coloured.std() + rng.normal(0, 0.3, (size, size))


def test_a_bump_of_the_noise_spectrum_both_passes_share_is_no_lattice_in_any_window():
    """Each pass its own noise of one colour: windows of 64 pixels see its bump as peaks at the same place in both
    passes (4 windows of this scan did), but the whole frame shows no peak there, so nothing is given back."""
    rng = np.random.default_rng(0)
    trace, retrace = _ring_noise(rng, 256), _ring_noise(rng, 256)
    restored, windows = local_give_back(trace, np.zeros_like(trace), retrace)
    assert windows == 0 and not restored.any()


def test_a_lattice_on_part_of_the_scan_whose_third_reflection_the_rows_alignment_takes_comes_back():
    """A lattice scanned along one of its rows has its third reflection (G1 + G2) on the spectrum's column of zero
    frequency along the rows: a modulation of the rows' levels, which aligning the rows takes off, so no third peak
    can close the triple. Sheared by drift, G1 and G2 are not as long as each other either (``example_FFT.sxm``: the
    substrate's atoms around an island of molecules came out smoothed)."""
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:192, 0:192].astype(float)
    g1, g2 = np.array([0.11, 0.19]), np.array([0.07, -0.19])  # cycles per pixel, (along y, along x)
    wave = lambda g: np.cos(2 * np.pi * (g[0] * y + g[1] * x))  # noqa: E731
    corner = (y < 64) & (x < 64)
    lattice = np.where(corner, wave(g1) + wave(g2), 0.0)  # the third reflection, a row-level modulation, gone
    trace = lattice + rng.normal(0, 0.5, lattice.shape)
    retrace = lattice + rng.normal(0, 0.5, lattice.shape)
    restored, windows = local_give_back(trace, np.zeros_like(trace), retrace)
    assert windows >= 1
    inner = np.s_[8:56, 8:56]
    assert np.corrcoef(restored[inner].ravel(), lattice[inner].ravel())[0, 1] > 0.8


def test_peaks_a_fifth_of_the_grid_apart_are_no_harmonics_of_one_pickup():
    """p F and q F with a common factor name no other pair than their reduced multiples, and on the wrapped grid
    5 a = 5 b holds wherever a - b is a fifth of it: only coprime multiples are sought."""
    a, b = np.array([[-8.95, 12.95]]), np.array([[4.34, 12.63]])  # a - b: 13.3 bins of 64, about a fifth
    assert not _harmonics(a, b, (64, 64))[0]
    f = np.array([[3.1, 7.2]])
    assert _harmonics(2 * f, 3 * f, (64, 64))[0]  # the second and third harmonics of one source


def test_stripes_both_passes_show_over_part_of_the_scan_are_not_taken_for_a_lattice():
    """Within a window few periods fit, and one set of stripes in both passes (pick-up locked to the lines, a
    streak pattern) would pass the passes' test alone: a window's lattice must span two dimensions too."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:192, 0:192].astype(float)
    stripes = np.where((y < 64) & (x < 64), 2 * np.cos(2 * np.pi * (x * 0.8 + y * 0.6) / 6.0), 0.0)
    trace = stripes + rng.normal(0, 0.5, stripes.shape)
    retrace = stripes + rng.normal(0, 0.5, stripes.shape)
    assert len(classify_peaks(trace[:64, :64], retrace[:64, :64])[0])  # the passes alone would call it a lattice
    restored, windows = local_give_back(trace, np.zeros_like(trace), retrace)
    assert windows == 0 and not restored.any()


def test_peaks_found_in_a_frame_turned_over_are_the_peaks_of_the_turned_frame():
    trace, retrace, _, _ = _passes(4)
    found = lattice_peaks(trace, _eraser(trace), retrace).upside_down()
    in_turned = lattice_peaks(trace[::-1], _eraser(trace)[::-1], retrace[::-1])
    assert found.peaks == in_turned.peaks > 0 and np.array_equal(found.mask, in_turned.mask)
    assert len(found.pickup) and sorted(map(tuple, found.pickup.round(9))) == sorted(map(tuple, in_turned.pickup.round(9)))
    one_pass = lattice_peaks(trace, _eraser(trace)).upside_down()
    assert np.array_equal(one_pass.mask, lattice_peaks(trace[::-1], _eraser(trace)[::-1]).mask)


def test_without_a_lattice_nothing_is_given_back():
    rng = np.random.default_rng(1)
    trace, retrace = rng.normal(size=(SIZE, SIZE)), rng.normal(size=(SIZE, SIZE))
    found = lattice_peaks(trace, _eraser(trace), retrace)
    assert found.peaks == 0
    np.testing.assert_array_equal(found.give_back(trace, _eraser(trace)), _eraser(trace))


def test_passes_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        lattice_peaks(np.zeros((32, 32)), np.zeros((32, 32)), np.zeros((31, 32)))


class EraserBackend:
    name, model, size_multiple, weights_sha256 = "eraser", "eraser", 1, "0" * 64
    adapted_from = None

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([[_eraser(image) for image in item] for item in batch]).astype(np.float32)


def _raster_pickup(frequencies: tuple[float, ...], amplitude: float = 1.5) -> np.ndarray:
    """Pick-up in time at ``frequencies`` (cycles per pixel time) with three harmonics each, along the trace's raster."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    t = y * 2 * SIZE + x
    return sum(amplitude / h * np.cos(2 * np.pi * h * f * t) for f in frequencies for h in (1, 2, 3))


def test_one_pass_gives_a_2d_lattice_back_and_not_the_pickup():
    trace, _, lattice, pickup = _passes(3)
    output = _eraser(trace)
    found = lattice_peaks(trace, output)
    assert found.evidence == ONE_PASS and found.peaks >= len(_peaks_of(lattice))
    restored = found.give_back(trace, output)
    assert 0.8 <= peak_power(trace, restored, _peaks_of(lattice))["kept"] <= 1.2
    assert peak_power(trace, restored, _peaks_of(pickup))["kept"] < 0.05


def test_one_pass_gives_nothing_back_for_pickup_from_two_sources_with_harmonics():
    rng = np.random.default_rng(4)
    trace = _raster_pickup((1 / 23.7, 1 / 61.3)) + rng.normal(0, 1.0, (SIZE, SIZE))
    assert len(_peaks_of(trace)) >= 6  # two sources and their harmonics stand out of the noise
    assert lattice_peaks(trace, _eraser(trace)).peaks == 0


def _notch(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A network that removes the spectrum's strong peaks and the noise, and leaves the bins of ``keep`` (a mask of
    the unshifted spectrum) as they were: it erases a lattice's strong reflections but not its weak one."""
    spectrum = np.fft.fft2(image)
    return np.fft.ifft2(np.where(keep, spectrum, np.fft.fft2(_eraser(image)))).real


def _square_lattice() -> tuple[np.ndarray, np.ndarray]:
    """A square lattice whose (1, 1) reflection is weak, and the mask of that reflection's bins."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    g1, g2 = np.array([3.0, 17.0]), np.array([17.0, -3.0])  # cycles per frame, orthogonal
    wave = lambda g: np.cos(2 * np.pi * (g[0] * y + g[1] * x) / SIZE)  # noqa: E731
    closing = np.zeros((SIZE, SIZE), dtype=bool)
    g3 = (g1 + g2).astype(int)
    closing[g3[0] % SIZE, g3[1] % SIZE] = closing[-g3[0] % SIZE, -g3[1] % SIZE] = True
    return wave(g1) + wave(g2) + 0.25 * wave(g1 + g2), ndimage.binary_dilation(closing, iterations=2)


def test_one_pass_closes_a_square_lattice_on_its_weak_reflection_the_network_left_in_place():
    """G1 and G2 removed, G1 + G2 too weak to be a removed peak of its own but in the input: a 2-D lattice."""
    lattice, weak = _square_lattice()
    trace = lattice + np.random.default_rng(9).normal(0, 1.0, lattice.shape)
    output = _notch(trace, weak)
    found = lattice_peaks(trace, output)
    assert found.peaks >= 4
    assert 0.8 <= peak_power(trace, found.give_back(trace, output), _peaks_of(lattice))["kept"] <= 1.2


def test_one_pass_gives_back_a_square_lattice_without_its_weak_reflection():
    """G1 and G2 of equal length at right angles, erased, and no (1, 1) reflection anywhere: a square lattice all
    the same (two pick-up sources would not sit at a symmetry of each other)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    lattice = sum(np.cos(2 * np.pi * (g[0] * y + g[1] * x) / SIZE) for g in ((5.0, 21.0), (21.0, -5.0)))
    trace = lattice + np.random.default_rng(11).normal(0, 1.0, lattice.shape)
    found = lattice_peaks(trace, _eraser(trace))
    assert found.peaks == 4
    assert 0.8 <= peak_power(trace, found.give_back(trace, _eraser(trace)), _peaks_of(lattice))["kept"] <= 1.2


def test_one_pass_gives_nothing_back_for_two_pickup_sources_without_a_sum():
    """Two sources of pick-up are two non-collinear peaks, as G1 and G2 are, but nothing sits at their sum."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    t = y * 2 * SIZE + x
    pickup = 1.5 * np.cos(2 * np.pi * t / 23.7) + 1.5 * np.cos(2 * np.pi * t / 61.3)
    trace = pickup + np.random.default_rng(10).normal(0, 1.0, pickup.shape)
    assert lattice_peaks(trace, _eraser(trace)).peaks == 0


def test_one_pass_does_not_give_back_strong_pickup_whose_sidebands_are_a_lattice_vector_away():
    """Pick-up that the feedback modulates with the lattice: P, P + G and G close a triple, but P is far stronger
    than its sidebands, and giving it back would restore the worst noise in the scan."""
    trace, _, lattice, _ = _passes(8)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    t = y * 2 * SIZE + x
    carrier = 2 * np.pi * t / 9.37
    modulation = np.cos(2 * np.pi * (x * np.cos(0.2) + y * np.sin(0.2)) / 6.3)  # one of the lattice's waves
    pickup = 8.0 * np.cos(carrier) * (1 + 0.1 * modulation)
    found = lattice_peaks(trace + pickup, _eraser(trace + pickup))
    restored = found.give_back(trace + pickup, _eraser(trace + pickup))
    assert peak_power(trace + pickup, restored, _peaks_of(8.0 * np.cos(carrier)))["kept"] < 0.05


def test_one_pass_leaves_a_row_lattice_to_the_network_and_names_it():
    """One direction of peaks is what pick-up looks like: without the other pass it is not given back, but named."""
    rng = np.random.default_rng(5)
    x = np.mgrid[0:SIZE, 0:SIZE][1].astype(float)
    trace = np.cos(2 * np.pi * x / 5.3) + rng.normal(0, 1.0, (SIZE, SIZE))
    found = lattice_peaks(trace, _eraser(trace))
    assert found.peaks == 0
    assert len(found.unconfirmed) == 1  # a peak and its mirror image are one pattern
    assert found.unconfirmed[0].period_px == pytest.approx(5.3, rel=0.01)
    assert found.unconfirmed[0].angle_deg == pytest.approx(90.0, abs=0.5)  # stripes across the scan lines


def test_faint_stripes_among_what_was_removed_are_not_named():
    # 1 % of the removed power: a peak of the residual's spectrum, but a faint part of what went
    rng = np.random.default_rng(5)
    x = np.mgrid[0:SIZE, 0:SIZE][1].astype(float)
    trace = 0.15 * np.cos(2 * np.pi * x / 5.3) + rng.normal(0, 1.0, (SIZE, SIZE))
    assert len(_peaks_of(trace - _eraser(trace))) > 0
    assert lattice_peaks(trace, _eraser(trace)).unconfirmed == ()


@pytest.mark.parametrize(
    ("wave_vector", "period", "angle"),
    [
        ((1 / 7.0, 1 / 70.0), 7.0 / np.hypot(1, 0.1), np.degrees(np.arctan(0.1))),
        ((1 / (8 * np.sqrt(2)), 1 / (8 * np.sqrt(2))), 8.0, 45.0),
        ((1 / 12.8, -1 / 12.8), 12.8 / np.sqrt(2), -45.0),
        ((1 / 20.0, 1 / 15.0), 12.0, np.degrees(np.arctan2(4, 3))),
    ],
)
def test_a_pattern_is_named_by_the_period_and_the_angle_of_its_stripes_as_displayed(wave_vector, period, angle):
    # (cycles per row, cycles per column); row 0 at the top: stripes of x + y constant rise to the right as displayed.
    # Stripes exactly along the rows are not sought: each row is level, and the rows' alignment takes them as offsets.
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    stripes = np.cos(2 * np.pi * (wave_vector[0] * y + wave_vector[1] * x)) + np.random.default_rng(7).normal(0, 1.0, (SIZE, SIZE))
    pattern = lattice_peaks(stripes, _eraser(stripes)).unconfirmed[0]
    assert pattern.period_px == pytest.approx(period, rel=0.01)
    assert pattern.angle_deg == pytest.approx(angle, abs=1.0)


def test_stripes_on_the_nyquist_row_of_the_spectrum_are_named_once():
    # Every other scan line in antiphase: mains pick-up where the line takes an odd number of half periods. On an
    # even number of rows the peak and its mirror image both sit on the spectrum's first row.
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    stripes = np.cos(np.pi * y + 2 * np.pi * x / 5.3) + np.random.default_rng(8).normal(0, 1.0, (SIZE, SIZE))
    (pattern,) = lattice_peaks(stripes, _eraser(stripes)).unconfirmed
    assert pattern.period_px == pytest.approx(1 / np.hypot(0.5, 1 / 5.3), rel=0.01)
    assert 0.2 < pattern.share_of_removed < 0.5  # a third of what was removed, counted once


def test_one_pass_names_the_pickup_it_left_removed_and_not_the_lattice_it_gave_back():
    trace, _, lattice, _ = _passes(3)
    found = lattice_peaks(trace, _eraser(trace))
    assert found.peaks > 0
    # The trace's pick-up: 1 / 23.7 cycles per pixel time, 2 SIZE pixel times a line, aliased across the rows.
    along, across = 1 / 23.7, (2 * SIZE / 23.7 + 0.5) % 1 - 0.5
    assert found.unconfirmed[0].period_px == pytest.approx(1 / np.hypot(along, across), rel=0.03)
    assert all(abs(p.period_px - 6.3) > 0.3 for p in found.unconfirmed)  # not the lattice's waves


def test_denoise_guarded_gives_the_lattice_back_with_either_evidence(tmp_path):
    trace, retrace, lattice, _ = _passes(2)
    trace[100:] = np.nan  # a scan stopped early: only the measured rows are compared
    alone = denoise_guarded(trace, EraserBackend())
    both = denoise_guarded(trace, EraserBackend(), other_pass=retrace)
    assert alone.lattice.evidence == ONE_PASS and both.lattice.evidence == BOTH_PASSES
    x, norm = normalise(trace[:100])
    in_frame = lambda result: (result.data[:100] - norm.plane - norm.centre) / norm.scale  # noqa: E731
    peaks = _peaks_of(lattice[:100])
    assert peak_power(x, _eraser(x), peaks)["kept"] < 0.1
    for result in (alone, both):
        assert 0.8 <= peak_power(x, in_frame(result), peaks)["kept"] <= 1.2
    assert np.isnan(both.data[100:]).all()
    record = result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, EraserBackend(), both)
    assert json.loads(json.dumps(record))["lattice"] == {
        "checked": True,
        "evidence": BOTH_PASSES,
        "peaks_given_back": both.lattice.peaks,
        "windows_given_back": both.lattice_windows,
    }
    record = result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, EraserBackend(), alone)
    assert json.loads(json.dumps(record))["lattice"] == {
        "checked": True,
        "evidence": ONE_PASS,
        "peaks_given_back": alone.lattice.peaks,
        "removed_unconfirmed": [pattern.as_dict() for pattern in alone.lattice.unconfirmed],
    }
    assert record["lattice"]["removed_unconfirmed"]  # the trace's pick-up


def test_maed_denoise_tells_of_stripes_it_removed_that_one_pass_cannot_confirm(tmp_path):
    rng = np.random.default_rng(6)
    x = np.mgrid[0:SIZE, 0:SIZE][1].astype(float)
    np.save(tmp_path / "stripes.npy", np.cos(2 * np.pi * x / 5.3) + rng.normal(0, 1.0, (SIZE, SIZE)))
    notes: list[str] = []
    denoise_files([tmp_path / "stripes.npy"], tmp_path / "out", EraserBackend(), on_error=pytest.fail, on_note=notes.append)
    (pattern,) = json.loads((tmp_path / "out" / "stripes.json").read_text())["lattice"]["removed_unconfirmed"]
    assert pattern["period_px"] == pytest.approx(5.3, rel=0.01) and pattern["angle_deg"] == pytest.approx(90.0, abs=0.5)
    (note,) = [n for n in notes if "periodic stripes" in n]
    assert note.startswith(f"{tmp_path / 'stripes.npy'}: the network removed periodic stripes")
    assert f"cannot tell from pick-up: {pattern['period_px']:g} px at {pattern['angle_deg']:g} deg (period;" in note
    assert "the trace alone" in note and "holds both passes" in note


@pytest.mark.parametrize("slow_axis", ["down", "up"])
def test_the_final_live_frame_names_the_stripes_as_displayed(slow_axis):
    # stripes rising to the right as displayed, whichever end of the frame was scanned first
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    shown = np.cos(2 * np.pi * (x + y) / (8 * np.sqrt(2))) + np.random.default_rng(12).normal(0, 1.0, (SIZE, SIZE))
    stream = StreamingDenoiser(SIZE, SIZE, slow_axis)
    stream.final(shown, SIZE, EraserBackend())
    (pattern,) = stream.lattice["removed_unconfirmed"]
    assert pattern["angle_deg"] == pytest.approx(45.0, abs=1.0)
    assert pattern == denoise_guarded(shown, EraserBackend()).lattice.unconfirmed[0].as_dict()


class PlaneEraserBackend(EraserBackend):
    """The eraser with weights trained on plane-levelled input, as ``rt-plane``."""

    levelling = PLANE


def test_both_passes_are_levelled_alike_before_their_peaks_are_compared():
    """A simulated multi-atom lattice recorded in both passes (lag, x-warp, line offsets): the retrace must be
    levelled as the back end levels the trace, or the passes' peak powers do not compare and the lattice, found
    in both, is called pick-up."""
    from maed.data import make_pair
    from maed.lattice import check_peaks, find_peaks

    pair = make_pair(1_000_800_041, 128, families=("multi_atom",), both_passes=True)
    result = denoise_guarded(pair.noisy, PlaneEraserBackend(), other_pass=pair.retrace)
    assert result.lattice.evidence == BOTH_PASSES and result.lattice.peaks >= 4
    peaks = find_peaks(pair.clean)
    assert check_peaks(result.data, peaks).power_kept >= 0.8 * check_peaks(pair.noisy, peaks).power_kept


@pytest.mark.parametrize("shared", [0, MIN_LATTICE_ROWS - 1])
def test_an_other_pass_sharing_too_few_rows_leaves_the_one_pass_evidence(shared):
    """A retrace with a NaN in all but ``shared`` rows (a stopped scan, a lost column): not confirmed by it, not a
    crash; the scan is denoised as if it had no other pass."""
    trace, retrace = _passes(6)[:2]
    retrace = retrace.copy()
    retrace[shared:, 5] = np.nan
    alone = denoise_guarded(trace, EraserBackend())
    result = denoise_guarded(trace, EraserBackend(), other_pass=retrace)
    assert result.lattice.evidence == ONE_PASS
    np.testing.assert_array_equal(result.data, alone.data)


def test_a_scan_of_too_few_rows_is_not_searched_for_a_lattice(tmp_path):
    trace = _passes(6)[0][: MIN_LATTICE_ROWS - 1]
    result = denoise_guarded(trace, EraserBackend())
    assert result.lattice is None
    assert result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, EraserBackend(), result)["lattice"]["checked"] is False


@needs_real
def test_a_lattice_s_rows_are_found_beside_line_offsets_the_input_still_has():
    """Input levelled by its plane only (a network that takes the line offsets out itself): the offsets' power
    along the spectrum's column of zero frequency along x must not hide a lattice's rows there. On this real
    scan the two lattice peaks both passes show lie two bins from that column."""
    scan = read_scan(REAL_DIR / "example_LineProfile2.sxm")
    aligned, other = normalise(scan.data)[0], normalise(scan.other_pass)[0]
    rows_peaks, _ = classify_peaks(aligned, other)
    assert len(rows_peaks) and (np.abs(rows_peaks[:, 1] - aligned.shape[1] // 2) <= 2).all()
    plane_only = normalise(scan.data, PLANE)[0].astype(np.float64)
    erased = _eraser(plane_only)
    assert peak_power(plane_only, erased, rows_peaks)["kept"] < 0.2
    found = lattice_peaks(plane_only, erased, other)
    assert peak_power(plane_only, found.give_back(plane_only, erased), rows_peaks)["kept"] >= 0.8


def test_with_both_passes_the_peaks_that_moved_are_named_pick_up_and_masked_at_any_frame_size():
    size = 128
    y, x = np.mgrid[:size, :size]
    lattice = np.cos(2 * np.pi * (0.11 * x + 0.05 * y))
    t = y * size + x  # the time at which a pixel was recorded: the retrace runs the other way along each row
    f = 13.25 / size
    rng = np.random.default_rng(6)
    trace = lattice + 0.5 * np.cos(2 * np.pi * f * t) + rng.normal(0, 0.5, (size, size))
    retrace = lattice + 0.5 * np.cos(2 * np.pi * f * (y * size + (size - 1 - x))) + rng.normal(0, 0.5, (size, size))
    found = lattice_peaks(trace, np.zeros_like(trace), retrace)
    assert found.peaks == 2 and len(found.pickup) == 2  # the lattice kept apart from the pick-up
    pickup_bins = {tuple(np.rint(np.abs(p) * size).astype(int)) for p in found.pickup}
    assert pickup_bins == {(32, 13)}  # a quarter cycle more each row: 32 bins across, 13.25 along
    # Where the passes share fewer rows than the frame holds, the mask is drawn at the frame's size.
    mask = found.pickup_mask((2 * size, size))
    assert mask[64, 13] and mask[-64, -13] and not mask.all()
    assert not mask[13, 14]  # not the lattice's bin (0.05 of 256 rows, 0.11 of 128 columns)
    assert lattice_peaks(trace, np.zeros_like(trace)).pickup_mask((size, size)) is None  # one pass: none named
