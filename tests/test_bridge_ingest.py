"""The ingest state machine: scan order, faults by kind, restarts, timeouts and the hand-off to the worker."""

import logging

import numpy as np
import pytest

from maed.bridge.counters import FaultCounter
from maed.bridge.ingest import Ingest
from maed.bridge.protocol import Line, ScanEnd, ScanStart, encode


class Controller:
    """Builds messages with a running seq."""

    def __init__(self, ingest, scan="a", rows=8, cols=4, slow_axis="down"):
        self.ingest, self.scan, self.rows, self.cols, self.slow_axis = ingest, scan, rows, cols, slow_axis
        self.seq = 0
        self.clock = 0.0

    def send(self, message_type, skip_seq=0, **fields):
        self.seq += skip_seq
        message = message_type(scan=self.scan, seq=self.seq, **fields)
        self.seq += 1
        self.clock += 0.01
        self.ingest.handle(encode(message), self.clock)

    def start(self, **kw):
        self.send(
            ScanStart,
            rows=kw.get("rows", self.rows),
            cols=kw.get("cols", self.cols),
            channel="Z",
            unit="m",
            range=(1e-8, 1e-8),
            slow_axis=kw.get("slow_axis", self.slow_axis),
        )

    def line(self, row, pass_="trace", cols=None, skip_seq=0):
        self.send(Line, skip_seq, row=row, pass_=pass_, t=0.0, data=np.full(cols or self.cols, row, "<f4"))

    def end(self, complete=True):
        self.send(ScanEnd, complete=complete)


@pytest.fixture
def ingest():
    return Ingest(FaultCounter(), idle_timeout=5.0)


def test_lines_are_handed_to_the_worker_once(ingest):
    c = Controller(ingest)
    c.start()
    for row in range(3):
        c.line(row)
        c.line(row, "retrace")
    batches = ingest.take()
    assert len(batches) == 1 and not batches[0].ended
    assert [(line.row, line.pass_) for line, _ in batches[0].lines] == [
        (0, "trace"),
        (0, "retrace"),
        (1, "trace"),
        (1, "retrace"),
        (2, "trace"),
        (2, "retrace"),
    ]
    assert ingest.take() == []
    c.line(3)
    c.end()
    (batch,) = ingest.take()
    assert batch.ended and batch.state.ended == (True, "end") and len(batch.lines) == 1
    assert ingest.current is None and ingest.lines_received == 7


def test_up_scans_go_from_the_last_row_to_the_first(ingest):
    c = Controller(ingest, slow_axis="up")
    c.start()
    c.line(7)
    c.line(5)  # a skipped row is allowed
    c.line(6)  # going back is not
    assert ingest.faults.counts() == {"row_order": 1}
    assert ingest.current.progress["trace"] == 3


@pytest.mark.parametrize(
    "action, kind",
    [
        (lambda c: c.line(8), "row_range"),
        (lambda c: (c.line(2), c.send(Line, row=2, pass_="trace", t=0.0, data=np.full(4, 9, "<f4"))), "row_order"),
        (lambda c: (c.line(2), c.line(1)), "row_order"),
        (lambda c: c.line(0, cols=5), "shape"),
        (lambda c: c.start(), "duplicate_start"),
    ],
)
def test_lines_that_do_not_fit_the_scan_are_dropped_by_kind(ingest, action, kind):
    c = Controller(ingest)
    c.start()
    action(c)
    assert ingest.faults.counts() == {kind: 1}
    assert ingest.malformed == 1 and ingest.current.start.scan == "a"


def test_messages_for_another_scan_are_unknown(ingest):
    Controller(ingest, scan="b").line(0)
    Controller(ingest, scan="b").end()
    c = Controller(ingest)
    c.start()
    Controller(ingest, scan="b").line(0)
    assert ingest.faults.counts() == {"unknown_scan": 3}


def test_a_new_scan_start_supersedes_the_open_scan(ingest):
    a = Controller(ingest, scan="a")
    a.start()
    a.line(0)
    b = Controller(ingest, scan="b")
    b.start()
    b.line(0)
    first, second = ingest.take()
    assert first.ended and first.state.ended == (False, "superseded") and first.state.start.scan == "a"
    assert not second.ended and second.state.start.scan == "b"
    assert ingest.faults.counts() == {"scan_superseded": 1} and ingest.malformed == 0


def test_seq_gaps_count_as_dropped_lines(ingest):
    c = Controller(ingest)
    c.start()
    c.line(0)
    c.line(1, skip_seq=3)
    assert ingest.lines_dropped == 3 and ingest.current.lines_dropped == 3


def test_a_refused_message_whose_seq_was_readable_is_a_fault_not_a_dropped_line(ingest):
    import msgpack

    c = Controller(ingest)
    c.start()
    c.line(0)
    wrong_dtype = {"v": 2, "scan": "a", "seq": c.seq, "row": 1, "pass": "trace", "t": 0.0, "dtype": "<f8", "shape": [4]}
    ingest.handle([b"line", msgpack.packb(wrong_dtype), np.zeros(4, "<f8").tobytes()], 1.0)
    wrong_version = {**wrong_dtype, "v": 1, "seq": c.seq + 1, "dtype": "<f4"}
    ingest.handle([b"line", msgpack.packb(wrong_version), np.zeros(4, "<f4").tobytes()], 1.0)
    c.seq += 2
    c.line(2)
    unreadable = {**wrong_dtype, "seq": "three"}  # no seq to note: the gap it leaves is counted
    ingest.handle([b"line", msgpack.packb(unreadable), np.zeros(4, "<f8").tobytes()], 1.0)
    c.seq += 1
    c.line(3)
    assert ingest.faults.counts() == {"dtype": 1, "version": 1, "field": 1} and ingest.lines_received == 3
    assert ingest.lines_dropped == ingest.current.lines_dropped == 1


def test_absurd_seq_jumps_cannot_overflow_the_dropped_count(ingest):
    # scan.start, then seq 2**64-1, 0, 2**64-1 (all protocol-valid) once pushed lines_dropped past
    # 2**64 and killed the control socket; a gap counts at most the lines a scan can hold.
    c = Controller(ingest, rows=8)
    c.start()
    for row, seq in enumerate((2**64 - 1, 0, 2**64 - 1)):
        c.seq = seq
        c.line(row)
    assert 0 < ingest.lines_dropped <= 2 * 2 * 8  # two gaps, each at most trace and retrace of 8 rows


def test_a_reply_that_cannot_be_encoded_is_still_a_reply():
    import msgpack

    from maed.bridge.control import respond

    reply = msgpack.unpackb(respond([msgpack.packb({"v": 2, "cmd": "status"})], {"status": lambda _: {"n": 2**70}}))
    assert reply["ok"] is False and "could not be encoded" in reply["error"]


def test_a_silent_controller_times_out_and_its_scan_is_kept(ingest):
    c = Controller(ingest)
    c.start()
    c.line(0)
    ingest.expire(c.clock + 4.0)
    assert ingest.current is not None
    ingest.expire(c.clock + 6.0)
    (batch,) = ingest.take()
    assert batch.ended and batch.state.ended == (False, "timeout") and len(batch.lines) == 1
    assert ingest.faults.counts() == {"controller_silent": 1}


def test_shutdown_closes_the_open_scan(ingest):
    c = Controller(ingest)
    c.start()
    ingest.close()
    (batch,) = ingest.take()
    assert batch.state.ended == (False, "shutdown")


def test_each_kind_is_logged_once(ingest, caplog):
    c = Controller(ingest)
    c.start()
    with caplog.at_level(logging.WARNING, logger="maed.bridge"):
        for _ in range(5):
            c.line(100)
            ingest.handle([b"junk"], 0.0)
    assert ingest.faults.counts() == {"row_range": 5, "frames": 5}
    assert len(caplog.records) == 2


def test_a_version_1_controller_is_refused_and_counted(ingest, caplog):
    """A controller still speaking version 1 loses its messages, and says so once in the log."""
    import msgpack

    v1_start = {
        "v": 1,
        "scan": "old",
        "seq": 0,
        "rows": 8,
        "cols": 4,
        "channel": "Z",
        "unit": "m",
        "range": [1e-8, 1e-8],
        "direction": "down",
    }
    v1_line = {"v": 1, "scan": "old", "seq": 1, "row": 0, "dir": "fwd", "t": 0.0, "dtype": "<f4", "shape": [4]}
    with caplog.at_level(logging.WARNING, logger="maed.bridge"):
        ingest.handle([b"scan.start", msgpack.packb(v1_start)], 0.0)
        ingest.handle([b"line", msgpack.packb(v1_line), np.zeros(4, "<f4").tobytes()], 0.0)
    assert ingest.current is None and ingest.lines_received == 0
    assert ingest.faults.counts() == {"version": 2} and ingest.malformed == 2
    (record,) = caplog.records
    assert "protocol version 1 is not supported" in record.getMessage() and "version 2" in record.getMessage()


@pytest.mark.parametrize("v", [True, 2.0])
def test_a_version_that_only_equals_2_is_refused(ingest, v):
    import msgpack

    header = {"v": v, "scan": "a", "seq": 0, "rows": 8, "cols": 4, "channel": "Z", "unit": "m", "range": [1e-8, 1e-8], "slow_axis": "down"}
    ingest.handle([b"scan.start", msgpack.packb(header)], 0.0)
    assert ingest.current is None and ingest.faults.counts() == {"version": 1}
