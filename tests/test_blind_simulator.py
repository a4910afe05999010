"""The blind simulator's noise-free scan: the same surface through the same feedback loop, without the noise."""

import numpy as np
import pytest
from benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def blind():
    return load_benchmark("blind_simulator")


def _rough(image: np.ndarray) -> float:
    """Rms of each row's difference from the row before, its median off: what noise adds from line to line."""
    diff = np.diff(image, axis=0)
    return float(np.sqrt(np.mean((diff - np.median(diff, axis=1, keepdims=True)) ** 2)))


@pytest.mark.parametrize("family", ["atomic", "steps"])
def test_the_noise_free_scan_has_the_same_surface_and_none_of_the_noise(blind, family):
    noisy, clean, info = blind.draw(family, 9_100_003, 96)
    quiet, same_clean, quiet_info = blind.draw(family, 9_100_003, 96, noiseless=True)
    assert np.array_equal(clean, same_clean)
    assert quiet_info["surface"] == info["surface"]
    assert quiet_info["instrument"]["white"] == 0.0 and quiet_info["instrument"]["scars"] == []
    assert quiet_info["instrument"]["fb_fn"] == info["instrument"]["fb_fn"]  # the feedback loop stays
    assert _rough(quiet) < 0.5 * _rough(noisy)
    # What is left is the feedback loop's doing: nearer the surface than the noisy scan, and not the surface itself.
    assert 0 < _error(quiet, clean) < _error(noisy, clean)


def _error(image: np.ndarray, clean: np.ndarray) -> float:
    """Rms of ``image - clean`` with its least-squares plane off (the tilt and offset the scan adds)."""
    rows, cols = clean.shape
    yy, xx = np.mgrid[:rows, :cols]
    design = np.column_stack([np.ones(rows * cols), xx.ravel(), yy.ravel()])
    difference = (image - clean).ravel()
    coef = np.linalg.lstsq(design, difference, rcond=None)[0]
    return float(np.std(difference - design @ coef))


def test_a_creep_the_network_left_only_the_tail_of_is_taken_off_the_raw_scan_first(blind):
    # The blind simulator's adatoms_and_waves 9100011: a creep of 324 pm over 8 rows. The network takes its steep
    # start off with the line offsets and leaves a tail that no longer fits a relaxation; the raw scan shows it whole.
    from maed.denoise import denoise_guarded, denoise_once
    from maed.engine import load_backend

    backend = load_backend("onnx", "rt-plane", threads=1)
    noisy, clean, info = blind.draw("adatoms_and_waves", 9_100_011, 256)
    once, guarded = denoise_once(noisy, backend), denoise_guarded(noisy, backend)
    assert once.creep is None
    assert guarded.creep is not None and guarded.creep.from_row == "first" and guarded.creep.before_network
    assert guarded.creep.amplitude == pytest.approx(info["instrument"]["z_creep"] * 1e-12, rel=0.2)
    assert _error(guarded.data, clean) < 0.5 * _error(once.data, clean)
