"""``kill -9`` of a bridge following a simulated Nanonis controller (``--source nanonis``), 20 times.

The controller (``SimulatedNanonis`` over real TCP, in this process, so it outlives the bridge)
scans one frame per round and stops at its end; ``maed serve --source nanonis`` runs in a process of
its own and is killed at a random instant of the frame (while rows arrive, as the scan ends, while
it is saved), then started again on the same folder. The Nanonis source dies with the bridge: the
restarted one takes up the scan the journal resumed and re-grabs the frame the controller still
holds. After every restart the frame must be saved complete: every row the controller scanned is in
one saved folder, bit for bit, ``complete: true``; nothing half-written is ever visible. Slow (20
restarts of a bridge that loads its model), so it lives here; the single-restart cases are
``tests/test_nanonis_source.py``.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
from served_bridge import Served, free_ports
from test_bridge_kill import _complete

from maed.bridge.simulated import Scanner, SimulatedNanonis, simulated_frames
from maed.zoo import PRODUCT

KILLS = 20
SIZE = 64
LINE_RATE = 40.0  # lines/s (trace and retrace): a frame takes 1.6 s, about twice a restart
SEED = 70


def _frame(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``k`` of the controller, in image order: trace and retrace of the topograph."""
    z = next(c for c in simulated_frames(SEED)(k, SIZE, False).channels if c.name == "Z (m)")
    return z.forward, z.backward


def _saved(folder: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    meta = json.loads((folder / "meta.json").read_text())
    return meta, np.load(folder / "raw_trace.npy"), np.load(folder / "raw_retrace.npy")


def _holds_whole(folder: Path, trace: np.ndarray, retrace: np.ndarray) -> bool:
    meta, raw_trace, raw_retrace = _saved(folder)
    return (
        raw_trace.tobytes() == trace.astype("<f4").tobytes()
        and raw_retrace.tobytes() == retrace.astype("<f4").tobytes()
        and meta["end"]["complete"] is True
    )


def _part_of(folder: Path, trace: np.ndarray) -> bool:
    """Whether a saved folder holds rows of ``trace`` (bit for bit where it has any) and no others."""
    _, raw_trace, _ = _saved(folder)
    rows = np.isfinite(raw_trace).all(axis=1)
    return raw_trace.shape == trace.shape and rows.any() and raw_trace[rows].tobytes() == trace[rows].tobytes()


def kill_and_restart(models, out: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    scanner = Scanner(simulated_frames(SEED), size=SIZE, line_rate=LINE_RATE, scans=1)
    scanner.stop()  # frame 0 is not part of the run: each round starts a frame of its own
    frame_s = SIZE / LINE_RATE
    restarts, kill_points, half_written, waits = [], [], 0, []
    missing, extra = [], 0
    with SimulatedNanonis(scanner, port=0) as controller:
        bridge = Served(
            out, free_ports(4), ("--model", str(models(PRODUCT).onnx), "--source", "nanonis", "--nanonis-port", str(controller.port))
        )
        bridge.start()
        try:
            for k in range(1, KILLS + 1):
                trace, retrace = _frame(k)
                before = {f.name for f in out.iterdir()} if out.is_dir() else set()
                scanner.start(up=False)  # frame k
                when = rng.uniform(0, 1.3 * frame_s)  # while rows arrive, and into the end and the save
                time.sleep(when)
                bridge.stop(signal.SIGKILL)
                kill_points.append(round(when, 3))
                half_written += sum(not _complete(f) for f in out.iterdir() if f.is_dir() and not f.name.startswith("."))
                t = time.perf_counter()
                bridge.start()
                restarts.append(time.perf_counter() - t)
                deadline = time.monotonic() + 60
                whole = None
                while whole is None and time.monotonic() < deadline:
                    new = [f for f in out.iterdir() if f.name not in before and f.is_dir() and not f.name.startswith(".") and _complete(f)]
                    whole = next((f for f in new if _holds_whole(f, trace, retrace)), None)
                    time.sleep(0.05)
                waits.append(time.perf_counter() - t)
                if whole is None:
                    missing.append(k)
                    continue
                # A folder of this frame other than the whole one: a part saved as a scan of its own.
                extra += sum(int(f != whole and _part_of(f, trace)) for f in new)
        finally:
            if bridge.process is not None and bridge.process.poll() is None:
                bridge.stop(signal.SIGTERM)
    half_written += len(list(out.glob(".*.partial")))
    recovered = sum(
        _saved(f)[0].get("recovered", False)
        for f in out.iterdir()
        if f.is_dir() and not f.name.startswith(".") and (f / "meta.json").is_file()
    )
    return {
        "kills": KILLS,
        "kill_points_s": kill_points,
        "frames_missing": missing,
        "partial_scans_saved": extra,
        "half_written_seen": half_written,
        "scans_recovered": recovered,
        "restart_s_p50": round(float(np.median(restarts)), 2),
        "saved_after_restart_s_max": round(max(waits), 2),
        "journals_left": len(list(out.glob(".journal/*"))),
    }


def test_kill_9_twenty_times_following_nanonis(benchmark, models, tmp_path):
    result = {}
    benchmark.pedantic(lambda: result.update(kill_and_restart(models, tmp_path / "scans")), rounds=1, iterations=1)
    benchmark.extra_info.update(
        case=f"kill -9 at random points of {KILLS} Nanonis frames of {SIZE}x{SIZE}, "
        f"{LINE_RATE:g} lines/s, maed serve --source nanonis against SimulatedNanonis",
        **result,
    )
    print(result)
    assert not result["frames_missing"], result
    assert result["half_written_seen"] == 0 and result["journals_left"] == 0, result
