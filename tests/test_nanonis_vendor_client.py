"""The simulated controller speaks the vendor's protocol: ``nanonis_spm`` (SPECS' own client) drives it.

Two proofs of byte compatibility: the vendor's client decodes what our simulated controller sends
(values equal to the scan's, NaN included), and the vendor's requests are byte for byte the
requests our client encodes, answered by our server's encoder through a socket pair.
"""

import socket
import threading
import time

import numpy as np
import pytest

from maed.bridge.nanonis import NanonisClient
from maed.bridge.nanonis.client import receive_message, scan_layout
from maed.bridge.nanonis.protocol import BodyWriter, encode_message
from maed.bridge.simulated import Scanner, SimulatedNanonis, simulated_frames

nanonis_spm = pytest.importorskip("nanonis_spm")

SEED, SIZE = 11, 32


@pytest.fixture
def controller():
    # One frame, fast: it ends by itself, and what it holds afterwards is fixed.
    with SimulatedNanonis(Scanner(simulated_frames(SEED), size=SIZE, line_rate=400, scans=1), port=0) as server:
        yield server


@pytest.fixture
def vendor(controller):
    conn = socket.create_connection(("127.0.0.1", controller.port))
    yield nanonis_spm.Nanonis(conn)
    conn.close()


def values(response):
    error, _, fields = response
    assert error == ""
    return fields


def wait_idle(vendor, timeout=5.0):
    deadline = time.monotonic() + timeout
    while values(vendor.Scan_StatusGet()) == [1]:
        assert time.monotonic() < deadline, "the simulated scan did not end"
        time.sleep(0.02)


def test_the_vendor_client_reads_status_buffer_frame_and_speed(controller, vendor):
    assert values(vendor.Scan_StatusGet()) == [1]
    count, indexes, pixels, lines = values(vendor.Scan_BufferGet())
    assert (count, [i[0] for i in indexes], pixels, lines) == (2, [0, 14], SIZE, SIZE)
    ours = NanonisClient(port=controller.port)
    frame = ours.scan_frame()
    assert values(vendor.Scan_FrameGet()) == [frame.center_x, frame.center_y, frame.width, frame.height, frame.angle]
    assert frame.width > 0 and frame.width == frame.height
    fwd_speed, bwd_speed, fwd_time, bwd_time, keep, ratio = values(vendor.Scan_SpeedGet())
    assert fwd_time == bwd_time == pytest.approx(1 / 800) and (keep, ratio) == (1, 1.0)
    assert fwd_speed == pytest.approx(frame.width * 800, rel=1e-6)
    ours.close()


def test_the_vendor_client_grabs_the_frame_bit_for_bit(controller, vendor):
    wait_idle(vendor)
    expected = {c.name: c for c in simulated_frames(SEED)(0, SIZE, False).channels}
    for index, name in ((14, "Z (m)"), (0, "Current (A)")):
        for forward, image in ((1, expected[name].forward), (0, expected[name].backward)):  # Nanonis' words
            name_size, channel, rows, cols, data, up = values(vendor.Scan_FrameDataGrab(index, forward))
            assert (name_size, channel, rows, cols, up) == (len(name), name, SIZE, SIZE, 0)
            sent = np.asarray(data, np.float32).reshape(SIZE, SIZE)
            assert sent.tobytes() == np.ascontiguousarray(scan_layout(image, False, forward == 1)).tobytes()
            if forward == 0:  # the retrace comes right to left, as scanned
                assert sent[:, ::-1].tobytes() == image.tobytes()


def test_the_vendor_client_stops_and_starts_scans_and_sees_the_unscanned_rows_as_nan(controller, vendor):
    ours = NanonisClient(port=controller.port)
    assert values(vendor.Scan_Action(1, 0)) == []  # stop
    assert values(vendor.Scan_StatusGet()) == [0]
    assert values(vendor.Scan_Action(0, 1)) == []  # start, up
    time.sleep(0.02)
    assert values(vendor.Scan_Action(1, 0)) == []  # stop mid-frame: the frame keeps what was scanned
    *_, data, up = values(vendor.Scan_FrameDataGrab(14, 1))
    vendor_frame = np.asarray(data, np.float32).reshape(SIZE, SIZE)
    grab = ours.frame_data_grab(14)
    assert up == 1 and grab.up
    assert vendor_frame.tobytes() == grab.data.tobytes()  # same bytes through either client, NaN and all
    scanned = np.isfinite(vendor_frame).all(axis=1)
    assert 0 < scanned.sum() < SIZE and scanned[0] and not scanned[-1]  # lines in the order scanned
    in_image = np.isfinite(grab.image).all(axis=1)
    assert in_image[-1] and not in_image[0]  # an up scan fills the image from the bottom
    ours.close()


def test_the_vendor_client_gets_the_error_section_of_an_unknown_command(vendor, capsys):
    error, body, fields = vendor.quickSend("Motor.StartMove", [0, 1, 0, 0], ["I", "H", "I", "I"], [])
    assert error == "unknown command 'Motor.StartMove'" and fields == []
    assert body[:4] == b"\x00\x00\x00\x01"  # error status
    assert "unknown command" in capsys.readouterr().out  # the vendor's client prints it


# --- requests, byte for byte ------------------------------------------------------------------


REQUESTS = [
    ("Scan_StatusGet", (), "Scan.StatusGet", b""),
    ("Scan_BufferGet", (), "Scan.BufferGet", b""),
    ("Scan_FrameGet", (), "Scan.FrameGet", b""),
    ("Scan_SpeedGet", (), "Scan.SpeedGet", b""),
    ("Scan_FrameDataGrab", (14, 1), "Scan.FrameDataGrab", BodyWriter().u32(14).u32(1).bytes()),
    ("Scan_FrameDataGrab", (0, 0), "Scan.FrameDataGrab", BodyWriter().u32(0).u32(0).bytes()),
    ("Scan_Action", (0, 1), "Scan.Action", BodyWriter().u16(0).u32(1).bytes()),
]


@pytest.mark.parametrize("method, args, command, body", REQUESTS, ids=[f"{r[0]}{r[1]}" for r in REQUESTS])
def test_the_vendor_sends_the_bytes_our_client_sends(controller, method, args, command, body):
    ours, theirs = socket.socketpair()
    seen = []

    def answer():  # our server's encoder answers whatever the vendor asked
        header, request = receive_message(ours)
        seen.append(encode_message(header.command, request))
        ours.sendall(encode_message(header.command, controller.respond(header.command, request), False))

    thread = threading.Thread(target=answer)
    thread.start()
    error, _, _ = getattr(nanonis_spm.Nanonis(theirs), method)(*args)
    thread.join()
    ours.close()
    theirs.close()
    assert error == ""
    assert seen == [encode_message(command, body)]
