"""Real references for training: split by source, never by file; crops at many zooms with simulated artefacts."""

import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, needs_real

from maed.data.real_refs import (
    NOISE_MARGIN,
    SOURCES,
    TEST_SOURCES,
    TRAINING_REFERENCES,
    Reference,
    held_out_files,
    level,
    load_references,
    own_noise,
    reference_crop,
    reference_names,
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


def test_this_projects_folder_gives_its_training_sources_and_a_labs_own_folder_every_scan_in_it(tmp_path):
    """The project's folder (its PROVENANCE.md) is split by source, and a scan it does not list is never a reference
    (one may be held back to judge the model); a lab's own folder has no such list: every scan file is one."""
    project, own = tmp_path / "real-stm", tmp_path / "our archive"
    for folder in (project, own):
        folder.mkdir()
        for name in ("Au_mica_2023_Y_A_diPAMY_195.sxm", "A200727.214101.dat", "new_2026.sxm", "notes.txt"):
            (folder / name).write_bytes(b"")
    (project / "PROVENANCE.md").write_text("sources")
    assert reference_names(project) == TRAINING_REFERENCES
    assert reference_names(own) == ("A200727.214101.dat", "Au_mica_2023_Y_A_diPAMY_195.sxm", "new_2026.sxm")


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
        crop, pixel, _ = reference_crop(ref, 64, rng)
        assert crop.shape == (64, 64) and np.isfinite(crop).all()
        spectrum = np.abs(np.fft.rfft(crop.mean(axis=0)))
        periods.append(64 / max(int(np.argmax(spectrum[1:])) + 1, 1))
        # The pixel size follows the zoom: a period of 10 reference pixels is always 1e-10 m.
        assert periods[-1] * pixel == pytest.approx(1e-10, rel=0.2)
    assert max(periods) > 1.4 * min(periods)  # the lattice is seen at several periods in pixels
    scaled = [scaled_to(crop, rng) for _ in range(50)]
    rms = [image.std() for image, _ in scaled]
    assert all(image.std() == pytest.approx(crop.std() * gain) for image, gain in scaled)
    assert min(rms) < 2e-11 < 1e-10 < max(rms)


def test_real_samples_are_references_with_artefacts():
    ref = Reference("blobs", level(np.random.default_rng(1).standard_normal((160, 160)).cumsum(0).cumsum(1)), 1e-10)
    stream = TrainingPairs(64, first_seed=3, references=[ref], real_fraction=1.0)
    noisy, clean, _ = stream.sample(3)
    assert noisy.shape == clean.shape == (64, 64)
    assert not np.allclose(noisy, clean) and np.isfinite(noisy).all()
    noisy_again, _, _ = stream.sample(3)
    np.testing.assert_array_equal(noisy, noisy_again)


def test_own_noise_reads_pixel_noise_under_a_smooth_surface():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:128, 0:128]
    smooth = 1e-10 * np.sin(x / 9.0) * np.cos(y / 13.0)
    noise = 2e-12 * rng.standard_normal((128, 128))
    assert own_noise(noise) == pytest.approx(2e-12, rel=0.1)
    assert own_noise(smooth + noise) == pytest.approx(2e-12, rel=0.15)
    assert own_noise(smooth) < 0.01 * smooth.std()


def test_crops_never_upsample_a_reference_large_enough():
    # Interpolating up would turn the reference's pixel noise into blobs that the target keeps.
    rng = np.random.default_rng(5)
    ref = Reference("noise", level(np.random.default_rng(6).standard_normal((300, 300))), 1e-11)
    for _ in range(20):
        _, pixel, _ = reference_crop(ref, 64, rng)
        assert pixel >= 1e-11 * 0.999


def test_an_upsampled_crop_reports_the_noise_of_the_pixels_it_came_from():
    # A reference smaller than the crop is interpolated up, which turns its pixel noise into blobs: the crop's own
    # finest band reads them low, and the added noise (a multiple of the reported own noise) would not bury them.
    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:40, 0:40]
    ref = Reference("small", level(1e-10 * np.sin(x / 6.0) + 3e-12 * rng.standard_normal((40, 40))), 1e-10)
    for _ in range(6):
        crop, pixel, noise = reference_crop(ref, 64, rng)
        assert pixel < 1e-10 / 1.5  # upsampled
        assert noise == pytest.approx(3e-12, rel=0.3)
        assert own_noise(crop) < 0.7 * noise


def test_reference_samples_get_noise_well_above_their_own():
    # A reference holding white noise of a third of its rms: the added noise must bury it, whatever the mix drew.
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:200, 0:200]
    surface = np.sin(x / 7.0) + np.cos(y / 11.0)
    ref = Reference("noisy", level(surface + 0.33 * surface.std() * rng.standard_normal(surface.shape)), 1e-10)
    stream = TrainingPairs(64, first_seed=11, references=[ref], real_fraction=1.0, noise_mix=True)
    for seed in range(11, 19):
        noisy, clean, _ = stream.sample(seed)
        added = noisy - clean
        added = added - added.mean(axis=1, keepdims=True)
        assert added.std() > 0.9 * NOISE_MARGIN * own_noise(clean)


@needs_real
def test_a_labs_own_scans_become_references_whatever_their_names(tmp_path):
    (tmp_path / "lab_0001.dat").write_bytes((REAL_DIR / "A200727.214101.dat").read_bytes())
    (tmp_path / "readme.txt").write_text("not a scan")
    refs = load_references(tmp_path)
    assert {r.name for r in refs} == {"lab_0001.dat:trace", "lab_0001.dat:retrace"}
    assert all(np.isfinite(r.image).all() and r.pixel_m > 0 for r in refs)
