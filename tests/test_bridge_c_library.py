"""libmaed_client (bridge/clients/), driven through ctypes against a live bridge on loopback, both ways.

The caller's side here is what a LabVIEW or MATLAB program has: plain calls with ints, doubles, strings and
float buffers, no msgpack and no ZeroMQ. A scan pushed through the library comes back through it bit for bit
(raw frames against the lines pushed and the bridge's saved raw, the final denoised frame against its saved
denoised.npy), with its alerts and status; the push queue is bounded and refuses when full; lines the bridge
lost to ``kill -9`` are resent from the library's queue; a hostile publisher's messages are refused with
their reason.
"""

import ctypes
import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from fake_backends import IdentityBackend
from served_bridge import Served, free_ports, saved_folders, stopped, wait_for

from maed.bridge.server import Bridge, BridgeConfig

CLIENTS = Path(__file__).resolve().parents[1] / "bridge" / "clients"
CC = shutil.which("cc") or shutil.which("gcc")
CTX = zmq.Context.instance()

OK, E_ARG, E_PROTOCOL, E_SIZE, E_FULL, E_STATE, E_TIMEOUT = 0, -1, -3, -4, -5, -9, -10
RAW, DENOISED, ROWS_UPDATE, ALERT, FINISHED = 1, 2, 3, 4, 5
TRACE, RETRACE = 0, 1
int_p, double_p, float_p = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_float)
c_char_p, c_int, c_double, c_void_p = ctypes.c_char_p, ctypes.c_int, ctypes.c_double, ctypes.c_void_p

SIGNATURES = {  # name: (restype, argtypes), as include/maed_client.h declares them
    "maed_protocol_version": (c_int, []),
    "maed_strerror": (c_char_p, [c_int]),
    "maed_sub_open": (c_void_p, [c_char_p, c_int, c_char_p, c_char_p, int_p]),
    "maed_sub_next": (c_int, [c_void_p, c_int]),
    "maed_sub_frame": (c_int, [c_void_p, float_p, c_int, int_p, int_p, int_p, int_p]),
    "maed_sub_rows_range": (c_int, [c_void_p, int_p, int_p, int_p, double_p]),
    "maed_sub_scan": (c_int, [c_void_p, c_char_p, c_int]),
    "maed_sub_seq": (c_int, [c_void_p, double_p]),
    "maed_sub_pass": (c_int, [c_void_p, int_p]),
    "maed_sub_unit": (c_int, [c_void_p, c_char_p, c_int]),
    "maed_sub_channel": (c_int, [c_void_p, c_char_p, c_int]),
    "maed_sub_range": (c_int, [c_void_p, double_p, double_p, int_p]),
    "maed_sub_trust": (c_int, [c_void_p, c_char_p, c_int]),
    "maed_sub_alert": (c_int, [c_void_p, c_char_p, c_int, int_p, int_p, int_p, int_p]),
    "maed_sub_alert_late": (c_int, [c_void_p, int_p]),
    "maed_sub_alert_recovered": (c_int, [c_void_p, int_p]),
    "maed_sub_finished": (c_int, [c_void_p, int_p, int_p, c_char_p, c_int]),
    "maed_sub_error": (c_int, [c_void_p, c_char_p, c_int]),
    "maed_sub_close": (None, [c_void_p]),
    "maed_push_open": (c_void_p, [c_char_p, c_char_p, c_char_p, c_char_p, c_int, int_p]),
    "maed_push_start": (c_int, [c_void_p, c_char_p, c_int, c_int, c_char_p, c_char_p, c_double, c_double, c_int]),
    "maed_push_line": (c_int, [c_void_p, c_int, c_int, float_p, c_int]),
    "maed_push_end": (c_int, [c_void_p, c_int]),
    "maed_push_pending": (c_int, [c_void_p]),
    "maed_push_counters": (c_int, [c_void_p, double_p, double_p, double_p]),
    "maed_push_wait": (c_int, [c_void_p, c_int]),
    "maed_push_close": (None, [c_void_p, c_int]),
    "maed_ctl_open": (c_void_p, [c_char_p, c_char_p, c_char_p, int_p]),
    "maed_ctl_status": (c_int, [c_void_p, c_int, int_p, int_p, int_p, double_p, double_p, c_char_p, c_int]),
    "maed_ctl_pause": (c_int, [c_void_p, c_int]),
    "maed_ctl_resume": (c_int, [c_void_p, c_int]),
    "maed_ctl_request_json": (c_int, [c_void_p, c_char_p, c_int, c_char_p, c_int]),
    "maed_ctl_error": (c_int, [c_void_p, c_char_p, c_int]),
    "maed_ctl_close": (None, [c_void_p]),
}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """libmaed_client built from its sources with warnings as errors, loaded with every prototype declared."""
    if CC is None or not Path("/usr/include/zmq.h").exists():
        pytest.skip("needs a C compiler and libzmq3-dev (make test installs them)")
    path = tmp_path_factory.mktemp("lib") / "libmaed_client.so"
    subprocess.run(
        [
            CC,
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-shared",
            "-fPIC",
            "-DMAED_CLIENT_BUILD",
            "-fvisibility=hidden",
            "-I",
            str(CLIENTS / "include"),
            "-o",
            str(path),
            *sorted(map(str, (CLIENTS / "lib").glob("*.c"))),
            "-lzmq",
            "-lpthread",
            "-lm",
        ],
        check=True,
    )
    library = ctypes.CDLL(str(path))
    for name, (restype, argtypes) in SIGNATURES.items():
        function = getattr(library, name)
        function.restype, function.argtypes = restype, argtypes
    return library


def opened(function, *args):
    status = c_int(-99)
    handle = function(*args, ctypes.byref(status))
    assert handle and status.value == OK, f"open failed: {status.value}"
    return handle


def text(function, handle, capacity=300):
    buffer = ctypes.create_string_buffer(capacity)
    assert function(handle, buffer, capacity) == OK
    return buffer.value.decode()


def ints(n):
    return [c_int(-1) for _ in range(n)]


def push_line(lib, push, row, values, pass_=TRACE):
    data = np.ascontiguousarray(values, dtype=np.float32)
    return lib.maed_push_line(push, row, pass_, data.ctypes.data_as(float_p), len(data))


class Received:
    """Everything a library subscriber took until scan.finished: frames by (topic, pass, final), alerts, the end."""

    def __init__(self, lib, sub, cols, timeout=30):
        self.frames, self.alerts, self.rows_updates, self.finished = {}, [], 0, None
        buffer = np.empty(4096 * cols, np.float32)
        deadline = time.monotonic() + timeout
        while self.finished is None and time.monotonic() < deadline:
            event = lib.maed_sub_next(sub, 100)
            assert event >= 0, text(lib.maed_sub_error, sub)
            if event in (RAW, DENOISED, ROWS_UPDATE):
                rows, n_cols, done, final = ints(4)
                assert (
                    lib.maed_sub_frame(sub, buffer.ctypes.data_as(float_p), buffer.size, *map(ctypes.byref, (rows, n_cols, done, final)))
                    == OK
                )
                pass_ = c_int(-1)
                assert lib.maed_sub_pass(sub, ctypes.byref(pass_)) == OK
                frame = buffer[: rows.value * n_cols.value].reshape(rows.value, n_cols.value).copy()
                if event == ROWS_UPDATE:
                    self.rows_updates += 1
                    continue
                trust = text(lib.maed_sub_trust, sub) if event == DENOISED else None
                self.frames[(event, pass_.value, final.value)] = dict(
                    frame=frame,
                    rows_done=done.value,
                    unit=text(lib.maed_sub_unit, sub),
                    channel=text(lib.maed_sub_channel, sub),
                    scan=text(lib.maed_sub_scan, sub),
                    trust=trust,
                )
            elif event == ALERT:
                kind = ctypes.create_string_buffer(64)
                row, start, stop, severity, late = ints(5)
                assert lib.maed_sub_alert(sub, kind, 64, *map(ctypes.byref, (row, start, stop, severity))) == OK
                assert lib.maed_sub_alert_late(sub, ctypes.byref(late)) == OK
                self.alerts.append((kind.value.decode(), row.value, start.value, stop.value, severity.value, late.value))
            elif event == FINISHED:
                complete, done = ints(2)
                reason = ctypes.create_string_buffer(32)
                assert lib.maed_sub_finished(sub, ctypes.byref(complete), ctypes.byref(done), reason, 32) == OK
                self.finished = (text(lib.maed_sub_scan, sub), complete.value, done.value, reason.value.decode())


def status(lib, ctl):
    scanning, paused, rows_done = ints(3)
    received, dropped = c_double(-1), c_double(-1)
    scan = ctypes.create_string_buffer(300)
    rc = lib.maed_ctl_status(ctl, 5000, *map(ctypes.byref, (scanning, paused, rows_done, received, dropped)), scan, 300)
    assert rc == OK, rc
    return dict(
        scanning=scanning.value,
        paused=paused.value,
        rows_done=rows_done.value,
        lines_received=received.value,
        lines_dropped=dropped.value,
        scan=scan.value.decode(),
    )


def test_a_scan_pushed_through_the_library_comes_back_through_it_bit_exact_with_alerts_and_status(lib, tmp_path, monkeypatch):
    # The detectors get none of the bridge's time: the scar below is found once the scan has ended, and says so.
    monkeypatch.setattr("maed.bridge.worker.HEALTH_SHARE", 0.0)
    monkeypatch.setattr("maed.bridge.worker.HEALTH_CARRY_S", 0.0)
    rows, cols = 40, 32
    rng = np.random.default_rng(16)
    trace = (rng.standard_normal((rows, cols)) * 1e-10).astype(np.float32)
    retrace = (rng.standard_normal((rows, cols)) * 1e-10).astype(np.float32)
    trace[25] = trace[24]  # a controller that sent one buffer twice: line_repeated
    lost = 15  # never pushed: line_missing
    trace[30, 6:14] += 4e-9  # a scar
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, ack_port=0, out=tmp_path / "scans")
    with Bridge(config, backend=IdentityBackend()) as bridge:
        e = {k: v.encode() for k, v in bridge.endpoints.items()}
        sub = opened(lib.maed_sub_open, e["pub"], 0, b"", b"")
        ctl = opened(lib.maed_ctl_open, e["control"], b"", b"")
        push = opened(lib.maed_push_open, e["pull"], e["ack"], b"", b"", 0)
        try:
            assert status(lib, ctl) == dict(scanning=0, paused=0, rows_done=0, lines_received=0, lines_dropped=0, scan="")
            time.sleep(0.3)  # ZeroMQ's slow joiner: the subscription reaches the bridge
            assert lib.maed_push_start(push, b"lib-scan", rows, cols, b"Z", b"m", 2e-8, 1e-8, 0) == OK
            for row in range(rows):
                if row != lost:
                    assert push_line(lib, push, row, trace[row]) == OK
                    assert push_line(lib, push, row, retrace[row], RETRACE) == OK
            assert push_line(lib, push, 0, np.full(cols, np.nan)) == E_ARG  # refused before the wire
            assert push_line(lib, push, rows, trace[0]) == E_ARG
            assert push_line(lib, push, 10, trace[10]) == E_ARG  # back against the slow axis
            deadline = time.monotonic() + 20  # every line taken in an update of its own, before the end's
            while status(lib, ctl)["rows_done"] < rows and time.monotonic() < deadline:
                time.sleep(0.05)
            assert lib.maed_push_end(push, 1) == OK
            assert lib.maed_push_wait(push, 20000) == OK and lib.maed_push_pending(push) == 0
            sent, resent, acknowledged = c_double(-1), c_double(-1), c_double(-1)
            assert lib.maed_push_counters(push, *map(ctypes.byref, (sent, resent, acknowledged))) == OK
            assert (sent.value, resent.value, acknowledged.value) == (2 * (rows - 1) + 2, 0, 2 * (rows - 1) + 2)
            got = Received(lib, sub, cols)
            after = status(lib, ctl)
            assert lib.maed_ctl_pause(ctl, 5000) == OK and status(lib, ctl)["paused"] == 1
            assert lib.maed_ctl_resume(ctl, 5000) == OK and status(lib, ctl)["paused"] == 0
            reply = ctypes.create_string_buffer(1 << 16)
            assert lib.maed_ctl_request_json(ctl, b'{"cmd": "status"}', 5000, reply, 1 << 16) == OK
            full_status = json.loads(reply.value)
            assert lib.maed_ctl_request_json(ctl, b'{"cmd": "set_model", "model": "../x.pt"}', 5000, reply, 1 << 16) == OK
            refused = json.loads(reply.value)
        finally:
            lib.maed_push_close(push, 1000)
            lib.maed_ctl_close(ctl)
            lib.maed_sub_close(sub)
    (folder,) = [p for p in (tmp_path / "scans").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert got.finished == ("lib-scan", 1, rows, "end")
    want_trace, want_retrace = trace.copy(), retrace.copy()
    want_trace[lost] = want_retrace[lost] = np.nan
    final_trace, final_retrace = got.frames[(RAW, TRACE, 1)], got.frames[(RAW, RETRACE, 1)]
    # Bit for bit the lines pushed (NaN where the row was lost), and the bridge's saved raw frames.
    assert final_trace["frame"].tobytes() == want_trace.tobytes() == np.load(folder / "raw_trace.npy").tobytes()
    assert final_retrace["frame"].tobytes() == want_retrace.tobytes() == np.load(folder / "raw_retrace.npy").tobytes()
    final_denoised = got.frames[(DENOISED, TRACE, 1)]
    assert final_denoised["frame"].tobytes() == np.load(folder / "denoised.npy").tobytes()
    assert final_denoised["trust"] in ("network", "blend", "fallback")
    assert {(f["scan"], f["unit"], f["channel"]) for f in got.frames.values()} == {("lib-scan", "m", "Z")}
    assert final_trace["rows_done"] == rows and got.rows_updates >= 1
    kinds = {(kind, row) for kind, row, *_ in got.alerts}
    assert {("line_missing", lost), ("line_repeated", 25), ("scar", 30)} <= kinds
    assert all(0 <= start < stop <= cols and severity in (0, 1, 2) for _, _, start, stop, severity, _ in got.alerts)
    assert {(kind, row) for kind, row, *_, late in got.alerts if late} == {("scar", 30)}, got.alerts
    meta = json.loads((folder / "meta.json").read_text())
    assert {(a["kind"], a["row"]) for a in meta["alerts"]} >= kinds  # the alerts received are the scan's
    assert after["lines_received"] == 2 * (rows - 1) and after["scanning"] == 0 and after["lines_dropped"] == 0
    assert full_status["ok"] is True and full_status["lines_received"] == 2 * (rows - 1)
    assert refused["ok"] is False and refused["error"]


def test_the_push_queue_is_bounded_and_says_when_it_is_full(lib):
    """No bridge at all: every line waits in the queue (1 MiB) until a push is refused, nothing queued for it."""
    port = free_ports(2)
    push = opened(lib.maed_push_open, f"tcp://127.0.0.1:{port[0]}".encode(), f"tcp://127.0.0.1:{port[1]}".encode(), b"", b"", 1)
    try:
        assert lib.maed_push_line(push, 0, TRACE, np.zeros(4096, np.float32).ctypes.data_as(float_p), 4096) == E_STATE
        assert lib.maed_push_start(push, b"full", 4096, 4096, b"Z", b"m", 1e-8, 1e-8, 0) == OK
        line = np.ones(4096, np.float32)
        results = [push_line(lib, push, row, line) for row in range(100)]
        queued = results.index(E_FULL)
        assert 30 < queued < 70 and set(results[queued:]) == {E_FULL}  # 16 KiB lines in 1 MiB
        assert lib.maed_push_pending(push) == queued + 1  # the scan.start and the lines that fitted
        assert lib.maed_push_wait(push, 50) == E_TIMEOUT
    finally:
        lib.maed_push_close(push, 0)


def test_a_hostile_publisher_is_refused_message_by_message_with_its_reason(lib):
    pub = CTX.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = opened(lib.maed_sub_open, f"tcp://127.0.0.1:{port}".encode(), 0, b"", b"")
    try:
        good = {
            "v": 2,
            "scan": "h",
            "seq": 0,
            "rows": 2,
            "cols": 3,
            "rows_done": 1,
            "dtype": "<f4",
            "shape": [2, 3],
            "final": False,
            "pass": "trace",
            "unit": "A",
            "channel": "Current",
            "range": [1e-8, 1e-8],
        }
        payload = np.arange(6, dtype="<f4").tobytes()
        for _ in range(100):  # until the subscription is through
            pub.send_multipart([b"frame.raw", msgpack.packb(good), payload])
            if lib.maed_sub_next(sub, 50) == RAW:
                break
        hostile = [
            ([b"frame.raw", msgpack.packb({**good, "v": 1}), payload], "protocol version 1"),
            ([b"frame.raw", msgpack.packb({**good, "v": True}), payload], "without an integer protocol version"),
            ([b"frame.raw", msgpack.packb(good), payload[:-1]], "does not match"),
            ([b"frame.raw", msgpack.packb({**good, "shape": [2, 3, 1]}), payload], "malformed"),
            ([b"frame.raw", msgpack.packb({**good, "rows": 5000, "shape": [5000, 3]}), payload], "does not match"),
            ([b"frame.raw", msgpack.packb(good), payload, b"extra"], "malformed"),
            ([b"frame.raw", b"\xdd\xff\xff\xff\xff", payload], "malformed"),
            ([b"frame.raw", msgpack.packb({**good, "unit": 5}), payload], "field 'unit'"),
            ([b"frame.raw", msgpack.packb({**good, "channel": "C" * 1025}), payload], "field 'channel'"),
            (
                [b"alert", msgpack.packb({"v": 2, "scan": "h", "seq": 1, "kind": "x", "row": 0, "columns": [3, 3], "severity": "info"})],
                "does not match",
            ),
            # What the bridge's own decoder refuses, the library refuses too (found by fuzzing it, 2026-12-07).
            ([b"frame.raw", msgpack.packb({**good, "range": [float("nan"), 1e-8]}), payload], "does not match"),
            ([b"frame.raw", msgpack.packb({**good, "range": [-1e-8, 1e-8]}), payload], "does not match"),
            ([b"frame.raw", msgpack.packb({k: v for k, v in good.items() if k != "range"}), payload], "does not match"),
            (
                [
                    b"alert",
                    msgpack.packb({"v": 2, "scan": "h", "seq": 1, "kind": "x", "row": 0, "columns": [0, 2**40], "severity": "info"}),
                ],
                "does not match",
            ),
            ([b"scan.finished", msgpack.packb({"v": 2, "scan": "h", "seq": 1, "rows_done": -(2**32) + 5})], "does not match"),
            ([b"frame.raw", msgpack.packb({**good, "scan": "h\x00evil"}), payload], "field 'scan'"),
            ([b"frame.raw", msgpack.packb(good) + b"\xc0", payload], "malformed"),
        ]
        for frames, reason in hostile:
            pub.send_multipart(frames)
            assert lib.maed_sub_next(sub, 5000) == E_PROTOCOL
            assert reason in text(lib.maed_sub_error, sub)
            assert lib.maed_sub_frame(sub, None, 0, None, None, None, None) == E_STATE  # nothing held
        pub.send_multipart([b"frame.raw", msgpack.packb(good), payload])
        assert lib.maed_sub_next(sub, 5000) == RAW and text(lib.maed_sub_error, sub) == ""
        small = (ctypes.c_float * 5)()
        rows, cols = ints(2)
        assert lib.maed_sub_frame(sub, small, 5, ctypes.byref(rows), ctypes.byref(cols), None, None) == E_SIZE
        assert (rows.value, cols.value) == (2, 3)  # enough to size the buffer
        frame = (ctypes.c_float * 6)()
        assert lib.maed_sub_frame(sub, frame, 6, None, None, None, None) == OK and list(frame) == list(range(6))
        assert text(lib.maed_sub_unit, sub) == "A" and text(lib.maed_sub_channel, sub) == "Current"
        assert lib.maed_sub_next(sub, 0) == 0  # nothing more: a timeout
        # The protocol allows ids, channels and units of 256 characters, up to 4 bytes each in UTF-8: read whole.
        long = {**good, "scan": "\u00b5" * 255 + "\U0001f52c", "channel": "C" * 256, "unit": "\u00c5" * 256}
        pub.send_multipart([b"frame.raw", msgpack.packb(long), payload])
        assert lib.maed_sub_next(sub, 5000) == RAW, text(lib.maed_sub_error, sub)
        assert text(lib.maed_sub_scan, sub, 1100) == long["scan"] and text(lib.maed_sub_channel, sub, 1100) == long["channel"]
        assert text(lib.maed_sub_unit, sub, 1100) == long["unit"]
        # An alert found again on lines a restarted bridge rebuilt: marked, so that a VI does not act on it twice.
        alert = {"v": 2, "scan": "h", "seq": 9, "kind": "scar", "row": 4, "columns": [0, 3], "severity": "warning"}
        for evidence, expected in (({"recovered": 1, "z": 7.5}, 1), ({"z": 7.5}, 0)):
            pub.send_multipart([b"alert", msgpack.packb({**alert, "evidence": evidence})])
            assert lib.maed_sub_next(sub, 5000) == 4, text(lib.maed_sub_error, sub)
            recovered, late = c_int(-1), c_int(-1)
            assert lib.maed_sub_alert_recovered(sub, ctypes.byref(recovered)) == OK and recovered.value == expected
            assert lib.maed_sub_alert_late(sub, ctypes.byref(late)) == OK and late.value == 0
    finally:
        lib.maed_sub_close(sub)
        pub.close(linger=0)


def test_keys_a_keyed_bridge_serves_the_library_with_keys_and_not_without(lib, tmp_path):
    from maed.bridge.keys import ServerKeys, write_key_pair

    write_key_pair(tmp_path, "bridge")
    write_key_pair(tmp_path / "clients", "labview")
    keys = ServerKeys.load(tmp_path / "bridge.key_secret", tmp_path / "clients")
    secret, server = str(tmp_path / "clients" / "labview.key_secret").encode(), str(tmp_path / "bridge.key").encode()
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, ack_port=0, out=tmp_path / "scans", keys=keys)
    with Bridge(config, backend=IdentityBackend()) as bridge:
        e = {k: v.encode() for k, v in bridge.endpoints.items()}
        sub = opened(lib.maed_sub_open, e["pub"], 0, secret, server)
        keyless = opened(lib.maed_sub_open, e["pub"], 0, b"", b"")
        ctl = opened(lib.maed_ctl_open, e["control"], secret, server)
        push = opened(lib.maed_push_open, e["pull"], e["ack"], secret, server, 0)
        status_code = c_int(0)
        assert not lib.maed_sub_open(e["pub"], 0, b"/no/such.key_secret", server, ctypes.byref(status_code))
        assert status_code.value == -6  # MAED_E_KEYS
        try:
            time.sleep(0.5)  # handshakes and subscriptions reach the bridge
            assert lib.maed_push_start(push, b"keyed", 16, 16, b"Z", b"m", 1e-8, 1e-8, 0) == OK
            for row in range(16):
                assert push_line(lib, push, row, np.full(16, row, np.float32)) == OK
            assert lib.maed_push_end(push, 1) == OK
            assert lib.maed_push_wait(push, 20000) == OK  # acknowledged over CURVE
            got = Received(lib, sub, 16)
            assert status(lib, ctl)["lines_received"] == 16
            assert lib.maed_sub_next(keyless, 300) == 0  # the keyless subscriber never got past the handshake
        finally:
            lib.maed_push_close(push, 1000)
            lib.maed_ctl_close(ctl)
            lib.maed_sub_close(keyless)
            lib.maed_sub_close(sub)
    assert got.finished == ("keyed", 1, 16, "end")
    assert got.frames[(RAW, TRACE, 1)]["frame"].tobytes() == np.repeat(np.arange(16, dtype=np.float32), 16).tobytes()


# --- kill -9: what the bridge lost is resent from the library's queue --------------------------


def counters(lib, push):
    values = [c_double(-1) for _ in range(3)]
    assert lib.maed_push_counters(push, *map(ctypes.byref, values)) == OK
    return [v.value for v in values]


def test_lines_a_killed_bridge_lost_are_resent_from_the_library_and_the_scan_completes_bit_exact(lib, tmp_path):
    rows, cols = 80, 32
    trace = (np.random.default_rng(9).standard_normal((rows, cols)) * 1e-10).astype(np.float32)
    out = tmp_path / "scans"
    bridge = Served(out, free_ports(4))
    bridge.start()
    push = opened(lib.maed_push_open, bridge.pull.encode(), bridge.ack.encode(), b"", b"", 0)
    try:
        assert lib.maed_push_start(push, b"killed", rows, cols, b"Z", b"m", 2e-8, 2e-8, 0) == OK
        for row in range(30):
            assert push_line(lib, push, row, trace[row]) == OK
        assert lib.maed_push_wait(push, 10000) == OK  # journaled and acknowledged
        # Frozen, then killed: these lines reach its socket but never its journal, so only a resend saves them.
        bridge.process.send_signal(signal.SIGSTOP)
        wait_for(lambda: stopped(bridge.process.pid), 10, "the bridge did not stop")
        for row in range(30, 50):
            assert push_line(lib, push, row, trace[row]) == OK  # never blocks, bridge or not
        wait_for(lambda: counters(lib, push)[0] == 51, 10, "the library did not send the 20 lines")
        bridge.stop(signal.SIGKILL)
        assert lib.maed_push_pending(push) == 20  # kept: nothing acknowledged them
        restarted = bridge.start()
        assert (restarted["state"], restarted["scan"], restarted["recoveries"]) == ("scanning", "killed", 1)
        for row in range(50, rows):
            assert push_line(lib, push, row, trace[row]) == OK
        assert lib.maed_push_end(push, 1) == OK
        assert lib.maed_push_wait(push, 20000) == OK
        sent, resent, acknowledged = counters(lib, push)
        assert resent >= 20 and acknowledged == 1 + rows + 1  # each message once, however often it was sent
        folders = wait_for(lambda: saved_folders(out), 30, "the scan was not saved")
    finally:
        lib.maed_push_close(push, 1000)
        log = bridge.stop(signal.SIGTERM)
    (folder,) = folders
    assert np.load(folder / "raw_trace.npy").tobytes() == trace.tobytes(), log
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["end"] == {"complete": True, "reason": "end", "why": None} and meta["recovered"] is True


def test_control_survives_a_bridge_that_does_not_answer_and_reports_a_refusal(lib):
    """No reply in time: MAED_E_TIMEOUT, and the handle stays usable (its REQ socket is replaced); a refusal
    gives MAED_E_REFUSED with the bridge's one-line reason."""
    (port,) = free_ports(1)
    ctl = opened(lib.maed_ctl_open, f"tcp://127.0.0.1:{port}".encode(), b"", b"")
    rep = CTX.socket(zmq.REP)
    try:
        assert lib.maed_ctl_pause(ctl, 100) == E_TIMEOUT
        assert lib.maed_ctl_pause(ctl, 100) == E_TIMEOUT  # not a REQ socket stuck waiting for its reply
        rep.bind(f"tcp://127.0.0.1:{port}")
        replies = [
            {"ok": False, "v": 2, "error": "pause refused: no reason at all"},
            {
                "ok": True,
                "v": 2,
                "state": "scanning",
                "scan": "s-1",
                "paused": True,
                "rows_done": 7,
                "lines_received": 12,
                "lines_dropped": 3,
                "faults": {"row_order": 1},
                "latency_ms": {"p50": 1.0},
            },
        ]
        requests = []

        def answer():
            for reply in replies:
                requests.append(msgpack.unpackb(rep.recv()))
                rep.send(msgpack.packb(reply))

        thread = threading.Thread(target=answer)
        thread.start()
        assert lib.maed_ctl_pause(ctl, 5000) == -8  # MAED_E_REFUSED
        assert text(lib.maed_ctl_error, ctl) == "pause refused: no reason at all"
        assert status(lib, ctl) == dict(scanning=1, paused=1, rows_done=7, lines_received=12, lines_dropped=3, scan="s-1")
        thread.join(5)
        assert requests == [{"cmd": "pause", "v": 2}, {"cmd": "status", "v": 2}]
    finally:
        lib.maed_ctl_close(ctl)
        rep.close(linger=0)


def test_a_slow_reader_gets_the_newest_messages_with_gaps_not_every_message_late(lib):
    """The library holds at most 64 unread messages (ZMQ_RCVHWM), so a reader that falls behind skips ahead, as
    bridge/PROTOCOL.md promises ("Slow subscribers"); ZeroMQ's default of 1000 kept every message, ever later (the
    operating system's socket buffers hold a few frames more either way)."""
    pub = CTX.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 64)  # the bridge's
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = opened(lib.maed_sub_open, f"tcp://127.0.0.1:{port}".encode(), 0, b"", b"")
    try:
        side = 256
        header = {"v": 2, "scan": "slow", "seq": 0, "rows": side, "cols": side, "rows_done": side, "dtype": "<f4"}
        header.update(shape=[side, side], final=False, unit="m", channel="Z", range=[1e-8, 1e-8], **{"pass": "trace"})
        payload = np.zeros((side, side), "<f4").tobytes()
        for _ in range(100):  # until the subscription is through
            pub.send_multipart([b"frame.raw", msgpack.packb(header), payload])
            if lib.maed_sub_next(sub, 50) == RAW:
                break
        while lib.maed_sub_next(sub, 200) == RAW:  # what the handshake left queued
            pass
        sent = 400
        for seq in range(1, sent + 1):  # a bridge's pace: the publisher's own queue never fills
            pub.send_multipart([b"frame.raw", msgpack.packb({**header, "seq": seq}), payload])
            time.sleep(0.005)
        time.sleep(1.0)  # everything the queues let through reaches the client's side
        received = 0
        while lib.maed_sub_next(sub, 500) == RAW:
            received += 1
        assert 0 < received < sent / 2, received  # about 64 + 64 and what the socket buffers held
    finally:
        lib.maed_sub_close(sub)
        pub.close(linger=0)


def test_a_second_start_of_the_open_scan_is_refused_and_close_keeps_to_its_timeout(lib):
    """The bridge drops a scan.start that repeats the open scan's id (duplicate_start) and the lines after it: the
    library refuses it at once. With no bridge listening, closing waits the timeout asked for, not 2 s more."""
    push = opened(lib.maed_push_open, b"tcp://127.0.0.1:9", b"", b"", b"", 1)
    assert lib.maed_push_start(push, b"twice", 4, 4, b"Z", b"m", 1e-8, 1e-8, 0) == OK
    assert lib.maed_push_start(push, b"twice", 4, 4, b"Z", b"m", 1e-8, 1e-8, 0) == E_ARG
    assert push_line(lib, push, 0, np.zeros(4)) == OK  # the open scan goes on
    assert lib.maed_push_end(push, 1) == OK
    assert lib.maed_push_start(push, b"twice", 4, 4, b"Z", b"m", 1e-8, 1e-8, 0) == OK  # ended: a new scan of that id
    start = time.monotonic()
    lib.maed_push_close(push, 300)
    assert time.monotonic() - start < 1.5
