"""The ingest state machine: scan order, faults by kind, restarts, timeouts and the hand-off to the worker."""

import logging

import numpy as np
import pytest

from maed.bridge.counters import FaultCounter
from maed.bridge.ingest import Ingest
from maed.bridge.protocol import Line, ScanEnd, ScanStart, encode


class Controller:
    """Builds messages with a running seq."""

    def __init__(self, ingest, scan="a", rows=8, cols=4, direction="down"):
        self.ingest, self.scan, self.rows, self.cols, self.direction = ingest, scan, rows, cols, direction
        self.seq = 0
        self.clock = 0.0

    def send(self, message_type, *args, skip_seq=0):
        self.seq += skip_seq
        message = message_type(self.scan, self.seq, *args)
        self.seq += 1
        self.clock += 0.01
        self.ingest.handle(encode(message), self.clock)

    def start(self, **kw):
        self.send(ScanStart, kw.get("rows", self.rows), kw.get("cols", self.cols), "Z", "m", (1e-8, 1e-8),
                  kw.get("direction", self.direction))

    def line(self, row, d="fwd", cols=None, **kw):
        self.send(Line, row, d, 0.0, np.full(cols or self.cols, row, "<f4"), **kw)

    def end(self, complete=True):
        self.send(ScanEnd, complete)


@pytest.fixture
def ingest():
    return Ingest(FaultCounter(), idle_timeout=5.0)


def test_lines_are_handed_to_the_worker_once(ingest):
    c = Controller(ingest)
    c.start()
    for row in range(3):
        c.line(row)
        c.line(row, "bwd")
    batches = ingest.take()
    assert len(batches) == 1 and not batches[0].ended
    assert [(line.row, line.dir) for line, _ in batches[0].lines] == [(0, "fwd"), (0, "bwd"), (1, "fwd"), (1, "bwd"),
                                                                      (2, "fwd"), (2, "bwd")]
    assert ingest.take() == []
    c.line(3)
    c.end()
    (batch,) = ingest.take()
    assert batch.ended and batch.state.ended == (True, "end") and len(batch.lines) == 1
    assert ingest.current is None and ingest.lines_received == 7


def test_up_scans_go_from_the_last_row_to_the_first(ingest):
    c = Controller(ingest, direction="up")
    c.start()
    c.line(7)
    c.line(5)  # a skipped row is allowed
    c.line(6)  # going back is not
    assert ingest.faults.counts() == {"row_order": 1}
    assert ingest.current.progress["fwd"] == 3


@pytest.mark.parametrize("action, kind", [
    (lambda c: c.line(8), "row_range"),
    (lambda c: (c.line(2), c.line(2)), "row_order"),
    (lambda c: (c.line(2), c.line(1)), "row_order"),
    (lambda c: c.line(0, cols=5), "shape"),
    (lambda c: c.start(), "duplicate_start"),
])
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
