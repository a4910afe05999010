"""Drift from frame to frame (``maed.bridge.alerts.drift``): the shift between two scans of one area, found
where features stand out and not invented where they do not; the ``drift`` alert through a live bridge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from fake_backends import IdentityBackend
from scanfile_helpers import REAL_DIR, needs_real
from test_bridge_alerts import subscribe_alerts, until_finished

from maed.bridge.alerts.drift import DriftWatch, frame_shift, reduce
from maed.bridge.protocol import Alert
from maed.bridge.server import Bridge, BridgeConfig
from maed.bridge.sources import LinePusher
from maed.data import make_pair
from maed.scanfiles import read_channel

AREA = ("Z", (1e-8, 1e-8), "None", "None")


def scans_of_one_area(family: str, seed: int, moved: tuple[int, int], size: int = 128, noise: float = 0.3):
    """Two noisy scans of one surface, the second with its features ``moved`` (rows down, columns right), each
    with its own white noise and random walk of line offsets."""
    big = make_pair(seed, size + 64, families=(family,)).clean
    rng = np.random.default_rng(seed)
    dy, dx = moved

    def scan(r: int, c: int) -> np.ndarray:
        image = big[r : r + size, c : c + size]
        walk = np.cumsum(rng.normal(0, 0.3 * image.std(), size))[:, None]
        return image + noise * image.std() * rng.standard_normal(image.shape) + walk

    return scan(32, 32), scan(32 - dy, 32 - dx)


@pytest.mark.parametrize("family", ["standing_waves", "multi_atom", "molecular_crystal"])
def test_the_shift_between_two_scans_of_one_area_is_found(family):
    first, second = scans_of_one_area(family, 101, (7, -4), size=256)
    shift, _ = frame_shift(reduce(first)[0], reduce(second)[0])
    assert shift is not None and abs(shift.rows - 7) <= 1.5 and abs(shift.cols + 4) <= 1.5, shift
    again, _ = scans_of_one_area(family, 101, (0, 0), size=256)  # the same area, fresh noise: no shift
    still, _ = frame_shift(reduce(first)[0], reduce(again)[0])
    assert still is None or max(abs(still.rows), abs(still.cols)) <= 1.5


def test_another_area_or_a_featureless_one_gives_no_shift():
    first, _ = scans_of_one_area("standing_waves", 101, (0, 0), size=256)
    elsewhere, _ = scans_of_one_area("standing_waves", 202, (0, 0), size=256)
    shift, why = frame_shift(reduce(first)[0], reduce(elsewhere)[0])
    assert shift is None and why
    rng = np.random.default_rng(3)
    noise = [rng.standard_normal((256, 256)) for _ in range(2)]  # noise only: nothing to follow
    shift, why = frame_shift(reduce(noise[0])[0], reduce(noise[1])[0])
    assert shift is None and "stands out" in why
    # A channel held at one value (Z at the piezo's limit all frame), and a frame too small: reasons, no error.
    assert frame_shift(np.zeros((64, 64)), noise[0][:64, :64]) == (None, "a frame too small or flat to compare")
    assert frame_shift(noise[0][:8, :8], noise[1][:8, :8])[0] is None


@needs_real
def test_real_scans_of_one_area_agree_and_of_other_areas_give_no_shift():
    """Two Createc scans of one 21.5 nm frame six minutes apart (512 and 256 pixels a side, one reduced grid), and
    other scans of the same reduced size."""
    reduced = {
        name: reduce(read_channel(REAL_DIR / name).data.astype(np.float64))[0]
        for name in ("A200621.160730.dat", "A200621.161352.dat", "A200306.161609.dat", "createc_scan_atomic_11nm.dat")
    }
    shift, _ = frame_shift(reduced["A200621.160730.dat"], reduced["A200621.161352.dat"])
    assert shift is not None and max(abs(shift.rows), abs(shift.cols)) < 1.0 and shift.overlap_r > 0.9
    for other in ("A200306.161609.dat", "createc_scan_atomic_11nm.dat"):
        assert frame_shift(reduced["A200621.160730.dat"], reduced[other])[0] is None


def test_large_scans_are_compared_at_a_bounded_size_and_the_shift_given_in_their_pixels():
    first, second = scans_of_one_area("standing_waves", 101, (12, 6), size=512)
    watch = DriftWatch()
    area = ("Z", (2e-8, 1e-8), "None", "None")
    assert watch.check("a", area, first, (2e-8, 1e-8), 0.0, 511) == (None, None)  # nothing to compare with yet
    (kept,) = watch.last.values()
    assert kept.reduced.shape == (256, 256) and kept.factor == 2
    figures, alert = watch.check("b", area, second, (2e-8, 1e-8), 60.0, 511)
    dy, dx = figures["shift_px"]
    assert abs(dy - 12) <= 2 and abs(dx - 6) <= 2 and figures["since_scan"] == "a"
    # Range (2e-8 m wide, 1e-8 m high): rows are 1e-8 / 512 m, columns 2e-8 / 512 m.
    assert figures["shift_m"] == pytest.approx([dy * 1e-8 / 512, dx * 2e-8 / 512])
    assert figures["rate_m_per_s"] == pytest.approx(np.hypot(*figures["shift_m"]) / 60.0) and figures["overlap_r"] > 0.65
    assert alert.kind == "drift" and alert.severity == "warning" and alert.row == 511 and alert.columns == (0, 512)


def test_only_scans_of_one_area_are_compared_and_only_fast_drift_alerts():
    first, second = scans_of_one_area("standing_waves", 101, (2, 1))
    watch = DriftWatch(alert_share=0.05)
    watch.check("a", AREA, first, (1e-8, 1e-8), 0.0, 127)
    figures, alert = watch.check("b", AREA, second, (1e-8, 1e-8), 30.0, 127)
    assert figures["shift_px"] is not None and alert is None  # 2 of 128 rows: under 5 % of the frame
    moved_on = (*AREA[:2], "[1e-07, 0.0]", "None")  # the controller's frame centre moved: another area
    assert watch.check("c", moved_on, second, (1e-8, 1e-8), 60.0, 127) == (None, None)
    back, alert = watch.check("d", AREA, first, (1e-8, 1e-8), 90.0, 127)  # back to the first area: against "b"
    assert back["since_scan"] == "b" and back["seconds"] == 60.0 and alert is None
    with pytest.raises(ValueError, match="share of the frame"):
        DriftWatch(alert_share=0.0)


def test_a_scan_that_drifted_raises_a_drift_alert_saved_with_the_scan(tmp_path: Path):
    first, second = scans_of_one_area("standing_waves", 101, (6, -5))
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans")
    with Bridge(config, backend=IdentityBackend()) as bridge:
        sub = subscribe_alerts(bridge.endpoints["pub"])
        time.sleep(0.5)  # the subscription reaches the bridge
        pusher = LinePusher(bridge.endpoints["pull"])
        for scan, image in (("first", first), ("second", second)):
            pusher.start(scan, 128, 128, (1e-8, 1e-8))
            for row in range(128):
                pusher.line(scan, row, image[row].astype("<f4"))
            pusher.end(scan)
        pusher.close()
        messages, finished = until_finished(sub, 2)
    drifts = [m for m in messages if isinstance(m, Alert) and m.kind == "drift"]
    assert [a.scan for a in drifts] == ["second"], messages
    dy, dx = drifts[0].evidence["shift_px"]
    assert abs(dy - 6) <= 1.5 and abs(dx + 5) <= 1.5 and drifts[0].evidence["since_scan"] == "first"
    first_meta, second_meta = (json.loads((Path(f.saved) / "meta.json").read_text()) for f in finished)
    assert first_meta["drift"] is None and second_meta["drift"]["shift_px"] == [dy, dx]
    assert [a["kind"] for a in second_meta["alerts"]] == ["drift"]
