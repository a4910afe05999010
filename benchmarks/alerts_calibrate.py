"""Sets ``GUMBEL_Q`` of the scan-health detectors (``maed.bridge.alerts.monitor``): false alerts per clean
256-line frame against it, on simulated frames whose seeds are held apart from ``alerts_score.py``'s.

A line's scan statistic (its largest window statistic over that window length's spread) must clear the
scan's own bar: a Gumbel law fitted to the statistics of the scan's recent lines, at ``GUMBEL_Q`` scales
above its location (``monitor.GUMBEL_Q``). This script feeds clean frames (the training ranges of every
artefact, no events) trace only and with both passes, counts every alert at each candidate ``q``, and
prints the table; the smallest ``q`` whose false alerts stay under ``TARGET`` per frame in both modes is the
one to set (under the issue's bar of 0.1, with room for the sampling error of this many frames).

    python benchmarks/alerts_calibrate.py [--frames 100] [--q 4 5 6 7]

Seeds: ``TEST_SEED_BASE + 15_000 + 300_000`` on (``alerts_score.py`` uses offsets 0 to 7_000, 100_000 and
200_000 from ``TEST_SEED_BASE + 15_000``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import alerts_score  # noqa: E402

import maed.bridge.alerts.monitor as monitor  # noqa: E402
from maed.bridge.alerts import scan_findings  # noqa: E402
from maed.data import TEST_SEED_BASE, make_pair  # noqa: E402

CALIBRATION_SEED = TEST_SEED_BASE + 15_000 + 300_000
TARGET = 0.05


def false_alerts(frames: int, both: bool, q: float) -> Counter:
    monitor.GUMBEL_Q = q
    alerts: Counter = Counter()
    for i in range(frames):
        pair = make_pair(CALIBRATION_SEED + i, alerts_score.SIZE, alerts_score.QUIET, both_passes=both)
        for finding, _ in scan_findings(pair.noisy, pair.retrace):
            alerts[finding.kind] += 1
    return alerts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--q", type=float, nargs="+", default=[4.0, 5.0, 6.0, 7.0])
    args = p.parse_args()
    start = time.perf_counter()
    print(f"{args.frames} clean {alerts_score.SIZE}x{alerts_score.SIZE} frames per mode, seeds from {CALIBRATION_SEED}")
    print("| q | trace: false alerts per frame (95 % upper) | both: false alerts per frame (95 % upper) |")
    print("|---|---|---|")
    chosen = None
    for q in args.q:
        cells, ok = [], True
        for both in (False, True):
            alerts = false_alerts(args.frames, both, q)
            total = sum(alerts.values())
            upper = (total + 1.96 * math.sqrt(total) + 2) / args.frames  # Poisson, roughly
            cells.append(f"{total / args.frames:.3f} ({upper:.3f}; {dict(alerts)})")
            ok &= total / args.frames <= TARGET
        print(f"| {q:g} | {cells[0]} | {cells[1]} |", flush=True)
        if ok and chosen is None:
            chosen = q
    print(f"smallest q with at most {TARGET} false alerts per frame in both modes: {chosen}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
