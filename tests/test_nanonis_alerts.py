"""Rules on alerts against the simulated Nanonis controller over TCP: opt-in pause and withdraw, and without
rules a source that only ever reads (every command the controller received is recorded)."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest
from fake_backends import IdentityBackend
from test_bridge_alerts import subscribe_alerts, until_finished
from test_nanonis_source import Collector

from maed.bridge.alerts.rules import parse_rules
from maed.bridge.protocol import Alert
from maed.bridge.server import Bridge, BridgeConfig
from maed.bridge.simulated import Scanner, SimulatedNanonis, simulated_frames
from maed.bridge.simulated.scanner import SimChannel, SimFrame
from maed.bridge.sources import NanonisSource

SIZE, EVENT_ROW = 64, 32
READ_ONLY = {"Scan.StatusGet", "Scan.BufferGet", "Scan.FrameGet", "Scan.SpeedGet", "Scan.FrameDataGrab"}


def frames_with(event: str):
    """Simulated frames whose topograph has a tip change (a lasting step of 20 line noise from the middle of
    the trace of row ``EVENT_ROW`` on) or a crash (Z at one value far above the surface from that row on)."""
    plain = simulated_frames(41)

    def make(k: int, size: int, up: bool) -> SimFrame:
        frame = plain(k, size, up)
        channels = []
        for c in frame.channels:
            if c.name == "Z (m)":
                forward, backward = c.forward.copy(), c.backward.copy()
                noise = float(np.std(np.diff(forward, axis=0))) / np.sqrt(2)
                if event == "tip_change":  # in the middle of the trace of the row: its retrace comes after
                    forward[EVENT_ROW, size // 2 :] += 20 * noise
                    forward[EVENT_ROW + 1 :] += 20 * noise
                    backward[EVENT_ROW:] += 20 * noise
                else:
                    for image in (forward, backward):
                        image[EVENT_ROW:] = np.float32(image.max() + 10 * np.ptp(image))
                c = SimChannel(c.index, c.name, forward, backward)
            channels.append(c)
        return SimFrame(tuple(channels), frame.width, frame.height)

    return make


def follow(event: str, rules: dict[str, str], tmp_path, until) -> tuple[SimulatedNanonis, NanonisSource, list[Alert]]:
    """A bridge following one scan of the simulated controller until ``until(nanonis)`` or the scan's end, saved
    under ``tmp_path / "scans"``; the alerts it published."""
    scanner = Scanner(frames_with(event), size=SIZE, line_rate=100, scans=1)
    # As maed serve sets it: with rules, every line judged live, whatever its share of the worker's time; without,
    # lines a loaded machine leaves unjudged are judged when the scan ends.
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", judge_every_line=bool(rules))
    with SimulatedNanonis(scanner, port=0) as nanonis, Bridge(config, backend=IdentityBackend()) as bridge:
        sub = subscribe_alerts(bridge.endpoints["pub"])
        source = NanonisSource(
            port=nanonis.port, scans=1, on_alert=rules, alerts=bridge.endpoints["pub"], commands_log=tmp_path / "commands.log"
        )
        bridge.follow_controller(source.status, source.commands_for)  # as maed serve does
        stop = threading.Event()
        thread = threading.Thread(target=source.run, args=(bridge.endpoints["pull"], stop), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while thread.is_alive() and not until(nanonis) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(10)
        # Until the scan is saved (scan.finished): every alert of it comes before, however slow a loaded machine is.
        alerts, _ = until_finished(sub, 1)
    return nanonis, source, alerts


def saved_meta(tmp_path) -> dict:
    """The ``meta.json`` of the one scan ``follow`` saved."""
    (meta,) = (tmp_path / "scans").glob("*/meta.json")
    return json.loads(meta.read_text())


def test_without_rules_the_controller_is_only_read(tmp_path):
    nanonis, source, alerts = follow("tip_change", {}, tmp_path, until=lambda n: False)
    assert any(a.kind == "tip_change" and abs(a.row - EVENT_ROW) <= 1 for a in alerts), alerts  # it was seen
    assert nanonis.calls and set(nanonis.calls) <= READ_ONLY, set(nanonis.calls) - READ_ONLY
    assert source.commands == [] and not nanonis.scanner.paused and not nanonis.scanner.withdrawn
    assert saved_meta(tmp_path)["controller_commands"] == []


def test_a_tip_change_pauses_the_scan(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="maed.bridge"):
        nanonis, source, alerts = follow("tip_change", {"tip_change": "pause"}, tmp_path, until=lambda n: "Scan.Action" in n.calls)
    assert nanonis.calls.count("Scan.Action") == 1 and "ZCtrl.Withdraw" not in nanonis.calls
    assert nanonis.scanner.paused
    (command,) = source.commands
    assert command.startswith("Scan.Action pause (tip_change at row ")
    assert source.status()["commands"] == [command]  # what `maed control status` shows under source
    assert saved_meta(tmp_path)["controller_commands"] == [command]  # and the scan's own record, kept with it
    assert any("sending Scan.Action pause" in r.getMessage() for r in caplog.records)
    # Kept on disk as it was sent, with its scan: a bridge killed after it still knows it paused the controller.
    (entry,) = [json.loads(line) for line in (tmp_path / "commands.log").read_text().splitlines()]
    assert entry["command"] == command and entry["scan"] == saved_meta(tmp_path)["scan"]


def test_a_resumed_scan_names_the_commands_a_killed_bridge_sent_and_says_the_controller_stays_paused(tmp_path, caplog):
    from maed.bridge.protocol import ScanStart

    log_file = tmp_path / "commands.log"
    sent = "Scan.Action pause (tip_change at row 49 of s1)"
    log_file.write_text(
        json.dumps({"time": "2026-12-07T21:35:08+00:00", "scan": "s0", "command": "ZCtrl.Withdraw (crash at row 3 of s0)"})
        + "\n"
        + json.dumps({"time": "2026-12-07T21:36:08+00:00", "scan": "s1", "command": sent})
        + "\n"
        + '{"time": "2026-12-07T21:3'  # torn by the kill
    )
    start = ScanStart(scan="s1", seq=0, rows=SIZE, cols=SIZE, channel="Z", unit="m", range=(1e-8, 1e-8), slow_axis="down")
    source = NanonisSource(port=1, resume=(start, []), commands_log=log_file)  # no rules now: still told
    stop = threading.Event()
    stop.set()  # only what the source does before its first poll
    sink = Collector()
    try:
        with caplog.at_level(logging.WARNING, logger="maed.bridge"):
            source.run(sink.endpoint, stop)
    finally:
        sink.close()
    assert source.commands_for("s1") == [sent] and source.status()["commands"] == [sent]
    assert ("s1", "pause") in source._acted  # with rules, the same scan would not be paused a second time
    assert "it was left paused: unless someone resumed it since, the controller waits for you to resume the scan" in caplog.text
    assert "withdrawn" not in caplog.text  # s0's withdraw is another scan's


def test_a_crash_withdraws_the_tip(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="maed.bridge.nanonis"):
        nanonis, source, alerts = follow("crash", {"crash": "withdraw"}, tmp_path, until=lambda n: "ZCtrl.Withdraw" in n.calls)
    # The simulated controller says so: it scans no more until started, which a person watching it must know.
    assert "ZCtrl.Withdraw: the tip is withdrawn and the scan stopped" in caplog.text
    assert any(a.kind == "crash" and a.row == EVENT_ROW for a in alerts), alerts
    assert nanonis.calls.count("ZCtrl.Withdraw") == 1 and nanonis.scanner.withdrawn
    assert any(c.startswith(f"ZCtrl.Withdraw (crash at row {EVENT_ROW} ") for c in source.commands)


@pytest.mark.parametrize(
    "text, says",
    [
        ("tip_change=stop", "actions: pause, withdraw"),
        ("tipchange=pause", "kinds: tip_change"),
        ("tip_change=pause,tip_change=withdraw", "two actions"),
        ("tip_change=pause,,crash=withdraw", "an empty pair between two commas"),
        ("", "at least one"),
        ("drift=pause", "cannot act on drift: it is judged from frame to frame once a scan has ended"),
    ],
)
def test_bad_rules_are_one_line_errors(text, says):
    with pytest.raises(ValueError, match=says):
        parse_rules(text)
    assert parse_rules("tip_change=pause, crash=withdraw") == {"tip_change": "pause", "crash": "withdraw"}


@pytest.mark.parametrize("rules, judged", [(["--on-alert", "tip_change=pause"], True), ([], False)])
def test_serve_judges_every_line_live_where_rules_act_on_alerts(tmp_path, monkeypatch, capsys, rules, judged):
    from maed.bridge import server
    from maed.cli import main

    seen = []

    def bridge(config):
        seen.append(config)
        raise ValueError("bridge not started")

    monkeypatch.setattr(server, "Bridge", bridge)
    scanner = Scanner(frames_with("tip_change"), size=SIZE, line_rate=100, scans=1)
    with SimulatedNanonis(scanner, port=0) as nanonis:
        args = ["serve", "--source", "nanonis", "--nanonis-port", str(nanonis.port), "--no-preview", "--out", str(tmp_path)]
        assert main(args + rules) == 2
    assert "bridge not started" in capsys.readouterr().err
    (config,) = seen
    assert config.judge_every_line is judged


def test_an_alert_found_again_after_a_restart_is_not_acted_on(tmp_path):
    """A restarted bridge judges the lines it rebuilt from its journal again and marks what it finds there
    ``recovered``: the rule acted on it before the bridge died, so it does not pause the scan a second time. The
    alerts come from a PUB socket of the test, as the bridge publishes them; the commands go to the simulated
    controller over TCP."""
    import zmq

    from maed.bridge.nanonis.client import NanonisClient
    from maed.bridge.protocol import encode
    from maed.bridge.sources.nanonis import _Followed

    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    scanner = Scanner(frames_with("tip_change"), size=SIZE, line_rate=100, scans=1)
    with SimulatedNanonis(scanner, port=0) as nanonis:
        source = NanonisSource(port=nanonis.port, on_alert={"tip_change": "pause"}, alerts=f"tcp://127.0.0.1:{port}")
        alerts = source._subscribe(None)
        source._followed = _Followed("s", 0, SIZE, SIZE, False, np.zeros((SIZE, SIZE)), np.zeros(SIZE, bool), {})
        client = NanonisClient(port=nanonis.port)
        try:
            time.sleep(0.3)  # the subscription reaches the publisher
            tip = {"scan": "s", "kind": "tip_change", "row": 5, "columns": (0, SIZE), "severity": "warning"}
            pub.send_multipart(encode(Alert(seq=0, evidence={"recovered": 1, "step": 1.0}, **tip)))
            time.sleep(0.3)
            source._act(client, alerts)
            assert source.commands == [] and not nanonis.scanner.paused
            pub.send_multipart(encode(Alert(seq=1, evidence={"step": 1.0}, **tip)))
            time.sleep(0.3)
            source._act(client, alerts)
            assert len(source.commands) == 1 and source.commands[0].startswith("Scan.Action pause (tip_change at row 5")
        finally:
            client.close()
            alerts.close(linger=0)
            pub.close(linger=0)


def test_a_command_is_on_disk_before_it_goes_out(tmp_path):
    """The controller's connection fails as the pause is sent (the bridge may be killed at that moment too): the
    command is in the log all the same, so a restarted bridge knows it may have paused the scan."""
    import zmq

    from maed.bridge.nanonis.client import NanonisConnectionError
    from maed.bridge.protocol import encode
    from maed.bridge.sources.nanonis import _Followed

    class FailingClient:
        def scan_action(self, action):
            raise NanonisConnectionError("connection reset as the command went out")

    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    log_file = tmp_path / "commands.log"
    source = NanonisSource(port=1, on_alert={"tip_change": "pause"}, alerts=f"tcp://127.0.0.1:{port}", commands_log=log_file)
    alerts = source._subscribe(None)
    source._followed = _Followed("s", 0, SIZE, SIZE, False, np.zeros((SIZE, SIZE)), np.zeros(SIZE, bool), {})
    try:
        time.sleep(0.3)  # the subscription reaches the publisher
        tip = {"scan": "s", "kind": "tip_change", "row": 5, "columns": (0, SIZE), "severity": "warning"}
        pub.send_multipart(encode(Alert(seq=0, evidence={"step": 1.0}, **tip)))
        time.sleep(0.3)
        with pytest.raises(NanonisConnectionError):
            source._act(FailingClient(), alerts)
    finally:
        alerts.close(linger=0)
        pub.close(linger=0)
    (entry,) = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert entry["scan"] == "s" and entry["command"].startswith("Scan.Action pause (tip_change at row 5")
