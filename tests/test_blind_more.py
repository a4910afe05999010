"""The second, third and fourth blind simulators (``benchmarks/blind_crystals.py``, ``blind_molecules.py``,
``blind_instruments.py``): scans in metres,
the same for a seed, and ``blind_more.py``'s family labels are the draw's own."""

import numpy as np
import pytest
from benchmark_modules import load_benchmark


@pytest.mark.parametrize("name", ["blind_crystals", "blind_molecules", "blind_instruments"])
def test_draws_are_deterministic_scans_in_metres_with_the_instrument_in_the_noisy_one(name):
    simulator = load_benchmark(name)
    draws = [simulator.draw(seed, 96) for seed in range(5)]
    for noisy, clean, pixel in draws:
        assert noisy.shape == clean.shape == (96, 96)
        assert np.isfinite(noisy).all() and np.isfinite(clean).all()
        assert 1e-9 <= pixel * 96 <= 600e-9  # fields of view of 2 to 500 nm
        assert 1e-13 < np.ptp(clean) < 1e-6  # the heights of a topograph in metres
        assert np.std(noisy - clean) > 0
    np.testing.assert_array_equal(simulator.draw(4, 96)[0], draws[-1][0])
    assert not np.allclose(draws[0][1], draws[1][1], atol=0)


def test_the_page_labels_each_scan_with_the_family_its_simulator_drew():
    more = load_benchmark("blind_more")
    labels = set()
    for seed in range(6):
        more.SIMULATORS["molecules"].draw(seed, 64)
        labels.add(more.family("molecules"))
        more.SIMULATORS["crystals"].draw(seed, 64)
        labels.add(more.family("crystals"))
        more.SIMULATORS["instruments"].draw(seed, 64)
        labels.add(more.family("instruments"))
    # Three simulators' families: more than one label each, and never a blank one.
    assert len(labels) >= 6 and all(isinstance(label, str) and label for label in labels)
