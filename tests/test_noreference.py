"""The point-defect search (``maed.noreference.find_defects``) chooses what its first, candidate-by-candidate
implementation chose: the same defects in the same order, with the same isolation, on noise, simulated scans
with point defects, a flat scan, one smaller than the largest ring, and real ones."""

import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, needs_real
from scipy import ndimage

from maed.classical import robust_spread
from maed.data import FAMILIES, make_pair
from maed.noreference import ANNULUS, DEFECT_RADIUS, DEFECTS, MIN_ISOLATION, SCALES, _ring, find_defects
from maed.normalise import normalise
from maed.trust import conservative


def _find_defects_reference(classical: np.ndarray, noise_rms: float, count: int = DEFECTS) -> list[dict]:
    """The search as first written, one candidate at a time: the oracle."""
    rows, cols = classical.shape
    scored = []
    for scale in SCALES:
        k, ring = _ring(scale)
        if 2 * k + 1 > min(rows, cols):
            break
        side = 2 * int(round(DEFECT_RADIUS * scale)) + 1
        for sign, extreme in ((1, ndimage.maximum_filter), (-1, ndimage.minimum_filter)):
            is_extreme = classical == extreme(classical, size=side, mode="nearest")
            is_extreme[:k] = is_extreme[rows - k :] = False
            is_extreme[:, :k] = is_extreme[:, cols - k :] = False
            for r, c in np.argwhere(is_extreme):
                values = classical[r - k : r + k + 1, c - k : c + k + 1][ring]
                median = float(np.median(values))
                depth = float(classical[r, c] - median)
                if sign * depth <= 0:
                    continue
                spread = robust_spread(values)
                scored.append((abs(depth) / max(spread, noise_rms, 1e-300), int(r), int(c), sign, scale))
    scored.sort(reverse=True)
    chosen: list[dict] = []
    for isolation, r, c, sign, scale in scored:
        if isolation < MIN_ISOLATION or len(chosen) == count:
            break
        reach = ANNULUS[1] * scale
        if all(np.hypot(r - d["row"], c - d["col"]) > max(reach, ANNULUS[1] * d["scale"]) for d in chosen):
            chosen.append({"row": r, "col": c, "kind": "bright" if sign > 0 else "dark", "scale": scale, "isolation": isolation})
    return chosen


def _assert_same(found: list[dict], expected: list[dict]) -> None:
    assert [{k: v for k, v in d.items() if k != "isolation"} for d in found] == [
        {k: v for k, v in d.items() if k != "isolation"} for d in expected
    ]
    assert np.allclose([d["isolation"] for d in found], [d["isolation"] for d in expected], rtol=1e-12, atol=0)


def _as_the_guard_searches(scan: np.ndarray) -> tuple[np.ndarray, float]:
    """The conservative result of the normalised scan and the rms of what it took off, as ``feature_keep`` asks."""
    x, _ = normalise(scan)
    reference = conservative(x)
    return reference, float(np.std(x - reference))


def _scattered_defects(shape: tuple[int, int], number: int, rng: np.random.Generator) -> np.ndarray:
    """Bumps and pits of random sizes (a pixel to a few) and heights at random places."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape)
    for _ in range(number):
        r, c = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        width, height = rng.uniform(0.7, 6.0), rng.choice([-1, 1]) * rng.uniform(2.0, 8.0)
        out += height * np.exp(-((y - r) ** 2 + (x - c) ** 2) / (2 * width**2))
    return out


@pytest.mark.parametrize("count", [1, DEFECTS, 12])
def test_noise_gives_the_same_defects(count):
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((125, 163))  # no multiple of the bound's blocks
    for scan in (noise, noise + _scattered_defects(noise.shape, 20, rng)):
        classical = ndimage.gaussian_filter(scan, 1)
        rms = float(np.std(scan - classical))
        for noise_rms in (rms, 0.1 * rms):  # a low floor leaves the ring's spread to decide
            expected = _find_defects_reference(classical, noise_rms, count)
            _assert_same(find_defects(classical, noise_rms, count), expected)
    assert len(expected) >= min(count, DEFECTS)  # not vacuous


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_simulated_scans_with_point_defects_give_the_same_defects(seed):
    pair = make_pair(seed, 256, families=FAMILIES)
    noisy = pair.clean + np.random.default_rng(seed).normal(0, 0.1 * np.std(pair.clean), pair.clean.shape)
    for scan in (noisy, pair.noisy):  # white noise, and the simulator's own (line offsets, scars, drift)
        classical, noise_rms = _as_the_guard_searches(scan)
        expected = _find_defects_reference(classical, noise_rms, count=12)
        _assert_same(find_defects(classical, noise_rms, count=12), expected)


def test_adsorbates_give_the_same_defects_at_every_scale():
    for seed in range(3):
        pair = make_pair(seed, 256, families=("adsorbates",))
        noisy = pair.clean + np.random.default_rng(seed).normal(0, 0.05 * np.std(pair.clean), pair.clean.shape)
        classical, noise_rms = _as_the_guard_searches(noisy)
        expected = _find_defects_reference(classical, noise_rms, count=12)
        assert expected  # the case is not vacuous
        _assert_same(find_defects(classical, noise_rms, count=12), expected)


def test_plateaus_tie_alike():
    """Quantised heights: many equal extrema and equal isolations, whose order the row and column decide."""
    noise = np.random.default_rng(1).standard_normal((96, 96))
    classical = np.round(ndimage.gaussian_filter(noise, 2) * 8) / 8
    expected = _find_defects_reference(classical, 0.01, count=12)
    assert expected
    _assert_same(find_defects(classical, 0.01, count=12), expected)


@pytest.mark.parametrize("noise_rms", [0.0, 0.3])
def test_a_flat_scan_has_none(noise_rms):
    flat = np.full((48, 48), 2.5)
    assert _find_defects_reference(flat, noise_rms) == find_defects(flat, noise_rms) == []


def test_a_scan_smaller_than_the_largest_ring_gives_the_same_defects():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[:40, :40]
    pit = -5.0 * np.exp(-((y - 19) ** 2 + (x - 21) ** 2) / 2.0)
    classical = ndimage.gaussian_filter(pit + rng.normal(0, 0.3, pit.shape), 1)
    expected = _find_defects_reference(classical, 0.2, count=12)
    assert expected[0]["kind"] == "dark"  # the pit
    _assert_same(find_defects(classical, 0.2, count=12), expected)


@needs_real
@pytest.mark.parametrize("name", ["createc_scan_atomic_11nm.dat", "createc_scan_molecular_30nm_pos.dat", "createc_scan_step_20nm.dat"])
def test_real_scans_give_the_same_defects(name):
    from maed.io import read_scan

    classical, noise_rms = _as_the_guard_searches(read_scan(REAL_DIR / name).data)
    expected = _find_defects_reference(classical, noise_rms, count=12)
    _assert_same(find_defects(classical, noise_rms, count=12), expected)
