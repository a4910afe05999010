"""Lattice peaks confirmed by the other pass are given back to the network's output; pick-up is not."""

import json

import numpy as np
import pytest

from maed.denoise import denoise_guarded, result_record
from maed.lattice_keep import lattice_peaks
from maed.noreference import peak_power
from maed.normalise import normalise
from scipy import ndimage

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
    found = lattice_peaks(trace, retrace)
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


def test_without_a_lattice_nothing_is_given_back():
    rng = np.random.default_rng(1)
    trace, retrace = rng.normal(size=(SIZE, SIZE)), rng.normal(size=(SIZE, SIZE))
    found = lattice_peaks(trace, retrace)
    assert found.peaks == 0
    np.testing.assert_array_equal(found.give_back(trace, _eraser(trace)), _eraser(trace))


def test_passes_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        lattice_peaks(np.zeros((32, 32)), np.zeros((31, 32)))


class EraserBackend:
    name, model, size_multiple, weights_sha256 = "eraser", "eraser", 1, "0" * 64

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([[_eraser(image) for image in item] for item in batch]).astype(np.float32)


def test_denoise_guarded_gives_the_lattice_back_only_with_the_other_pass(tmp_path):
    trace, retrace, lattice, _ = _passes(2)
    trace[100:] = np.nan  # a scan stopped early: only the measured rows are compared
    alone = denoise_guarded(trace, EraserBackend())
    both = denoise_guarded(trace, EraserBackend(), other_pass=retrace)
    assert alone.lattice_peaks is None and both.lattice_peaks > 0
    x, norm = normalise(trace[:100])
    in_frame = lambda result: (result.data[:100] - norm.plane - norm.centre) / norm.scale  # noqa: E731
    peaks = _peaks_of(lattice[:100])
    assert peak_power(x, in_frame(alone), peaks)["kept"] < 0.1
    assert 0.8 <= peak_power(x, in_frame(both), peaks)["kept"] <= 1.2
    assert np.isnan(both.data[100:]).all()
    record = result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, EraserBackend(), both)
    assert json.loads(json.dumps(record))["lattice"] == {"checked": True, "peaks_given_back": both.lattice_peaks}
    assert result_record(tmp_path / "a.sxm", tmp_path / "a.npy", "trace", None, EraserBackend(), alone)["lattice"]["checked"] is False
