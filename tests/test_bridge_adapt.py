"""``maed serve --adapt``: a niced child process adapts the model between scans; accepted weights are loaded as
``set_model`` loads them, between updates, and refused rounds change nothing. Real processes and sockets on
loopback: ``maed serve`` in a process of its own (``served_bridge.Served``) fed by a ``LinePusher``.

The scans are small (128 x 128) and each round trains 3 steps (``--adapt-steps``), so these test the wiring, the
refusal and the swap, not what adaptation gains (``docs/results/adapt.md``). A few steps cannot earn acceptance,
so the swap's test sets the adapter's test hook (``MAED_ADAPT_TEST_ACCEPT=1``).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq
from served_bridge import CTX, Served, free_ports, wait_for

from maed.bridge.sources import LinePusher

SIZE = 128
EXTRA = ("--adapt", "--adapt-steps", "3", "--model", "rt")
ROUND_TIMEOUT_S = 240


def flat_scan(rng):
    """Both passes of a flat surface under independent white noise (metres): nothing for adaptation to improve."""
    return rng.normal(0, 5e-12, (SIZE, SIZE)).astype("<f4"), rng.normal(0, 5e-12, (SIZE, SIZE)).astype("<f4")


def push_scan(pusher, scan, trace, retrace, rate=None, stop=None):
    """One scan, both passes row by row; ``rate``: rows per second (None: as fast as the socket takes them)."""
    pusher.start(scan, SIZE, SIZE, (20e-9, 20e-9))
    t0 = time.perf_counter()
    for row in range(SIZE):
        if rate is not None:
            time.sleep(max(0.0, t0 + row / rate - time.perf_counter()))
        pusher.line(scan, row, trace[row])
        pusher.line(scan, row, retrace[row], pass_="retrace")
        if stop is not None and stop.is_set():
            break
    pusher.end(scan)


def adapter_result(served):
    status = served.status()
    return status if status and status["adapter"]["last"] is not None else None


class Recorder:
    """Every message the bridge publishes, with its arrival time, on a thread of its own."""

    def __init__(self, endpoint):
        self.sub = CTX.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.connect(endpoint)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.messages = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if self.sub.poll(100):
                frames = self.sub.recv_multipart()
                self.messages.append((frames[0].decode(), msgpack.unpackb(frames[1]), time.monotonic()))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sub.close()


def nice(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def children(pid):
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def test_without_adapt_no_adapter_process_starts(tmp_path):
    served = Served(tmp_path / "scans", free_ports(4))
    try:
        status = served.start()
        assert status["adapter"] is None
        assert children(served.process.pid) == []
    finally:
        served.stop(2)


def test_a_refused_round_changes_nothing_and_status_says_why(tmp_path):
    out = tmp_path / "scans"
    served = Served(out, free_ports(4), EXTRA)
    try:
        assert served.start()["adapter"]["state"] in ("starting", "idle")
        status = wait_for(
            lambda: (s := served.status()) and s["adapter"]["state"] == "idle" and s, 60, "the adapter process did not come up"
        )
        adapter = status["adapter"]
        assert adapter["needs"] == 3 and adapter["pid"] in children(served.process.pid)
        assert nice(adapter["pid"]) == min(19, nice(served.process.pid) + 10)
        before = status["weights_sha256"]
        pusher = LinePusher(served.pull)
        rng = np.random.default_rng(5)
        for i in range(2):
            push_scan(pusher, f"flat{i}", *flat_scan(rng))
        # The round holds out the last scan. Its passes agree exactly, so whatever the round learns from the others
        # (flat noise: to take more of it off) can only move its output further from its retrace: the held-out
        # error cannot drop, and the round must be refused.
        trace, _ = flat_scan(rng)
        push_scan(pusher, "flat2", trace, trace.copy())
        pusher.close()
        status = wait_for(lambda: adapter_result(served), ROUND_TIMEOUT_S, "the adapter reported no round")
    finally:
        log = served.stop(2)
    adapter = status["adapter"]
    last = adapter["last"]
    assert last["accepted"] is False and last["reasons"][0].startswith("held-out error"), last
    assert last["model"] is None and "loaded" not in last
    assert last["figures"]["steps"] == 3 and set(last["figures"]["paint_invented_peaks"]) == {"old", "new"}
    assert (adapter["rounds"], adapter["accepted"], adapter["refused"], adapter["swaps"]) == (1, 0, 1, 0)
    assert adapter["scans_received"] == 3 and adapter["scans_usable"] == 3 and adapter["state"] == "idle"
    assert status["weights_sha256"] == before and status["model"] == "rt"
    assert list((out / "models").iterdir()) == []  # nothing written, not even a temporary file
    assert "round refused, the model stays: held-out error" in log


def test_an_accepted_round_is_swapped_in_between_updates_without_a_lost_or_stalled_frame(tmp_path, monkeypatch):
    monkeypatch.setenv("MAED_ADAPT_TEST_ACCEPT", "1")
    out = tmp_path / "scans"
    served = Served(out, free_ports(4), EXTRA)
    recorder = None
    streaming = threading.Event()
    try:
        before = served.start()["weights_sha256"]
        recorder = Recorder(served.pub)
        pusher = LinePusher(served.pull)
        rng = np.random.default_rng(6)
        for i in range(3):
            push_scan(pusher, f"flat{i}", *flat_scan(rng))

        def stream():  # scans go on at 100 rows/s while the adapter trains and the bridge swaps
            k = 3
            while not streaming.is_set():
                push_scan(pusher, f"live{k}", *flat_scan(rng), rate=100, stop=streaming)
                k += 1

        thread = threading.Thread(target=stream, daemon=True)
        thread.start()
        status = wait_for(
            lambda: (s := served.status()) and s["adapter"]["swaps"] >= 1 and s, ROUND_TIMEOUT_S, "no adapted weights were swapped in"
        )
        time.sleep(2.0)  # frames after the swap
        streaming.set()
        thread.join()
        pusher.close()
        time.sleep(1.0)
    finally:
        log = served.stop(2)
        if recorder is not None:
            recorder.close()
    last = status["adapter"]["last"]
    new = last["weights_sha256"]
    assert last["accepted"] is True and last["loaded"] is True and last["test_hook"] is True, last
    assert new != before and last["base_sha256"] == before
    assert status["weights_sha256"] == new
    onnx = Path(last["model"])
    assert onnx.parent == out / "models" and onnx.is_file() and onnx.with_suffix(".pt").is_file()
    assert onnx.with_suffix(".json").is_file() and not list((out / "models").glob("*.tmp"))
    assert "new weights" in log and "loaded" in log
    # Each saved scan names the weights that made its frame, and adapted weights the base they came from.
    metas = [json.loads(p.read_text()) for p in out.rglob("meta.json")]
    assert {m["weights_sha256"] for m in metas} == {before, new}
    assert all(m["adapted_from"]["weights_sha256"] == before for m in metas if m["weights_sha256"] == new)
    assert all(m["adapted_from"] is None for m in metas if m["weights_sha256"] == before)

    messages = recorder.messages
    seqs = [h["seq"] for _, h, _ in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a published message was lost"
    updates = {}
    for topic, h, _ in messages:
        if topic.startswith("frame."):
            updates.setdefault((h["scan"], h["update"], h["final"]), set()).add(h["weights_sha256"])
    assert all(len(hashes) == 1 for hashes in updates.values()), "weights changed inside an update"
    # frame.rows: the message of every update (whole frames go out at most every FRAME_INTERVAL_S).
    denoised = [(h, t) for topic, h, t in messages if topic == "frame.rows"]
    hashes = [h["weights_sha256"] for h, _ in denoised]
    first_new = hashes.index(new)
    assert set(hashes[:first_new]) == {before} and set(hashes[first_new : first_new + 20]) == {new}
    swapped = denoised[first_new][0]
    # Swapped in while scans streamed: the first frame on the new weights is an update of a streamed scan, or its
    # final frame where the load finished between its last update and its end (a full-frame pass, between updates too).
    assert swapped["scan"].startswith("live")
    # Latency around the swap, against the frames of the same session before it (the adapter training meanwhile).
    # The streamed scans only, from the second on: the first three were pushed as fast as the socket took them, and
    # the first streamed scan waits behind that backlog.
    live = [(h["latency_ms"], t) for h, t in denoised if not h["final"] and h["scan"].startswith("live") and h["scan"] != "live3"]
    t_swap = denoised[first_new][1]
    near = [ms for ms, t in live if abs(t - t_swap) < 1.0]
    earlier = [ms for ms, t in live if t < t_swap - 1.0]
    # The stall would show between the updates of the first scan the new weights updated more than once: the swapped
    # one, or the next where the swap came with a final frame or with that scan's last update (on a loaded machine
    # the frame path merges the updates it fell behind on, so a scan may get one).
    updates_of: dict[str, list[float]] = {}
    for h, t in denoised[first_new:]:
        if not h["final"]:
            updates_of.setdefault(h["scan"], []).append(t)
    first_updated = next((scan for scan, times in updates_of.items() if len(times) >= 2), None)
    assert first_updated, f"no scan updated twice on the new weights: {updates_of}"
    gaps = np.diff([t for h, t in denoised if h["scan"] == first_updated and not h["final"]])
    assert near, "no streamed frame within 1 s of the swap: the frame path stalled"
    # On a loaded machine the round can finish before the second streamed scan is a second old: then there is no
    # baseline before the swap, and the floor alone judges.
    baseline = max(3 * np.percentile(earlier, 95), max(earlier)) if earlier else 0.0
    before_swap = f"p50 {np.median(earlier):.1f} ms, max {max(earlier):.1f} ms" if earlier else "no frames yet"
    print(
        f"\nlatency before the swap {before_swap}; within 1 s of it max {max(near):.1f} ms; longest gap between frames of "
        f"the scan {gaps.max() * 1e3:.0f} ms; the swapped frame and the next three "
        f"{[round(h['latency_ms']) for h, _ in denoised[first_new : first_new + 4]]} ms; the round took {last['seconds']} s"
    )
    # No stall: a swap on the frame path would cost a model load and its warm-up, and a gap between frames as long,
    # which the second assertion bounds at 0.5 s. The latency floor of a second stays above what a shared 2-core
    # machine adds to one frame while the adapter's child trains and the new weights load beside it (193 ms seen
    # against a 150 ms floor, and 660 ms against a 500 ms floor with 541 ms before the swap, 2026-12-06, the frames
    # around it 114, 46 and 41 ms, no gap over 115 ms); latency itself is the benchmarks' to time.
    assert max(near) <= max(baseline, 1000.0)
    assert gaps.max() < 0.5


def test_a_dead_adapter_is_restarted_and_the_bridge_serves_on(tmp_path):
    out = tmp_path / "scans"
    served = Served(out, free_ports(4), EXTRA)
    try:
        served.start()
        first = wait_for(
            lambda: (s := served.status()) and s["adapter"]["state"] == "idle" and s, 60, "the adapter process did not come up"
        )["adapter"]["pid"]
        os.kill(first, signal.SIGKILL)
        dead = wait_for(lambda: (s := served.status()) and s["adapter"]["restarts"] == 1 and s, 10, "the adapter's death was not noticed")
        assert dead["adapter"]["exit"] == "the adapter process exited with status -9"
        pusher = LinePusher(served.pull)  # the live path goes on meanwhile
        push_scan(pusher, "while-restarting", *flat_scan(np.random.default_rng(7)))
        pusher.close()
        status = wait_for(
            lambda: (
                (s := served.status())
                and s["scans_finished"] == 1
                and s["adapter"]["state"] == "idle"
                and s["adapter"]["scans_usable"] == 1
                and s
            ),
            60,
            "the adapter was not restarted with the scan",
        )
    finally:
        served.stop(2)
    adapter = status["adapter"]
    assert adapter["pid"] not in (None, first) and adapter["restarts"] == 1 and adapter["rounds"] == 0
    assert adapter["scans_received"] == 1


def test_the_live_adapter_runs_no_round_while_no_scan_can_teach_and_says_so_once_per_scan(tmp_path):
    """Scans smaller than the training crops never make a pair: no round runs on them, and the adapter says why once
    per scan that comes (every round failed anew, saying it again for each scan: 2,457 lines in 150 s)."""
    rng = np.random.default_rng(3)
    folders = []
    for i in range(4):
        folder = tmp_path / f"small{i}"
        folder.mkdir()
        (folder / "meta.json").write_text(json.dumps({"start": {"channel": "Z", "unit": "m", "range": [2e-8, 2e-8]}}))
        for name in ("raw_trace.npy", "raw_retrace.npy"):
            np.save(folder / name, rng.normal(0, 5e-12, (64, 64)).astype("<f4"))
        folders.append(folder)
    process = subprocess.Popen(
        [sys.executable, "-m", "maed.adapt_live", "--models", str(tmp_path / "models"), "--steps", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        events = [json.loads(process.stdout.readline())]  # ready
        for folder in folders:  # one at a time, as a bridge hands them over as each scan is saved
            process.stdin.write(json.dumps({"scan": str(folder), "model": "rt"}) + "\n")
            process.stdin.flush()
            events.append(json.loads(process.stdout.readline()))
        process.stdin.close()
        events += [json.loads(line) for line in process.stdout]
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert [e["usable"] for e in events if e["event"] == "scan"] == [True] * 4
    assert not any(e["event"] in ("round", "result") for e in events)
    said = [line for line in process.stderr.read().splitlines() if "no round yet" in line]
    assert len(said) == 2 and all("fewer than 96x96" in line for line in said)  # for the third scan and the fourth
