"""The Nanonis TCP protocol: header and body bytes, the error section, and errors over real sockets."""

import socket
import struct
import threading
import time

import numpy as np
import pytest

from maed.bridge.nanonis import NanonisClient
from maed.bridge.nanonis.client import NanonisConnectionError, receive_message
from maed.bridge.nanonis.protocol import (
    HEADER_SIZE,
    BodyReader,
    BodyWriter,
    NanonisError,
    NanonisProtocolError,
    decode_header,
    encode_message,
    read_response,
)
from maed.bridge.simulated import Scanner, SimulatedNanonis, simulated_frames


def test_the_header_is_40_bytes_name_size_flag_padding():
    message = encode_message("Scan.StatusGet", b"\x01\x02\x03")
    assert len(message) == HEADER_SIZE + 3
    assert message[:32] == b"Scan.StatusGet" + b"\0" * 18
    assert message[32:36] == b"\x00\x00\x00\x03"  # body size, big-endian int32
    assert message[36:38] == b"\x00\x01"  # send response back
    assert message[38:40] == b"\x00\x00" and message[40:] == b"\x01\x02\x03"
    header = decode_header(message[:40])
    assert (header.command, header.body_size, header.send_response) == ("Scan.StatusGet", 3, True)
    assert decode_header(encode_message("Scan.Action", send_response=False)[:40]).send_response is False


def test_bad_headers_are_refused():
    with pytest.raises(ValueError, match="1 to 32 ASCII"):
        encode_message("X" * 33)
    with pytest.raises(NanonisProtocolError, match="body of -1 bytes"):
        decode_header(b"Scan.StatusGet".ljust(32, b"\0") + struct.pack(">iH2x", -1, 1))
    with pytest.raises(NanonisProtocolError, match="40 bytes"):
        decode_header(b"short")
    # Another server on the port: said as such, not as a body of 1.9 GB that the bytes "nnec" announce.
    with pytest.raises(NanonisProtocolError, match=r"not a Nanonis reply: it begins b'HTTP/1.1 400 Bad Request"):
        decode_header(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n"[:40])


def test_body_types_are_big_endian_and_round_trip():
    frame = np.array([[1.0, np.nan], [-2.5, 3e-10]], np.float32)
    body = BodyWriter().u16(6).u32(1).i32(-2).f32(1.0).string("Z (m)").i32(2).i32_array([0, 14]).f32_2d(frame).error().bytes()
    assert body[:2] == b"\x00\x06" and body[2:6] == b"\x00\x00\x00\x01" and body[6:10] == b"\xff\xff\xff\xfe"
    assert body[10:14] == b"\x3f\x80\x00\x00"  # 1.0 as big-endian float32
    assert body[14:18] == b"\x00\x00\x00\x05" and body[18:23] == b"Z (m)"
    assert body[-8:] == b"\x00" * 8  # error section: status 0, description size 0
    r = BodyReader(body)
    assert (r.u16(), r.u32(), r.i32(), r.f32(), r.string()) == (6, 1, -2, 1.0, "Z (m)")
    assert r.i32_array(r.i32()) == (0, 14)
    decoded = r.f32_2d()
    assert decoded.dtype == np.float32 and decoded.tobytes() == frame.tobytes()  # NaN included, bit for bit
    assert r.error() == (0, "")
    r.end()


def test_read_response_returns_the_fields_when_the_error_status_is_zero():
    body = BodyWriter().u32(1).error().bytes()
    assert read_response("Scan.StatusGet", body, lambda r: r.u32()) == 1


def test_a_non_zero_error_status_raises_with_the_description():
    body = BodyWriter().string("").i32(0).i32(0).u32(0).error(7, "channel index 3 is not acquired").bytes()
    with pytest.raises(NanonisError, match="Scan.FrameDataGrab failed: channel index 3 is not acquired") as info:
        read_response("Scan.FrameDataGrab", body, lambda r: (r.string(), r.f32_2d(), r.u32()))
    assert (info.value.command, info.value.status, info.value.description) == ("Scan.FrameDataGrab", 7, "channel index 3 is not acquired")


def test_an_error_section_without_fields_is_an_error_not_a_broken_body():
    body = BodyWriter().error(1, "unknown command").bytes()
    with pytest.raises(NanonisError, match="unknown command"):
        read_response("Scan.BufferGet", body, lambda r: (r.i32_array(r.i32()), r.i32(), r.i32()))


def test_truncated_or_overlong_bodies_are_protocol_errors():
    with pytest.raises(NanonisProtocolError, match="truncated"):
        read_response("Scan.StatusGet", b"\x00\x00", lambda r: r.u32())
    with pytest.raises(NanonisProtocolError, match="too many"):
        read_response("Scan.StatusGet", BodyWriter().u32(1).error().bytes() + b"\x00", lambda r: r.u32())


# --- over real sockets -----------------------------------------------------------------------------


@pytest.fixture
def controller():
    with SimulatedNanonis(Scanner(simulated_frames(0), size=16, line_rate=100), port=0) as server:
        yield server


def test_an_error_response_over_tcp_becomes_an_exception_and_the_connection_stays_usable(controller):
    with NanonisClient(port=controller.port) as client:
        with pytest.raises(NanonisError, match="unknown command 'Bias.Get'"):
            client.call("Bias.Get", b"", lambda r: r.f32())
        with pytest.raises(NanonisError, match=r"channel index 3 is not acquired \(acquired: 0, 14\)"):
            client.frame_data_grab(3)
        with pytest.raises(NanonisError, match="scan action 4 is not simulated"):
            client.scan_action("freeze")
        assert client.scan_buffer().channels == (0, 14)


def test_a_refused_connection_is_a_one_line_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NanonisConnectionError) as info:
        NanonisClient(port=port)
    assert str(info.value) == f"cannot reach Nanonis at 127.0.0.1:{port}: connection refused"


def test_no_answer_within_the_timeout_closes_the_connection(controller):
    client = NanonisClient(port=controller.port, timeout=0.2)
    controller.freeze(1.0)
    with pytest.raises(NanonisConnectionError, match=r"did not answer Scan.StatusGet within 0.2 s"):
        client.scan_status()
    with pytest.raises(NanonisConnectionError, match="closed"):
        client.scan_status()  # a late answer must never be read as the answer to the next request


def test_an_answer_to_another_command_is_a_protocol_error():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_wrongly():
            conn, _ = listener.accept()
            with conn:
                receive_message(conn)
                conn.sendall(encode_message("Scan.FrameGet", BodyWriter().u32(1).error().bytes(), False))

        thread = threading.Thread(target=answer_wrongly)
        thread.start()
        with NanonisClient(port=listener.getsockname()[1]) as client:
            with pytest.raises(NanonisProtocolError, match="answered Scan.StatusGet with 'Scan.FrameGet'"):
                client.scan_status()
        thread.join()


def test_an_answer_that_trickles_in_byte_by_byte_times_out_as_a_whole():
    """Found by fuzzing: a controller that sends a byte every so often kept each read within the timeout and held the
    source for ever (and Ctrl-C with it)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        done = threading.Event()

        def trickle():
            conn, _ = listener.accept()
            with conn:
                receive_message(conn)
                reply = encode_message("Scan.StatusGet", BodyWriter().u32(1).error().bytes(), False)
                for byte in reply:
                    if done.wait(0.15):
                        return
                    conn.sendall(bytes([byte]))

        thread = threading.Thread(target=trickle)
        thread.start()
        start = time.monotonic()
        with NanonisClient(port=listener.getsockname()[1], timeout=0.5) as client:
            with pytest.raises(NanonisConnectionError, match="did not answer Scan.StatusGet within 0.5 s"):
                client.scan_status()
        assert time.monotonic() - start < 2.0  # a byte every 0.15 s: the whole answer needs about 6 s
        done.set()
        thread.join()
