"""A live bridge fed by the simulated Nanonis controller over TCP, in process and from the command line."""

import json
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from test_bridge_live import BlurBackend, Subscriber, config, control

from maed.bridge.server import Bridge
from maed.bridge.simulated import Scanner, SimulatedNanonis, simulated_frames
from maed.bridge.sources import NanonisSource

SEED = 31


def test_a_bridge_fed_by_nanonis_publishes_denoised_frames_while_it_scans(tmp_path):
    size = 64
    z = next(c for c in simulated_frames(SEED)(0, size, False).channels if c.name == "Z (m)")
    scanner = Scanner(simulated_frames(SEED), size=size, line_rate=100, scans=1)
    with SimulatedNanonis(scanner, port=0) as nanonis, Bridge(config(tmp_path), backend=BlurBackend()) as bridge:
        sub = Subscriber(bridge.endpoints["pub"])
        source = NanonisSource(port=nanonis.port, scans=1)
        thread = threading.Thread(target=source.run, args=(bridge.endpoints["pull"], threading.Event()), daemon=True)
        thread.start()
        thread.join(30)  # returns after its one scan
        assert not thread.is_alive()
        scan = sub.of("frame.raw")[0][1]["scan"]
        end = sub.wait_finished(scan)
        status = control(bridge.endpoints["control"], {"cmd": "status"})
        sub.close()

    live = [m for m in sub.of("frame.denoised", scan) if not m[1]["final"]]
    assert live and any(0 < m[1]["rows_done"] < size for m in live), "no denoised frame while the scan ran"
    assert [m[1]["rows_done"] for m in live] == sorted(m[1]["rows_done"] for m in live)
    raw = {m[1]["pass"]: m for m in sub.of("frame.raw", scan) if m[1]["final"]}
    assert raw["trace"][3] == z.forward.astype("<f4").tobytes() and raw["retrace"][3] == z.backward.astype("<f4").tobytes()
    assert end["complete"] is True and end["reason"] == "end" and end["rows_done"] == size
    assert status["lines_received"] == 2 * size and status["lines_dropped"] == 0 and status["faults"] == {}
    meta = json.loads((Path(end["saved"]) / "meta.json").read_text())
    assert (meta["start"]["channel"], meta["start"]["unit"], meta["start"]["slow_axis"]) == ("Z", "m", "down")


def test_serve_follows_maed_sim_nanonis(tmp_path, monkeypatch, capsys):
    from maed.bridge import server
    from maed.cli import main

    monkeypatch.setattr(server, "load_backend", lambda backend, model: BlurBackend())
    # 50 lines/s: a continuous scan keeps a finished frame readable for one line period (20 ms here), and a
    # poll later than that on a loaded CI core loses the frame's last row (docs/reliability.md).
    sim = subprocess.Popen(
        [sys.executable, "-m", "maed.cli", "sim-nanonis", "--port", "0", "--size", "48", "--line-rate", "50"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([sim.stderr], [], [], 30)
        assert ready, "maed sim-nanonis printed nothing"
        banner = sim.stderr.readline()
        port = re.search(r"on 127\.0\.0\.1:(\d+):", banner).group(1)
        out = tmp_path / "served"
        assert (
            main(
                [
                    "serve",
                    "--source",
                    "nanonis",
                    "--nanonis-port",
                    port,
                    "--scans",
                    "1",
                    "--no-preview",
                    "--pull-port",
                    "0",
                    "--pub-port",
                    "0",
                    "--control-port",
                    "0",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(10) == 0
    (folder,) = out.iterdir()
    raw = np.load(folder / "raw_trace.npy")
    assert raw.shape == (48, 48) and np.isfinite(raw).all()  # joined mid-frame: the rows scanned before come too
    assert np.isfinite(np.load(folder / "denoised.npy")).all()
    assert f"following the scans of Nanonis at 127.0.0.1:{port}, channel Z (m)" in capsys.readouterr().err


def test_serve_with_an_unreachable_nanonis_is_a_one_line_error(capsys):
    from maed.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    assert main(["serve", "--source", "nanonis", "--nanonis-port", str(port), "--no-preview"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"maed: error: cannot reach Nanonis at 127.0.0.1:{port}: connection refused"
    assert time.monotonic() - started < 5


def test_a_bridge_killed_while_it_follows_nanonis_saves_the_whole_frame_after_its_restart(tmp_path):
    from served_bridge import Served, free_ports, saved_folders, wait_for

    size = 48
    z = next(c for c in simulated_frames(SEED)(1, size, False).channels if c.name == "Z (m)")
    scanner = Scanner(simulated_frames(SEED), size=size, line_rate=40, scans=1)
    scanner.stop()
    out = tmp_path / "scans"
    with SimulatedNanonis(scanner, port=0) as nanonis:
        bridge = Served(out, free_ports(4), ("--source", "nanonis", "--nanonis-port", str(nanonis.port)))
        bridge.start()
        try:
            scanner.start(up=False)  # frame 1: 1.2 s
            wait_for(lambda: ((bridge.status() or {}).get("rows_done") or 0) >= 8, 10, "no rows arrived")
            bridge.stop(signal.SIGKILL)  # the source dies with it, mid-frame
            status = bridge.start()
            assert status["recoveries"] == 1 and status["lines_recovered"] >= 8
            (folder,) = wait_for(lambda: saved_folders(out), 30, "the frame was not saved")
        finally:
            log = bridge.stop(signal.SIGTERM)
    meta = json.loads((folder / "meta.json").read_text())
    assert np.load(folder / "raw_trace.npy").tobytes() == z.forward.astype("<f4").tobytes(), log
    assert np.load(folder / "raw_retrace.npy").tobytes() == z.backward.astype("<f4").tobytes()
    assert meta["end"] == {"complete": True, "reason": "end", "why": None} and meta["recovered"] is True
    assert len(saved_folders(out)) == 1 and not (out / ".journal").exists()


def test_status_says_whether_the_controller_answers(tmp_path):
    """``status``'s ``state`` stays ``scanning`` while a controller that stopped answering holds the open scan; its
    ``source`` says the controller is not answering, and why, where the terminal alone said it before."""
    from served_bridge import Served, free_ports, wait_for

    scanner = Scanner(simulated_frames(SEED), size=48, line_rate=20, scans=0)
    with SimulatedNanonis(scanner, port=0) as nanonis:
        bridge = Served(tmp_path / "scans", free_ports(4), ("--source", "nanonis", "--nanonis-port", str(nanonis.port)))
        bridge.start()
        try:
            source = wait_for(
                lambda: ((bridge.status() or {}).get("source") or {}).get("following") and bridge.status()["source"], 10, "a scan followed"
            )
            assert source["kind"] == "nanonis" and source["address"] == f"127.0.0.1:{nanonis.port}"
            assert source["answering"] is True and source["problem"] is None and source["last_answer_s"] < 5
            assert source["commands"] == []  # no --on-alert: nothing but reads was ever sent
        except BaseException:
            bridge.stop(signal.SIGTERM)
            raise
    try:
        gone = wait_for(lambda: not bridge.status()["source"]["answering"] and bridge.status(), 15, "the controller's silence")
        assert gone["state"] == "scanning" and "reconnecting" in gone["source"]["problem"]
    finally:
        bridge.stop(signal.SIGTERM)
