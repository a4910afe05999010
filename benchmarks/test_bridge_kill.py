"""``kill -9`` of the bridge at random points during scans, 20 times, with our pusher as the controller.

``maed serve`` runs in its own process on fixed ports (a restart takes the same ones); this process
pushes scans with ``LinePusher(acks=...)`` at ``RATE`` lines/s, kills the bridge at a random instant
of each scan (while lines arrive, while it ends, or while it is being saved), starts it again on the
same folder and goes on pushing. After every restart the scan must complete: every row sent is in
the saved folder, bit for bit, and nothing half-written is visible (no folder under a final name
without all its files after any kill, no ``.partial`` left at the end). Slow (20 restarts of a bridge
that loads its model), so it lives here, not in ``make test``; the single-kill test is
``tests/test_bridge_journal.py``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
from served_bridge import Served, free_ports

from maed.bridge.sources import LinePusher
from maed.zoo import PRODUCT

KILLS = 20
ROWS, COLS = 128, 128
RATE = 1000.0  # lines/s: a scan (trace and retrace) takes about 0.26 s
FILES = ("raw_trace.npy", "raw_retrace.npy", "denoised.npy", "meta.json")


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _push_scan(pusher: LinePusher, scan: str, trace: np.ndarray, retrace: np.ndarray) -> None:
    start = time.perf_counter()
    pusher.start(scan, ROWS, COLS, (2e-8, 2e-8))
    for row in range(ROWS):
        pusher.line(scan, row, trace[row])
        pusher.line(scan, row, retrace[row], pass_="retrace")
        time.sleep(max(0.0, start + 2 * (row + 1) / RATE - time.perf_counter()))
    pusher.end(scan)


def kill_and_restart(models, out: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    bridge = Served(out, free_ports(4), ("--model", str(models(PRODUCT).onnx)))
    bridge.start()
    pusher = LinePusher(bridge.pull, acks=bridge.ack)
    restarts, kill_points, half_written = [], [], 0
    scans = {}
    try:
        for k in range(KILLS):
            scan = f"kill-{k:02d}"
            scans[scan] = (rng.standard_normal((ROWS, COLS)).astype("<f4"), rng.standard_normal((ROWS, COLS)).astype("<f4"))
            sender = threading.Thread(target=_push_scan, args=(pusher, scan, *scans[scan]))
            when = rng.uniform(0, 1.3 * 2 * ROWS / RATE)  # while lines arrive, and into the end and the save
            sender.start()
            time.sleep(when)
            bridge.stop(signal.SIGKILL)
            kill_points.append(round(when, 3))
            sender.join()
            half_written += sum(not _complete(f) for f in out.iterdir() if f.is_dir() and not f.name.startswith("."))
            t = time.perf_counter()
            bridge.start()
            restarts.append(time.perf_counter() - t)
            assert pusher.wait_acked(60), f"{scan}: lines never acknowledged after the restart"
            deadline = time.monotonic() + 60
            while not (out / scan).is_dir() and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        pusher.close()
        if bridge.process is not None and bridge.process.poll() is None:
            bridge.stop(signal.SIGTERM)
    missing, differ = [], []
    for scan, (trace, retrace) in scans.items():
        folder = out / scan
        if not (folder.is_dir() and _complete(folder)):
            missing.append(scan)
            continue
        meta = json.loads((folder / "meta.json").read_text())
        if (
            np.load(folder / "raw_trace.npy").tobytes() != trace.tobytes()
            or np.load(folder / "raw_retrace.npy").tobytes() != retrace.tobytes()
            or meta["rows_done"] != {"trace": ROWS, "retrace": ROWS}
        ):
            differ.append(scan)
    half_written += len(list(out.glob(".*.partial")))  # a clean stop leaves none (a restart removes a kill's)
    extra = sorted(f.name for f in out.iterdir() if f.is_dir() and f.name not in scans and f.name != ".journal")
    return {
        "kills": KILLS,
        "kill_points_s": kill_points,
        "scans_missing": missing,
        "scans_differing": differ,
        "extra_folders": extra,
        "half_written_seen": half_written,
        "restart_s_p50": round(float(np.median(restarts)), 2),
        "journals_left": len(list(out.glob(".journal/*"))),
    }


def test_kill_9_twenty_times_during_scans(benchmark, models, tmp_path):
    result = {}
    benchmark.pedantic(lambda: result.update(kill_and_restart(models, tmp_path / "scans")), rounds=1, iterations=1)
    benchmark.extra_info.update(
        case=f"kill -9 at random points of {KILLS} scans of {ROWS}x{COLS}, {RATE:g} lines/s, LinePusher with acks", **result
    )
    assert not result["scans_missing"] and not result["scans_differing"], result
    assert result["half_written_seen"] == 0 and result["journals_left"] == 0
