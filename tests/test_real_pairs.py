"""Real trace/retrace pairs as Noise2Noise training samples, and the smooth backgrounds of simulated ones."""

import numpy as np
import pytest
import torch
from scanfile_helpers import REAL_DIR, needs_real

from maed.data import make_pair
from maed.data.real_pairs import MAX_SLOW_WHITENESS, TRAINING_PAIR_FILES, PassPair, load_pass_pairs, pass_pair_crop
from maed.data.real_refs import SOURCES, TEST_SOURCES
from maed.data.surfaces import smooth_background
from maed.noreference import slow_axis_whiteness
from maed.training.dataset import CLEAN_TARGET, PASS_TARGET, TrainingPairs
from maed.training.loss import pass_pair_l1
from maed.training.trainer import training_loss


def test_no_test_source_is_paired():
    assert TRAINING_PAIR_FILES
    assert not {SOURCES[name] for name in TRAINING_PAIR_FILES} & set(TEST_SOURCES)


@needs_real
def test_pairs_are_registered_and_their_difference_is_noise():
    pairs = load_pass_pairs(REAL_DIR, 128)
    assert pairs
    for pair in pairs:
        assert pair.trace.shape == pair.retrace.shape and min(pair.trace.shape) >= 128
        assert slow_axis_whiteness(pair.trace - pair.retrace) <= MAX_SLOW_WHITENESS
    # A scan whose passes differ by tip changes (structure across rows) is not taught as noise.
    assert "A200306.161609.dat" not in {p.name for p in pairs}


def _synthetic_pair(seed: int = 0) -> tuple[np.ndarray, PassPair]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:96]
    surface = np.cos(2 * np.pi * x / 7.0) + np.cos(2 * np.pi * (x + y) / 11.0)
    return surface, PassPair("synthetic", surface + rng.normal(0, 0.5, surface.shape), surface + rng.normal(0, 0.5, surface.shape))


def test_crop_takes_both_passes_at_the_same_place():
    surface, pair = _synthetic_pair()
    rng = np.random.default_rng(1)
    directions = set()
    for _ in range(20):
        a, b = pass_pair_crop(pair, 48, rng)
        assert a.shape == b.shape == (48, 48)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.6  # same surface under both (0.8 expected; another place: about 0)
        directions.add(any(np.array_equal(a, w) for w in _windows(pair.trace, 48)))
    assert directions == {True, False}  # trace as input, and retrace as input


def _windows(image: np.ndarray, size: int):
    for r in range(image.shape[0] - size + 1):
        for c in range(image.shape[1] - size + 1):
            w = image[r : r + size, c : c + size]
            yield from (w, w[::-1], w[:, ::-1], w[::-1, ::-1])


def test_pass_loss_is_lowest_at_the_clean_surface_and_ignores_line_offsets():
    surface, pair = _synthetic_pair()
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))[None, None]  # noqa: E731
    offsets = np.random.default_rng(2).normal(0, 3, (96, 1))
    at_clean = pass_pair_l1(t(surface + offsets + 0.01 * np.arange(96)), t(pair.retrace))
    at_input = pass_pair_l1(t(pair.trace), t(pair.retrace))
    at_clean_plain = pass_pair_l1(t(surface), t(pair.retrace))
    assert float(at_clean) == pytest.approx(float(at_clean_plain), rel=1e-4)
    assert float(at_clean) < 0.8 * float(at_input)


def test_training_loss_judges_each_sample_by_its_kind():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    x, y = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    kind = torch.tensor([PASS_TARGET, CLEAN_TARGET, PASS_TARGET, CLEAN_TARGET])
    loss = training_loss(model, x, y, kind=kind)
    out = model(x)
    from maed.training.loss import plane_free_l1

    expected = pass_pair_l1(out[[0, 2]], y[[0, 2]]).sum() / 4 + 0.5 * plane_free_l1(out[[1, 3]], y[[1, 3]])
    torch.testing.assert_close(loss, expected)


def test_stream_draws_pass_pairs_with_their_kind():
    _, pair = _synthetic_pair()
    stream = TrainingPairs(48, first_seed=0, pass_pairs=[pair], pair_fraction=1.0)
    _, _, kind = stream.sample(0)
    assert kind == PASS_TARGET
    _, _, kind = TrainingPairs(48, first_seed=0).sample(0)
    assert kind == CLEAN_TARGET


def test_smooth_background_has_its_rms_and_is_smooth():
    rng = np.random.default_rng(3)
    for _ in range(20):
        field = smooth_background((128, 128), 2e-11, rng)
        assert field.std() == pytest.approx(2e-11, rel=1e-9)
        # Smooth: neighbouring pixels differ by far less than the field varies (white noise: 1.13 x).
        assert np.abs(np.diff(field, axis=1)).mean() < 0.5 * field.std()


def test_background_is_added_to_some_surfaces_only():
    drawn = [make_pair(s, 64, background=True) for s in range(12)]
    with_bg = [p for p in drawn if "background_rms_m" in p.surface]
    assert 0 < len(with_bg) < len(drawn)
    for p in with_bg:
        plain = make_pair(p.seed, 64)
        assert (p.clean - plain.clean).std() == pytest.approx(p.surface["background_rms_m"], rel=1e-6)
