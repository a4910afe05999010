"""The Nanonis source against the simulated controller over TCP, one test per thing a scan can do.

A PULL socket stands in for the bridge and decodes what the source pushes with the bridge's own
decoder (which refuses NaN in a line, so a partly scanned row sent too early fails there).
"""

import contextlib
import logging
import threading
import time

import numpy as np
import pytest
import zmq
from scanfile_helpers import write_sxm

from maed.bridge.nanonis import NanonisClient
from maed.bridge.protocol import Line, ScanStart, decode_ingest
from maed.bridge.simulated import Scanner, SimulatedNanonis, simulated_frames
from maed.bridge.sources import NanonisSource
from maed.bridge.sources.nanonis import split_channel_name

SEED = 21


def image(k, size, up, name="Z (m)"):
    """Frame ``k`` of the simulated controller, in image order: (trace, retrace)."""
    channel = next(c for c in simulated_frames(SEED)(k, size, up).channels if c.name == name)
    return channel.forward, channel.backward


class Collector:
    """Stands in for the bridge's PULL socket; every message decoded, in arrival order."""

    def __init__(self):
        self.socket = zmq.Context.instance().socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://127.0.0.1:*")
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if self.socket.poll(20):
                self.messages.append(decode_ingest(self.socket.recv_multipart()))  # raises on a bad message

    def scans(self):
        scans = {}
        for m in list(self.messages):
            record = scans.setdefault(m.scan, {"start": None, "lines": [], "end": None})
            if isinstance(m, ScanStart):
                record["start"] = m
            elif isinstance(m, Line):
                record["lines"].append(m)
            else:
                record["end"] = m
        return list(scans.values())

    def ended(self):
        return [s for s in self.scans() if s["end"] is not None]

    def wait(self, condition, timeout=8.0):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self._thread.is_alive(), "the collector failed to decode a message"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def wait_lines(self, count):
        self.wait(lambda: sum(isinstance(m, Line) and m.pass_ == "trace" for m in self.messages) >= count)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.socket.close()


@contextlib.contextmanager
def following(scanner, source_class=NanonisSource, **options):
    """A simulated controller scanning with ``scanner`` and a source following it into a collector."""
    with SimulatedNanonis(scanner, port=0) as server:
        collector = Collector()
        source = source_class(port=server.port, **options)
        stop = threading.Event()
        thread = threading.Thread(target=source.run, args=(collector.endpoint, stop), daemon=True)
        thread.start()
        try:
            yield server, collector
        finally:
            stop.set()
            thread.join(10)
            collector.close()


def rows(scan, pass_):
    return [m.row for m in scan["lines"] if m.pass_ == pass_]


def assert_lines_are(scan, expected, pass_="trace"):
    """Each line of ``pass_`` once, in scan order, bit for bit the rows of ``expected``."""
    lines = [m for m in scan["lines"] if m.pass_ == pass_]
    for m in lines:
        assert m.data.tobytes() == expected[m.row].astype("<f4").tobytes(), f"row {m.row} {pass_}"
    assert len({m.row for m in lines}) == len(lines)


def scanner(size=32, line_rate=100.0, **options):
    return Scanner(simulated_frames(SEED), size=size, line_rate=line_rate, scans=1, **options)


# --- the tests ---------------------------------------------------------------------------------


def test_each_row_is_sent_once_when_it_is_complete():
    with following(scanner()) as (server, collector):
        collector.wait(lambda: collector.ended())
        width = server.scanner.frame()[2]
    (scan,) = collector.scans()
    start = scan["start"]
    assert (start.rows, start.cols, start.channel, start.unit, start.slow_axis) == (32, 32, "Z", "m", "down")
    assert start.range == (pytest.approx(width), pytest.approx(width))
    assert start.extra["line_rate"] == pytest.approx(100)
    assert rows(scan, "trace") == rows(scan, "retrace") == list(range(32))
    trace, retrace = image(0, 32, False)
    assert_lines_are(scan, trace)
    assert_lines_are(scan, retrace, "retrace")
    assert len({m.t for m in scan["lines"]}) > 4, "the rows came in one poll, not as the scan went"
    assert scan["end"].complete is True


def test_up_and_down_scans_send_rows_in_scan_order():
    with following(scanner()) as (server, collector):
        collector.wait(lambda: len(collector.ended()) == 1)
        with NanonisClient(port=server.port) as client:
            client.scan_action("start", up=True)
        collector.wait(lambda: len(collector.ended()) == 2)
    down, up = collector.scans()
    assert (down["start"].slow_axis, up["start"].slow_axis) == ("down", "up")
    assert rows(up, "trace") == rows(up, "retrace") == list(range(31, -1, -1))  # an up scan starts at the bottom
    assert_lines_are(up, image(1, 32, True)[0])
    assert down["end"].complete and up["end"].complete


def test_trace_and_retrace_go_as_lines_of_their_pass_in_image_order():
    # Slow lines, fast polls: the source sees many partly scanned rows (the trace filling from the
    # left, the retrace from the right) and must send neither before it is complete.
    with following(scanner(line_rate=50, slow_axis="up"), poll_interval=0.002) as (_, collector):
        collector.wait(lambda: collector.ended())
    (scan,) = collector.scans()
    trace, retrace = image(0, 32, True)
    assert_lines_are(scan, trace)
    assert_lines_are(scan, retrace, "retrace")  # column 0 is the left edge for the retrace too
    order = [(m.row, m.pass_) for m in scan["lines"]]
    assert all(order.index((row, "trace")) < order.index((row, "retrace")) for row in range(32))
    with following(scanner(line_rate=400), retrace=False) as (_, collector):
        collector.wait(lambda: collector.ended())
    (scan,) = collector.scans()
    assert rows(scan, "retrace") == [] and rows(scan, "trace") == list(range(32))


def test_a_scan_restarted_mid_frame_ends_incomplete_and_a_new_scan_begins():
    with following(scanner(line_rate=50)) as (server, collector):
        collector.wait_lines(6)
        with NanonisClient(port=server.port) as client:
            client.scan_action("start")
        collector.wait(lambda: len(collector.ended()) == 2)
    first, second = collector.scans()
    assert first["end"].complete is False and 6 <= len(rows(first, "trace")) < 32
    assert rows(first, "trace") == list(range(len(rows(first, "trace"))))
    assert second["start"].scan != first["start"].scan
    assert rows(second, "trace") == list(range(32)) and second["end"].complete is True
    assert_lines_are(second, image(1, 32, False)[0])


def test_a_scan_stopped_mid_frame_ends_incomplete_and_nothing_follows_until_a_start():
    with following(scanner(line_rate=50)) as (server, collector):
        collector.wait_lines(6)
        with NanonisClient(port=server.port) as client:
            client.scan_action("stop")
            collector.wait(lambda: collector.ended())
            time.sleep(0.2)
            assert len(collector.scans()) == 1  # stopped: no new scan
            client.scan_action("start")
        collector.wait(lambda: len(collector.ended()) == 2)
    first, second = collector.scans()
    assert first["end"].complete is False and 6 <= len(rows(first, "trace")) < 32
    assert first["end"].why == "stopped"  # said, so that the saved scan tells a stop from a lost controller
    assert second["start"].scan != first["start"].scan and second["end"].complete is True and second["end"].why is None


def test_a_scan_paused_on_the_controller_is_kept_alive_and_goes_on_when_resumed():
    """No line comes while the controller holds a scan paused; its last message is sent again every ``keep_alive``
    seconds (the bridge takes it for a duplicate and a sign of life, so its idle timeout does not end the scan), and
    after the resume the scan goes on to its end, each row once."""
    with following(scanner(line_rate=50), keep_alive=0.1) as (server, collector):
        collector.wait_lines(6)
        with NanonisClient(port=server.port) as client:
            client.scan_action("pause")
            time.sleep(0.2)  # the lines on their way arrive
            before = len(collector.messages)
            time.sleep(0.6)
            during = collector.messages[before:]
            client.scan_action("resume")
        collector.wait(lambda: collector.ended())
    # The same message again (the last line sent, its seq and all), nothing new.
    assert len(during) >= 3 and {(m.seq, m.row, m.pass_, m.data.tobytes()) for m in during} == {
        (m.seq, m.row, m.pass_, m.data.tobytes()) for m in collector.messages[before - 1 : before]
    }
    (scan,) = collector.scans()
    assert scan["end"].complete is True
    assert sorted({m.row for m in scan["lines"] if m.pass_ == "trace"}) == list(range(32))


def test_a_changed_frame_size_is_a_new_scan():
    with following(scanner(line_rate=50)) as (server, collector):
        collector.wait_lines(6)
        server.scanner.resize(48)
        collector.wait(lambda: len(collector.ended()) == 2)
    first, second = collector.scans()
    assert first["end"].complete is False and first["start"].rows == 32 and first["end"].why == "restarted"
    assert (second["start"].rows, second["start"].cols) == (48, 48) and second["end"].complete is True
    assert_lines_are(second, image(1, 48, False)[0])


@pytest.mark.parametrize("fault", ["freeze", "disconnect"])
def test_a_controller_that_stops_answering_is_reconnected_and_no_line_is_lost_or_repeated(fault, caplog):
    caplog.set_level(logging.INFO, logger="maed.bridge")
    with following(scanner(line_rate=40), timeout=0.2) as (server, collector):
        collector.wait_lines(6)
        getattr(server, fault)(0.5)  # no answers / connections dropped and refused, for half a second
        collector.wait(lambda: collector.ended())
    (scan,) = collector.scans()
    assert rows(scan, "trace") == rows(scan, "retrace") == list(range(32))
    trace, retrace = image(0, 32, False)
    assert_lines_are(scan, trace)
    assert_lines_are(scan, retrace, "retrace")
    assert scan["end"].complete is True
    log = caplog.text
    assert ("did not answer" if fault == "freeze" else "connection refused") in log
    assert "reconnecting" in log and log.count("reconnected") == 1


def test_the_channel_is_found_by_name_whatever_its_index():
    with following(scanner(line_rate=400), channel="Current") as (server, collector):
        collector.wait(lambda: collector.ended())
        source = NanonisSource(port=server.port, channel="Bias")
        with pytest.raises(ValueError, match=r"channel 'Bias' is not acquired .*\(acquired: Current \(A\), Z \(m\)\)"):
            source.check()
    (scan,) = collector.scans()
    assert (scan["start"].channel, scan["start"].unit) == ("Current", "A")
    assert_lines_are(scan, image(0, 32, False, "Current (A)")[0])


@pytest.mark.parametrize(
    "name, parts", [("Z (m)", ("Z", "m")), ("Bias", ("Bias", "a.u.")), ("Bad\nname (V)", ("Bad\nname", "V")), ("", ("", "a.u."))]
)
def test_every_channel_name_a_controller_reports_splits_into_name_and_unit(name, parts):
    # A newline in a name matched nothing, and the source's thread died on it (found by fuzzing a controller).
    assert split_channel_name(name) == parts


def test_a_frame_larger_than_the_bridge_opens_is_not_followed(caplog):
    """The bridge would refuse its scan.start and then every one of its lines; the source says why instead, and
    follows the next frame it can."""
    with caplog.at_level(logging.WARNING, logger="maed.bridge"):
        with following(scanner(size=48, line_rate=400), max_pixels=32 * 32) as (server, collector):
            deadline = time.monotonic() + 3
            while "over the bridge's --max-pixels 1024" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
    assert "Nanonis scans 48 x 48 pixels, over the bridge's --max-pixels 1024" in caplog.text
    assert collector.messages == []


def _passes(seed):
    """A 24 x 40 trace and retrace of random heights (m), in image order."""
    return (np.random.default_rng(seed).standard_normal((2, 24, 40)) * 1e-10).astype(np.float32)


def _recorded(path, forward, backward, scan_dir="down"):
    """``path``: a Nanonis file of the Z trace and retrace as Nanonis stores them (the retrace right to left)."""
    write_sxm(
        path,
        channels=(("Z", "m", "both"),),
        rows=24,
        cols=40,
        scan_range=(20e-9, 20e-9),
        scan_dir=scan_dir,
        planes=[forward, backward[:, ::-1]],
    )
    return path


def test_a_replayed_sxm_file_is_scanned_and_followed_as_recorded(tmp_path):
    from maed.bridge.simulated.replay import replay_frames

    forward, backward = _passes(5)
    forward[20:] = np.nan  # a scan stopped early: its last rows were never measured
    frames, frame, axis = replay_frames(_recorded(tmp_path / "recorded.sxm", forward, backward))
    assert axis == "down" and frame.shape == (24, 40) and frame.channels[0].name == "Z (m)" and frame.width == pytest.approx(20e-9)
    with following(Scanner(frames, 24, line_rate=200, scans=1)) as (_, collector):
        collector.wait(lambda: collector.ended())
    (scan,) = collector.scans()
    assert (scan["start"].rows, scan["start"].cols, scan["start"].channel, scan["start"].unit) == (24, 40, "Z", "m")
    assert rows(scan, "trace") == list(range(20)) and rows(scan, "retrace") == list(range(24))
    assert_lines_are(scan, forward)
    assert_lines_are(scan, backward, "retrace")
    assert scan["end"].complete is False  # the unmeasured rows are never sent


def test_a_scan_whose_last_retrace_row_was_lost_ends_incomplete(tmp_path, caplog):
    """Every trace row sent but not the last retrace row (a continuous scan overwrites its frame one line period after
    its last row; at 100 lines/s a poll can miss it): the scan is not complete, and the log says which pass lacks it."""
    from maed.bridge.simulated.replay import replay_frames

    forward, backward = _passes(6)
    backward[23] = np.nan
    frames, _, _ = replay_frames(_recorded(tmp_path / "recorded.sxm", forward, backward))
    with caplog.at_level(logging.INFO, logger="maed.bridge"), following(Scanner(frames, 24, line_rate=200, scans=1)) as (_, collector):
        collector.wait(lambda: collector.ended())
    (scan,) = collector.scans()
    assert rows(scan, "trace") == list(range(24)) and rows(scan, "retrace") == list(range(23))
    assert scan["end"].complete is False
    assert "incomplete: lines missed, 24 of 24 trace rows, 23 of 24 retrace" in caplog.text


def test_a_replayed_file_scanned_upwards_is_scanned_upwards(tmp_path):
    """``maed sim-nanonis --replay`` keeps the file's time order: a Nanonis file recorded with the slow axis up is
    replayed up (its creep and drift as they happened), unless ``--slow-axis`` says otherwise."""
    from maed.bridge.simulated.replay import replay_frames

    frames, _, axis = replay_frames(_recorded(tmp_path / "up.sxm", *_passes(7), scan_dir="up"))
    assert axis == "up"
    with following(Scanner(frames, 24, line_rate=200, slow_axis=axis, scans=1)) as (_, collector):
        collector.wait(lambda: collector.ended())
    (scan,) = collector.scans()
    assert scan["start"].slow_axis == "up" and rows(scan, "trace") == list(range(23, -1, -1))


def test_replaying_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    from maed.cli import main

    assert main(["sim-nanonis", "--port", "0", "--replay", str(tmp_path / "missing.sxm")]) == 2
    assert capsys.readouterr().err.strip() == f"maed: error: {tmp_path / 'missing.sxm'}: no such file"


def test_a_controller_time_per_line_is_checked_before_it_sets_the_poll_rate():
    from maed.bridge.sources.nanonis import MAX_POLL_S, MIN_POLL_S, poll_interval_for

    # NaN once made the source poll ~2,900 times a second; any value that is no time is the slowest poll.
    for nonsense in (float("nan"), float("inf"), -1.0, 0.0):
        assert poll_interval_for(nonsense) == MAX_POLL_S
    assert poll_interval_for(0.2) == 0.2
    assert poll_interval_for(1e-6) == MIN_POLL_S and poll_interval_for(60.0) == MAX_POLL_S


def test_the_last_row_of_a_continuous_frame_is_read_before_the_next_frame_overwrites_it():
    # Polls every 0.5 s; each frame stays readable for one line period (0.1 s) after its last line: the
    # source must poll at the frame's end, or rows 15 (and more) of each frame are lost when the next begins.
    continuous = Scanner(simulated_frames(SEED), size=16, line_rate=10.0, scans=0)
    with following(continuous, poll_interval=0.5) as (_, collector):
        collector.wait(lambda: len(collector.ended()) >= 1, timeout=10)
    first = collector.scans()[0]
    assert rows(first, "trace") == rows(first, "retrace") == list(range(16))
    trace, retrace = image(0, 16, False)
    assert_lines_are(first, trace)
    assert_lines_are(first, retrace, "retrace")
    assert first["end"].complete is True


class SilentNearTheEnd(NanonisSource):
    """A source on a busy computer: it polls four times a line, until the first poll that finds ``silent_from`` or
    fewer acquisition steps of its frame unsent; then it says nothing for eight line periods, while the controller's
    continuous scan ends that frame and begins the next."""

    def __init__(self, *args, silent_from: int, **options):
        super().__init__(*args, **options)
        self.silent_from = silent_from
        self.unsent_when_silent = None

    def _wait(self):
        followed, period = self._followed, self._line_period
        if followed is None or period <= 0:
            return super()._wait()
        if self.unsent_when_silent is None and followed.steps_left() <= self.silent_from:
            self.unsent_when_silent = followed.steps_left()
            return 8 * period
        return period / 4


@pytest.mark.parametrize("unsent", [1, 2, 3])
def test_a_frame_replaced_with_its_last_two_lines_unsent_is_said_missed_with_more_a_restart(unsent, caplog):
    # A continuous scan overwrites a frame one line period after its end: with at most two steps unread the polls
    # came late for the frame's end (lines_missed); with more, somebody restarted the controller (restarted).
    continuous = Scanner(simulated_frames(SEED), size=16, line_rate=10.0, scans=0)
    with (
        caplog.at_level(logging.INFO, logger="maed.bridge"),
        following(continuous, source_class=SilentNearTheEnd, silent_from=unsent) as (server, collector),
    ):
        collector.wait(lambda: len(collector.ended()) >= 1, timeout=10)
    first = collector.scans()[0]
    # Steps unsent when the frame was replaced: ``unsent``, or fewer where a stalled machine let a poll skip a line.
    left = 16 - min(len(set(rows(first, "trace"))), len(set(rows(first, "retrace"))))
    assert 1 <= left <= unsent and first["end"].complete is False
    assert first["end"].why == ("lines_missed" if left <= 2 else "restarted")
    missed_warning = "its last rows were overwritten by the controller's next frame before a poll read them"
    assert (missed_warning in caplog.text) == (left <= 2)


def _killed_source_lines(server, rows_wanted):
    """The scan.start and the lines a source sent before it died, as a killed bridge's journal holds them."""
    collector = Collector()
    stop = threading.Event()
    thread = threading.Thread(target=NanonisSource(port=server.port).run, args=(collector.endpoint, stop), daemon=True)
    thread.start()
    collector.wait_lines(rows_wanted)
    stop.set()
    thread.join(10)
    collector.close()
    (scan,) = collector.scans()
    return scan["start"], scan["lines"]


def _resumed(server, resume):
    collector = Collector()
    stop = threading.Event()
    source = NanonisSource(port=server.port, resume=resume)
    thread = threading.Thread(target=source.run, args=(collector.endpoint, stop), daemon=True)
    thread.start()
    return collector, stop, thread


def test_a_restarted_source_takes_up_the_resumed_scan_and_sends_only_the_rows_the_bridge_lacks():
    with SimulatedNanonis(scanner(line_rate=50), port=0) as server:
        start, lines = _killed_source_lines(server, 8)
        had = {(m.pass_, m.row) for m in lines}
        collector, stop, thread = _resumed(server, (start, lines))
        collector.wait(lambda: collector.ended())
        stop.set()
        thread.join(10)
        collector.close()
    (scan,) = collector.scans()
    assert scan["start"] is None and scan["end"].complete is True  # the same scan, on: no new scan.start
    assert not had & {(m.pass_, m.row) for m in scan["lines"]}  # nothing the bridge had is sent again
    trace, retrace = image(0, 32, False)
    assert_lines_are(scan, trace)
    assert_lines_are(scan, retrace, "retrace")
    for pass_ in ("trace", "retrace"):
        assert sorted(rows(scan, pass_) + [m.row for m in lines if m.pass_ == pass_]) == list(range(32))


def test_a_resumed_scan_whose_frame_the_controller_no_longer_holds_is_ended_and_the_frame_followed_anew():
    with SimulatedNanonis(scanner(line_rate=50), port=0) as server:
        start, lines = _killed_source_lines(server, 8)
        with NanonisClient(port=server.port) as client:
            client.scan_action("start")  # another frame while the bridge was down
        collector, stop, thread = _resumed(server, (start, lines))
        collector.wait(lambda: len(collector.ended()) == 2)
        stop.set()
        thread.join(10)
        collector.close()
    old, new = collector.scans()
    assert old["start"] is None and old["end"].scan == start.scan and old["end"].complete is False
    assert not old["lines"]
    assert new["start"].scan != start.scan and new["end"].complete is True
    assert_lines_are(new, image(1, 32, False)[0])
