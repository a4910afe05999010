"""Nothing is lost without a sign: a thread that fails is restarted and counted, every loss (save
failures, a full disk, rejected scans, restarts) is in ``status`` with its last reason, and the
budgets (pixels per scan, parts per message) are enforced before anything is allocated.

Real ZeroMQ sockets on 127.0.0.1 and real files; failures are injected where no real input can cause
them (a bug in a loop, a full disk).
"""

import errno
import json
import threading

import msgpack
import numpy as np
import pytest
import zmq
from test_bridge_journal import CTX, BlurBackend, Controller, image, saved_folders, wait_for

from maed.bridge import server as server_module
from maed.bridge import worker as worker_module
from maed.bridge.protocol import decode_published
from maed.bridge.server import Bridge, BridgeConfig


def config(tmp_path, **kw):
    return BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", **kw)


def request(endpoint, cmd="status", timeout_ms=3000):
    """One control request over a real REQ socket; None when no reply comes in time."""
    req = CTX.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    try:
        req.send(msgpack.packb({"cmd": cmd}))
        return msgpack.unpackb(req.recv()) if req.poll(timeout_ms) else None
    finally:
        req.close()


def subscribed(bridge, topic):
    """A SUB socket on the bridge's frames, subscribed to ``topic``, once the bridge answers ``status``."""
    sub = CTX.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(bridge.endpoints["pub"])
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    wait_for(lambda: request(bridge.endpoints["control"]) is not None, 5, "no status")
    return sub


def send_scan(c, scan, data):
    c.start(scan, *data.shape)
    for row in range(data.shape[0]):
        c.line(scan, row, data[row])
    c.end(scan)


def raw_message(topic, header, *payload):
    return [topic, msgpack.packb(header, use_bin_type=True), *payload]


START = {"v": 2, "seq": 0, "rows": 8, "cols": 8, "channel": "Z", "unit": "m", "range": [1e-8, 1e-8], "slow_axis": "down"}


# --- the supervisor ---------------------------------------------------------------------------


def fail_once(target, name):
    """Make ``target.name`` raise the first time it is called, then behave as before."""
    original = getattr(target, name)
    calls = []

    def failing(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"injected into {name}")
        return original(*args, **kw)

    setattr(target, name, failing)


@pytest.mark.parametrize("thread, method", [("ingest", "expire"), ("worker", "take"), ("journal", "flush")])
def test_a_thread_whose_loop_fails_is_restarted_counted_and_goes_on(tmp_path, thread, method):
    bridge = Bridge(config(tmp_path, ack_port=0), backend=BlurBackend())
    fail_once(bridge.ingest, method)  # each is called by that thread's loop only, from its first turn
    data = image(1, 16, 8)
    with bridge:
        acks = CTX.socket(zmq.SUB)
        acks.setsockopt(zmq.LINGER, 0)
        acks.connect(bridge.endpoints["ack"])
        acks.setsockopt(zmq.SUBSCRIBE, b"scan.journaled")
        wait_for(lambda: request(bridge.endpoints["control"])["restarts"] == 1, 10, f"the {thread} thread's failure was not counted")
        c = Controller(bridge.endpoints["pull"])
        send_scan(c, "s", data)
        assert bridge.wait_finished(1, 20), f"no scan finished after the {thread} thread failed"
        last = c.seq - 1
        journaled = []
        while not journaled or journaled[-1] < last:  # the journal thread acknowledges the scan.end
            assert acks.poll(5000), f"no acknowledgement after the {thread} thread failed"
            journaled.append(decode_published(acks.recv_multipart()).journaled_seq)
        status = request(bridge.endpoints["control"])
        c.close()
        acks.close()
    assert status["restarts"] == 1
    assert status["last_restart"] == f"{thread} thread: RuntimeError: injected into {method}"
    (folder,) = saved_folders(tmp_path / "scans")
    assert np.load(folder / "raw_trace.npy").tobytes() == data.tobytes()


def test_a_control_request_that_fails_unexpectedly_is_answered_and_the_loop_restarted(tmp_path, monkeypatch):
    calls = []
    respond = server_module.respond

    def failing(frames, handlers):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected into respond")
        return respond(frames, handlers)

    monkeypatch.setattr(server_module, "respond", failing)
    with Bridge(config(tmp_path), backend=BlurBackend()) as bridge:
        first = request(bridge.endpoints["control"])
        second = request(bridge.endpoints["control"])
    assert first is not None and first["ok"] is False and "failed on this request" in first["error"]
    assert second is not None and second["ok"] is True
    assert second["restarts"] == 1 and "control thread: RuntimeError: injected into respond" == second["last_restart"]


# --- losses in status -------------------------------------------------------------------------


def test_a_scan_start_with_a_key_that_is_not_a_string_is_rejected_and_counted(tmp_path):
    with Bridge(config(tmp_path), backend=BlurBackend()) as bridge:
        push = CTX.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 1000)
        push.connect(bridge.endpoints["pull"])
        push.send_multipart(raw_message(b"scan.start", {**START, "scan": "bytes-key", b"operator": "x"}))
        # A nested map of a controller's extra keys may be keyed by anything: the scan is kept, and saved.
        push.send_multipart(raw_message(b"scan.start", {**START, "scan": "nested", "seq": 1, "extra": {b"k": 1}}))
        push.send_multipart(raw_message(b"scan.end", {"v": 2, "scan": "nested", "seq": 2, "complete": False}))
        assert bridge.wait_finished(1, 10), "the scan with a nested bytes key was never finished"
        status = request(bridge.endpoints["control"])
        push.close()
    assert status["scans_rejected"] == 1 and status["faults"] == {"header": 1}
    assert status["last_scan_rejected"] == "header: scan.start header has a key that is not a string"
    assert status["save_failures"] == 0
    (folder,) = saved_folders(tmp_path / "scans")
    assert json.loads((folder / "meta.json").read_text())["start"]["extra"] == {"b'k'": 1}


def test_a_save_that_fails_for_a_full_disk_is_counted_and_the_scan_saved_by_the_next_start(tmp_path, monkeypatch):
    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    data = image(2, 8, 8)
    with monkeypatch.context() as patch:
        patch.setattr(worker_module, "save_scan", full)
        with Bridge(config(tmp_path, ack_port=0), backend=BlurBackend()) as bridge:
            sub = subscribed(bridge, b"scan.finished")
            c = Controller(bridge.endpoints["pull"])
            c.start("full", 8, 8)
            assert not sub.poll(200)  # the subscription is in place before anything is published
            for row in range(8):
                c.line("full", row, data[row])
            c.end("full")
            assert sub.poll(10_000), "no scan.finished for a scan that could not be saved"
            finished = decode_published(sub.recv_multipart())
            status = request(bridge.endpoints["control"])
            c.close()
            sub.close()
    assert finished.scan == "full" and finished.saved == ""
    assert status["save_failures"] == 1 and status["disk_full"] == 1
    assert status["last_save_failure"] == status["last_disk_full"] == "scan 'full': [Errno 28] No space left on device"
    assert status["last_saved"] == "" and saved_folders(tmp_path / "scans") == []
    assert len(list((tmp_path / "scans" / ".journal").iterdir())) == 1  # the journal is the copy
    with Bridge(config(tmp_path), backend=BlurBackend()) as bridge:  # a disk with room again
        assert bridge.wait_finished(1, 10)
    (folder,) = saved_folders(tmp_path / "scans")
    assert np.load(folder / "raw_trace.npy").tobytes() == data.tobytes()


# --- budgets ----------------------------------------------------------------------------------


def test_a_scan_over_the_pixel_budget_is_refused_before_anything_is_allocated(tmp_path):
    with Bridge(config(tmp_path, max_pixels=64 * 64), backend=BlurBackend()) as bridge:
        c = Controller(bridge.endpoints["pull"])
        c.start("huge", 4096, 4096)
        c.line("huge", 0, np.zeros(4096, "<f4"))
        c.end("huge")
        send_scan(c, "fits", image(3, 64, 64))
        assert bridge.wait_finished(1, 10)
        status = request(bridge.endpoints["control"])
        c.close()
    assert status["faults"] == {"budget": 1, "unknown_scan": 2}
    assert status["scans_rejected"] == 1
    assert status["last_scan_rejected"] == ("budget: scan 'huge' of 4096x4096 pixels is over the budget of 4,096 pixels per scan")
    assert [p.name for p in saved_folders(tmp_path / "scans")] == ["fits"]
    assert not (tmp_path / "scans" / ".journal").exists()


def test_a_message_of_more_parts_than_any_message_has_is_refused_as_over_budget(tmp_path):
    with Bridge(config(tmp_path), backend=BlurBackend()) as bridge:
        push = CTX.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 1000)
        push.connect(bridge.endpoints["pull"])
        push.send_multipart([b"line"] + [bytes(64 << 10)] * 64)  # 4 MiB in 65 parts, each under the part limit
        c = Controller(bridge.endpoints["pull"])
        send_scan(c, "after", image(4, 8, 8))
        assert bridge.wait_finished(1, 10)
        status = request(bridge.endpoints["control"])
        c.close()
        push.close()
    assert status["faults"] == {"budget": 1} and status["messages_malformed"] == 1
    assert status["lines_received"] == 8


class HeldBackend(BlurBackend):
    """A back end whose first call waits until released: a worker far behind ingest."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def denoise(self, batch):
        self.entered.set()
        assert self.release.wait(30)
        return super().denoise(batch)


def test_lines_that_come_with_the_scan_s_end_go_out_before_its_full_frame_pass(tmp_path):
    # The worker held in its first update while the rest of the scan and its end arrive: they come to it as one
    # batch. Their rows went out only with the final frame, after the full-frame pass (1.5 s for 1024 rows).
    rows, cols = 32, 64
    backend, data = HeldBackend(), image(4, rows, cols)
    with Bridge(config(tmp_path), backend=backend) as bridge:
        sub = subscribed(bridge, b"frame.rows")
        c = Controller(bridge.endpoints["pull"])
        send_scan(c, "held", data[:1])  # a scan of one row: the worker takes it and holds
        c.start("late", rows, cols)
        assert backend.entered.wait(10), "the worker never denoised"
        for row in range(rows):
            c.line("late", row, data[row])
        c.end("late")
        wait_for(lambda: request(bridge.endpoints["control"])["lines_received"] == rows + 1, 10, "lines not received")
        backend.release.set()
        published = []
        while not (published and published[-1].scan == "late" and published[-1].final):
            assert sub.poll(10_000), "no final frame.rows"
            published.append(decode_published(sub.recv_multipart()))
        c.close()
        sub.close()
    live = [m for m in published if m.scan == "late" and not m.final]
    assert live and max(m.row_stop for m in live) == rows  # the last row, live, before the final frame


def test_finished_scans_waiting_beyond_the_backlog_budget_are_read_back_from_their_journals(tmp_path):
    rows, cols, scans = 32, 64, 12
    budget = 3 * rows * cols * 4  # three scans' lines
    backend = HeldBackend()
    data = [image(10 + i, rows, cols) for i in range(scans)]
    with Bridge(config(tmp_path, max_backlog_bytes=budget), backend=backend) as bridge:
        c = Controller(bridge.endpoints["pull"])
        send_scan(c, "s00", data[0])
        # The worker held in the first scan before the others come, or under load it may take several at once.
        assert backend.entered.wait(10), "the worker never denoised"
        for i in range(1, scans):
            send_scan(c, f"s{i:02d}", data[i])
        # Every line in and every scan.end taken (the last ends trail the lines they close): all but the
        # scan held in the worker wait.
        held = wait_for(
            lambda: (lambda s: s if s["lines_received"] == rows * scans and s["backlog_scans"] >= scans - 1 else None)(
                request(bridge.endpoints["control"])
            ),
            10,
            "the scans did not all arrive",
        )
        backend.release.set()
        assert bridge.wait_finished(scans, 30)
        after = request(bridge.endpoints["control"])
        c.close()
    # Ingest went on while the worker was held; what waited in memory stayed within the budget.
    assert 0 < held["backlog_bytes"] <= budget
    assert held["scans_spilled"] >= scans - 1 - 3
    assert after["backlog_scans"] == 0 and after["backlog_bytes"] == 0 and after["save_failures"] == 0
    folders = saved_folders(tmp_path / "scans")
    assert [f.name for f in folders] == [f"s{i:02d}" for i in range(scans)]
    for folder, expected in zip(folders, data):  # every raw line, the spilled ones read back bit for bit
        assert np.load(folder / "raw_trace.npy").tobytes() == expected.tobytes()
