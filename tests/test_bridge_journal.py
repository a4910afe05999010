"""The raw-data journal: a bridge killed with SIGKILL loses no row, recovery follows its rule, resends are idempotent.

Real ZeroMQ sockets on 127.0.0.1 and real files throughout; the kill test runs ``maed serve`` as a
process of its own and kills it mid-scan.
"""

import json
import signal

import msgpack
import numpy as np
import zmq
from scipy import ndimage
from served_bridge import Served, free_ports, saved_folders, stopped, wait_for

from maed.bridge.journal import Journal, read_journal
from maed.bridge.protocol import Line, ScanEnd, ScanStart, decode_published, encode
from maed.bridge.server import Bridge, BridgeConfig
from maed.bridge.sources import LinePusher

CTX = zmq.Context.instance()
ROWS, COLS = 200, 64


class BlurBackend:
    name = model = "blur"
    size_multiple = 16

    def denoise(self, batch):
        return ndimage.uniform_filter(batch, size=(1, 1, 5, 5), mode="reflect")


class Controller:
    """A controller that keeps the frames of every message it sent, to send them again."""

    def __init__(self, endpoint):
        self.socket = CTX.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.connect(endpoint)
        self.seq = 0
        self.sent = []

    def send(self, message):
        self.sent.append(encode(message))
        self.seq += 1
        self.socket.send_multipart(self.sent[-1])

    def start(self, scan, rows, cols):
        self.send(ScanStart(scan=scan, seq=self.seq, rows=rows, cols=cols, channel="Z", unit="m", range=(1e-8, 1e-8), slow_axis="down"))

    def line(self, scan, row, data):
        self.send(Line(scan=scan, seq=self.seq, row=row, pass_="trace", t=0.0, data=data))

    def end(self, scan):
        self.send(ScanEnd(scan=scan, seq=self.seq, complete=True))

    def close(self):
        self.socket.close()


def image(seed, rows=ROWS, cols=COLS):
    return (np.random.default_rng(seed).standard_normal((rows, cols)) * 1e-10).astype("<f4")


# --- kill -9 mid-scan ---------------------------------------------------------------------------


def test_a_bridge_killed_mid_scan_loses_no_row_and_the_scan_completes_bit_exact(tmp_path):
    out = tmp_path / "scans"
    bridge = Served(out, free_ports(4))
    trace, retrace = image(1), image(2)
    bridge.start()
    pusher = LinePusher(bridge.pull, acks=bridge.ack)
    try:
        pusher.start("killed", ROWS, COLS, (2e-8, 2e-8))
        for row in range(100):
            pusher.line("killed", row, trace[row])
            pusher.line("killed", row, retrace[row], pass_="retrace")
        assert pusher.wait_acked(10), "the bridge acknowledged the journaled lines"
        for row in range(100, 110):
            pusher.line("killed", row, trace[row])
            pusher.line("killed", row, retrace[row], pass_="retrace")
        wait_for(lambda: bridge.status()["lines_received"] == 220, 10, "220 lines were not received")
        # Frozen, then killed: these lines reach its socket but never its journal, so only a resend saves them.
        bridge.process.send_signal(signal.SIGSTOP)
        wait_for(lambda: stopped(bridge.process.pid), 10, "the bridge did not stop")
        for row in range(110, 140):
            pusher.line("killed", row, trace[row])
            pusher.line("killed", row, retrace[row], pass_="retrace")
        bridge.stop(signal.SIGKILL)
        assert not saved_folders(out)

        status = bridge.start()
        assert (status["state"], status["scan"], status["recoveries"], status["lines_recovered"]) == ("scanning", "killed", 1, 220)
        for row in range(140, ROWS):
            pusher.line("killed", row, trace[row])
            pusher.line("killed", row, retrace[row], pass_="retrace")
        pusher.end("killed")
        assert pusher.wait_acked(10) and pusher.unacked == 0
        (folder,) = wait_for(lambda: saved_folders(out), 30, "the scan was not saved")
        status = bridge.status()
    finally:
        pusher.close()
        log = bridge.stop(signal.SIGTERM)
    assert np.load(folder / "raw_trace.npy").tobytes() == trace.tobytes(), log
    assert np.load(folder / "raw_retrace.npy").tobytes() == retrace.tobytes()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["end"] == {"complete": True, "reason": "end", "why": None} and meta["recovered"] is True
    assert meta["rows_done"] == {"trace": ROWS, "retrace": ROWS}
    # 220 lines from the journal, the other 180 (60 lost in the frozen bridge, resent) over the wire, none twice.
    assert status["lines_received"] == 2 * ROWS - 220 and status["faults"] == {}
    assert not (out / ".journal").exists() and not list(out.glob(".*.partial"))


# --- the recovery rule, on journals and leftovers a killed bridge left --------------------------


def write_journal(journal, messages, torn=b""):
    file = journal.create(messages[0].scan)
    for message in messages:
        file.append(encode(message))
    file.close()
    if torn:
        with open(file.path, "ab") as f:
            f.write(torn)
    return file.path


def scan_messages(scan, data, seq, end=None, slow_axis="down"):
    rows, cols = data.shape
    messages = [ScanStart(scan=scan, seq=seq, rows=rows, cols=cols, channel="Z", unit="m", range=(1e-8, 1e-8), slow_axis=slow_axis)]
    order = range(rows) if slow_axis == "down" else range(rows - 1, -1, -1)
    for k, row in enumerate(order):
        if np.isfinite(data[row]).all():
            messages.append(Line(scan=scan, seq=seq + 1 + k, row=row, pass_="trace", t=0.0, data=data[row]))
    if end is not None:
        messages.append(ScanEnd(scan=scan, seq=messages[-1].seq + 1, complete=end))
    return messages


def test_a_restarted_bridge_saves_what_every_journal_holds_and_removes_partial_leftovers(tmp_path):
    out = tmp_path / "scans"
    journal = Journal(out)
    old, ended, open_ = image(3, 16, 8), image(4, 16, 8), image(5, 16, 8)
    old[10:] = ended[16:] = np.nan  # the killed bridge had rows 0-9 of "old", all of "ended"
    open_[:6] = np.nan
    write_journal(journal, scan_messages("old", old, 0))
    write_journal(journal, scan_messages("ended", ended, 100, end=True))
    newest = write_journal(journal, scan_messages("open", open_, 200, slow_axis="up"), torn=b"\x10\x00\x00\x00abc")
    partial = out / ".ended.partial"
    partial.mkdir()
    (partial / "raw_trace.npy").write_bytes(b"\x93NUMPY half")
    assert len(read_journal(newest)) == 11 and newest.stat().st_size == len(newest.read_bytes())

    with Bridge(BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=out, idle_timeout=1.0), backend=BlurBackend()) as bridge:
        assert not partial.exists()
        assert bridge.status()["state"] == "scanning" and bridge.status()["scan"] == "open"
        start, lines = bridge.recovered.resumed  # for a source that died with the bridge (Nanonis)
        assert start.scan == "open" and sorted(line.row for line in lines) == list(range(6, 16))
        assert bridge.wait_finished(3, 20)
        status = bridge.status()
    assert (status["recoveries"], status["lines_recovered"]) == (3, 10 + 16 + 10)
    folders = {json.loads((f / "meta.json").read_text())["scan"]: f for f in saved_folders(out)}
    assert set(folders) == {"old", "ended", "open"}
    for scan, data, reason in (("old", old, "superseded"), ("ended", ended, "end"), ("open", open_, "timeout")):
        meta = json.loads((folders[scan] / "meta.json").read_text())
        assert meta["end"]["reason"] == reason and meta["recovered"] is True, scan
        raw = np.load(folders[scan] / "raw_trace.npy")
        assert raw.tobytes() == data.tobytes(), scan  # NaN where never received, bit for bit elsewhere
    assert not (out / ".journal").exists()  # every journal removed once its scan was saved


def test_a_journal_is_written_before_the_scan_ends_and_removed_once_saved(tmp_path):
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, ack_port=0, out=tmp_path / "scans")
    data = image(6, 8, 16)
    with Bridge(config, backend=BlurBackend()) as bridge:
        c = Controller(bridge.endpoints["pull"])
        c.start("j", 8, 16)
        for row in range(5):
            c.line("j", row, data[row])
        wait_for(lambda: bridge.status()["lines_received"] == 5, 10, "lines did not arrive")
        (path,) = (tmp_path / "scans" / ".journal").iterdir()
        records = read_journal(path)
        assert [r[0] for r in records] == [b"scan.start"] + [b"line"] * 5
        assert [bytes(r[2]) for r in records[1:]] == [data[row].tobytes() for row in range(5)]
        c.end("j")
        assert bridge.wait_finished(1, 10)
        c.close()
    assert not path.exists()


# --- acknowledgements and duplicates --------------------------------------------------------------


def test_resent_messages_are_duplicates_counted_once_and_acknowledged(tmp_path):
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, ack_port=0, out=tmp_path / "scans")
    data = image(7, 16, 8)
    with Bridge(config, backend=BlurBackend()) as bridge:
        acks = CTX.socket(zmq.SUB)
        acks.setsockopt(zmq.LINGER, 0)
        acks.connect(bridge.endpoints["ack"])
        acks.setsockopt(zmq.SUBSCRIBE, b"scan.journaled")
        c = Controller(bridge.endpoints["pull"])
        c.start("d", 16, 8)
        start = c.sent[-1]
        for row in range(10):
            c.line("d", row, data[row])
        for frames in [start] + c.sent[4:7]:  # a resent scan.start and rows 3-5, the same bytes
            c.socket.send_multipart(frames)
        for row in range(10, 16):
            c.line("d", row, data[row])
        c.end("d")
        end = c.sent[-1]
        assert bridge.wait_finished(1, 10)
        c.socket.send_multipart(c.sent[-2])  # row 15 and scan.end again, after the scan was saved
        c.socket.send_multipart(end)
        last = msgpack.unpackb(end[1])["seq"]
        seen = []
        while not seen or seen[-1].journaled_seq < last:
            assert acks.poll(2000), "the scan.end was never acknowledged"
            seen.append(decode_published(acks.recv_multipart()))
        wait_for(lambda: bridge.status()["messages_duplicate"] == 6, 5, "resends were not all counted")
        status = bridge.status()
        c.close()
        acks.close()
    assert seen[-1].scan == "d" and seen[-1].journaled_seq == last
    assert [a.journaled_seq for a in seen] == sorted(a.journaled_seq for a in seen)
    assert status["lines_received"] == 16 and status["faults"] == {} and status["scans_finished"] == 1
    (folder,) = saved_folders(tmp_path / "scans")
    assert np.load(folder / "raw_trace.npy").tobytes() == data.tobytes()


def test_a_repeated_row_with_other_values_is_still_a_row_order_fault(tmp_path):
    with Bridge(BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans"), backend=BlurBackend()) as bridge:
        c = Controller(bridge.endpoints["pull"])
        c.start("r", 4, 4)
        c.line("r", 0, np.zeros(4, "<f4"))
        c.line("r", 0, np.ones(4, "<f4"))
        c.end("r")
        assert bridge.wait_finished(1, 10)
        status = bridge.status()
        c.close()
    assert status["faults"] == {"row_order": 1} and status["messages_duplicate"] == 0


# --- the journal file -------------------------------------------------------------------------------


def test_a_torn_or_corrupt_record_ends_the_journal_and_is_cut_off(tmp_path):
    journal = Journal(tmp_path)
    messages = scan_messages("t", image(8, 4, 4), 0)
    path = write_journal(journal, messages)
    whole = path.read_bytes()
    assert read_journal(path) == [[bytes(f) for f in encode(m)] for m in messages]
    corrupt = bytearray(whole)
    corrupt[-1] ^= 0xFF  # the last record's payload: its CRC no longer matches
    path.write_bytes(bytes(corrupt))
    assert len(read_journal(path)) == len(messages) - 1
    assert len(path.read_bytes()) < len(whole)  # cut, so a resumed scan appends after a whole record
    assert Journal(tmp_path).create("next").path.name.startswith("000002-")


def test_a_controller_that_reuses_a_scan_id_and_restarts_its_seq_is_not_taken_for_a_resend(tmp_path):
    first, second = image(9, 4, 4), image(10, 4, 4)
    with Bridge(BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans"), backend=BlurBackend()) as bridge:
        # Two runs of the same program, one after the other: same scan id, seq from 0. The second waits
        # for the first to be finished: two PUSH sockets open at once are fair-queued, so their
        # messages would interleave, which is not what two runs in sequence send.
        for finished, data in enumerate((first, second), start=1):
            c = Controller(bridge.endpoints["pull"])
            c.start("same", 4, 4)
            for row in range(4):
                c.line("same", row, data[row])
            c.end("same")
            c.close()
            assert bridge.wait_finished(finished, 10)
        status = bridge.status()
    assert status["messages_duplicate"] == 0 and status["lines_received"] == 8
    saved = [np.load(f / "raw_trace.npy").tobytes() for f in saved_folders(tmp_path / "scans")]
    assert sorted(saved) == sorted([first.tobytes(), second.tobytes()])
