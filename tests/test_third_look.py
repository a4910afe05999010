"""The real third look of ``maed eval --passes``: a look on the scan's grid, moved onto it, ranks methods by their error."""

import numpy as np
import pytest
from scanfile_helpers import REAL_DIR, needs_real
from scipy import ndimage

from maed.engine import load_backend
from maed.passes import CLASSICAL_LABEL
from maed.research.pass_methods import ONE_PASS, TWO_PASS
from maed.research.third_look import RAW, THIRD_LOOKS, errors_against, look_shift, reduce_to, third_look


def test_a_look_at_twice_the_pixels_is_reduced_by_block_means_and_another_ratio_refused():
    look = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(reduce_to(look, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="does not reduce"):
        reduce_to(np.zeros((5, 5)), (2, 2))


def test_the_look_is_moved_onto_the_scan_and_the_truth_scores_only_the_looks_noise():
    rng = np.random.default_rng(0)
    surface = ndimage.gaussian_filter(rng.normal(size=(128, 128)), 3) * 10  # features everywhere
    look = ndimage.shift(surface, (1.5, -2.0), order=3, mode="nearest") + rng.normal(0, 0.05, surface.shape)
    noisy = surface + rng.normal(0, 0.3, surface.shape)
    shift = look_shift(noisy, look)
    assert abs(shift[0] + 1.5) < 0.2 and abs(shift[1] - 2.0) < 0.2
    errors = errors_against({"noisy": noisy, "truth": surface}, look, shift)
    assert errors["truth"]["value"] < 0.1 < 0.25 < errors["noisy"]["value"]


def test_a_look_of_another_area_is_refused():
    rng = np.random.default_rng(1)
    scan, other = (ndimage.gaussian_filter(rng.normal(size=(128, 128)), 3) for _ in range(2))
    with pytest.raises(ValueError, match="not the scored scan's area"):
        look_shift(scan, other)


@needs_real
def test_on_the_real_pair_every_method_removes_noise_the_look_does_not_share():
    """The look (six minutes earlier) sits within a pixel of the scan, and against both of its passes the classical
    pipeline and the two-pass model are closer to it than the raw trace: what they removed was noise."""
    one, two = (load_backend("onnx", name, threads=1) for name in ("rt-plane", "rt-both"))
    (result,) = third_look(REAL_DIR, one, two)
    assert (result["scored"], result["look"]) == THIRD_LOOKS[0]
    trace = result["against"]["trace"]
    assert abs(trace["shift_px"]["rows"]) < 1 and abs(trace["shift_px"]["cols"]) < 1
    for against in result["against"].values():
        assert set(against["coarse_errors"]) == set(against["errors"])
        errors = {name: e["value"] for name, e in against["errors"].items()}
        assert errors[CLASSICAL_LABEL] < errors[RAW] and errors[TWO_PASS] < errors[RAW] and errors[ONE_PASS] < errors[RAW]
