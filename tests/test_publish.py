"""One chain after the network (maed.publish) for maed denoise and the live guard: the live guard publishes what it
decides, in the scan's unit; what it gives back reaches the network's part and the conservative part alike."""

import numpy as np
import pytest

from bridge.streaming import GuardJob, Levelling, judge
from maed.publish import publish
from maed.research.guard_calibration import invent
from maed.trust import Thresholds

R, C = np.indices((128, 128), dtype=float)
LATTICE = 0.3 * sum(np.cos(2 * np.pi / 6.0 * (C * np.cos(t) + R * np.sin(t))) for t in (0.3, 0.3 + 2 * np.pi / 3))
PIT = -6.0 * np.exp(-((R - 64) ** 2 + (C - 40) ** 2) / (2 * 3.0**2))
CLEAN = LATTICE + PIT + 1.5 * (C > 90)


def _depth(image: np.ndarray) -> float:
    """The pit's depth below the median of the terrace around it (negative: a pit)."""
    return float(image[62:67, 38:43].mean() - np.median(image[44:84, 52:60]))


@pytest.mark.parametrize("kind", ["pit filled", "bands"])
def test_the_live_guard_publishes_what_publish_decides(kind):
    x = CLEAN + 0.3 * np.random.default_rng(5).standard_normal(CLEAN.shape)
    # What a network might have made of the noisy scan: the surface with its pit filled in, or with bands drawn.
    y = CLEAN - PIT if kind == "pit filled" else invent(CLEAN, "bands", np.random.default_rng(2))
    decided = publish(x, y, rows_aligned=True)
    scale, centre, plane = 2.5, 0.7, 0.01 * C
    level = Levelling(coeffs=np.zeros(3), centre=centre, scale=scale, rows=128, cols=128)
    steps = 0.4 * (np.arange(128) >= 64)  # the steps along the rows the live guard gives back with the verdict
    job = GuardJob(
        start=0,
        rows=128,
        measured=np.ones(128, dtype=bool),
        x=x,
        y=y,
        plane=plane,
        steps=steps,
        level=level,
        limits=Thresholds(),
        rows_aligned=True,
    )
    live = judge(job)
    # As StreamingDenoiser._compose publishes a verdict:
    network = y * scale + centre + plane + live.given_back
    shown = network if live.conservative is None else (1 - live.weight) * network + live.weight * live.conservative
    np.testing.assert_allclose(shown, decided.image * scale + centre + plane + steps[:, None], atol=1e-9)
    assert live.verdict.output == decided.verdict.output
    if kind == "bands":
        assert decided.conservative is not None and decided.weight.mean() > 0.3
    else:
        assert _depth(y) > 0.2 * _depth(CLEAN)
        assert _depth(decided.image) < 0.7 * _depth(CLEAN)  # the pit is given back
