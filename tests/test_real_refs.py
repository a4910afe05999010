"""Real references for training: split by source, never by file; crops at many zooms with simulated artefacts."""

import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, needs_real

from maed.data.real_refs import (
    SOURCES,
    TEST_SOURCES,
    TRAINING_REFERENCES,
    Reference,
    held_out_files,
    level,
    load_references,
    reference_crop,
    scaled_to,
)
from maed.training.dataset import TrainingPairs


def test_no_test_source_is_a_training_reference():
    assert TRAINING_REFERENCES
    assert not {SOURCES[name] for name in TRAINING_REFERENCES} & set(TEST_SOURCES)


@needs_real
def test_every_real_scan_has_a_source():
    # A new file in the folder must be put on one side of the split before it can be used at all.
    images = sorted(p.name for p in REAL_DIR.iterdir() if p.suffix in (".sxm", ".dat", ".sm4", ".Z_mtrx"))
    assert [name for name in images if name not in SOURCES] == []
    assert {p.name for p in held_out_files(REAL_DIR)} == {n for n, s in SOURCES.items() if s in TEST_SOURCES}


@needs_real
def test_references_load_levelled_and_finite():
    refs = load_references(REAL_DIR)
    names = {r.name.split(":")[0] for r in refs}
    assert names == {n for n in TRAINING_REFERENCES if (REAL_DIR / n).exists()}
    for ref in refs:
        assert np.isfinite(ref.image).all() and ref.pixel_m > 0
        # Levelled: no plane left and no row-to-row offsets (median of differences is zero).
        assert abs(np.median(np.diff(ref.image, axis=0), axis=1)).max() < 1e-9 * max(ref.image.std(), 1e-30) + 1e-20


def test_crop_zooms_and_rescales():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:200]
    ref = Reference("stripes", level(np.cos(2 * np.pi * x / 10.0) * 1e-10), 1e-11)
    periods = []
    for _ in range(12):
        crop, pixel = reference_crop(ref, 64, rng)
        assert crop.shape == (64, 64) and np.isfinite(crop).all()
        spectrum = np.abs(np.fft.rfft(crop.mean(axis=0)))
        periods.append(64 / max(int(np.argmax(spectrum[1:])) + 1, 1))
        # The pixel size follows the zoom: a period of 10 reference pixels is always 1e-10 m.
        assert periods[-1] * pixel == pytest.approx(1e-10, rel=0.2)
    assert max(periods) > 1.4 * min(periods)  # the lattice is seen at several periods in pixels
    rms = [scaled_to(crop, rng).std() for _ in range(50)]
    assert min(rms) < 2e-11 < 1e-10 < max(rms)


def test_real_samples_are_references_with_artefacts():
    ref = Reference("blobs", level(np.random.default_rng(1).standard_normal((160, 160)).cumsum(0).cumsum(1)), 1e-10)
    stream = TrainingPairs(64, first_seed=3, references=[ref], real_fraction=1.0)
    noisy, clean, _ = stream.sample(3)
    assert noisy.shape == clean.shape == (64, 64)
    assert not np.allclose(noisy, clean) and np.isfinite(noisy).all()
    noisy_again, _, _ = stream.sample(3)
    np.testing.assert_array_equal(noisy, noisy_again)
