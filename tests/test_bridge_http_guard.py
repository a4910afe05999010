"""The preview's HTTP hardening on real sockets: token, Host and Origin, body limits, bounded reports, timeouts."""

import http.client
import json
import socket
import time

import pytest

from maed.bridge import httpguard
from maed.bridge.preview import MAX_REPORT_BYTES, MAX_REPORTS, Preview

NOWHERE = "tcp://127.0.0.1:9"  # the preview's subscriber connects lazily; no bridge is needed for HTTP


@pytest.fixture
def preview():
    with Preview(NOWHERE, port=0, idle_timeout=0.5, max_connections=4) as p:
        yield p


def port_of(preview):
    return int(preview.base_url.rsplit(":", 1)[1].strip("/"))


def request(preview, method, path, headers=None, body=None, host=None):
    """Status and body of one request; ``host`` replaces the Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(preview), timeout=5)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{port_of(preview)}" if host is None else host)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def raw_exchange(preview, data: bytes, timeout=5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port_of(preview)), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_preview_needs_its_token(preview):
    assert preview.url == f"{preview.base_url}?token={preview.token}" and len(preview.token) >= 16
    assert request(preview, "GET", "/")[0] == 401
    assert request(preview, "GET", "/api/status")[0] == 401
    assert request(preview, "GET", "/?token=not-the-token-at-all")[0] == 403
    assert request(preview, "GET", "/api/status", {"Authorization": "Bearer wrong"})[0] == 403
    status, page = request(preview, "GET", f"/?token={preview.token}")
    assert status == 200 and b"MAED-RT live preview" in page
    assert request(preview, "GET", "/api/status", {"Authorization": f"Bearer {preview.token}"})[0] == 200


def test_a_given_token_is_used_and_a_short_one_refused():
    token = "a-token-of-the-operators-choice"
    with Preview(NOWHERE, port=0, token=token) as p:
        assert p.token == token and request(p, "GET", f"/?token={token}")[0] == 200
    with pytest.raises(ValueError, match="16 characters"):
        Preview(NOWHERE, port=0, token="short")


def test_host_and_origin_must_name_this_server(preview):
    path, port = f"/api/status?token={preview.token}", port_of(preview)
    # DNS rebinding: an attacker's name that now resolves to 127.0.0.1, with the right token even.
    assert request(preview, "GET", path, host=f"attacker.example:{port}")[0] == 403
    assert request(preview, "GET", path, host="")[0] == 403
    assert request(preview, "GET", path, {"Origin": "http://attacker.example"})[0] == 403
    assert request(preview, "GET", path, {"Origin": "null"})[0] == 403
    assert request(preview, "GET", path, host=f"localhost:{port}")[0] == 200
    assert request(preview, "GET", path, host=f"[::1]:{port}")[0] == 200
    assert request(preview, "GET", path, {"Origin": f"http://127.0.0.1:{port}"})[0] == 200


def test_bad_content_lengths_are_refused_at_once(preview):
    report = f"/api/report?token={preview.token}"
    start = time.monotonic()
    for length in ("-1", "abc", "1e3", "+5"):
        reply = raw_exchange(preview, f"POST {report} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.0 400"), (length, reply[:60])
    assert time.monotonic() - start < 2.0  # answered, never a thread waiting for a body that will not come
    missing = raw_exchange(preview, f"POST {report} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert missing.startswith(b"HTTP/1.0 400")
    chunked = raw_exchange(preview, f"POST {report} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    assert chunked.startswith(b"HTTP/1.0 400")
    huge = raw_exchange(preview, f"POST {report} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {10**11}\r\n\r\n".encode())
    assert huge.startswith(b"HTTP/1.0 413")
    assert request(preview, "POST", report, {"Content-Type": "application/json"}, b"[1, 2]")[0] == 400
    assert request(preview, "POST", report, {}, b'{"n": 1}')[0] == 204


def post_report(preview, report: dict) -> int:
    """POST one report, again while the answer is 503: each request here is a fresh connection, and a slot is free
    only once the thread of a closed one has ended, which a loaded machine is slow to get to (the connection limit
    has a test of its own). The 503 comes before the body is read, so a large body's sender mostly sees the
    connection closed under it instead; nothing was stored either way."""
    deadline = time.monotonic() + 10
    while True:
        try:
            status, _ = request(preview, "POST", f"/api/report?token={preview.token}", {}, json.dumps(report).encode())
        except (BrokenPipeError, ConnectionResetError):
            status = 503
        if status != 503 or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_report_storage_stays_bounded(preview):
    filler = "x" * 100_000
    for n in range(100):  # 10 MB posted in all
        assert post_report(preview, {"n": n, "filler": filler}) == 204
    kept = list(preview.board.reports)
    assert kept[-1]["n"] == 99 and len(kept) <= MAX_REPORTS
    assert sum(len(json.dumps(r)) for r in kept) <= MAX_REPORT_BYTES
    for n in range(MAX_REPORTS + 10):  # many small ones: the count bound
        assert post_report(preview, {"n": n}) == 204
    assert len(preview.board.reports) == MAX_REPORTS and preview.board.reports[-1] == {"n": MAX_REPORTS + 9}


def test_idle_and_trickling_connections_are_closed(preview):
    start = time.monotonic()
    assert raw_exchange(preview, b"") == b""  # said nothing: closed after the idle timeout (0.5 s)
    assert time.monotonic() - start < 3.0
    start = time.monotonic()
    reply = raw_exchange(preview, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
    assert reply == b"" and time.monotonic() - start < 3.0


def test_a_request_that_trickles_in_is_cut_at_its_deadline(preview, monkeypatch):
    """Found by fuzzing: a byte every few seconds never trips the idle timeout, and 32 such held every slot."""
    monkeypatch.setattr(httpguard, "REQUEST_DEADLINE_S", 1.0)
    with socket.create_connection(("127.0.0.1", port_of(preview)), timeout=5) as s:
        start = time.monotonic()
        s.sendall(b"GET /api/status HTTP/1.1\r\n")
        try:
            for _ in range(40):  # a header byte each 0.2 s, within the idle timeout of 0.5 s: 8 s in all
                s.sendall(b"X")
                time.sleep(0.2)
        except OSError:  # cut: the peer closed
            pass
        assert s.recv(100) == b"" and time.monotonic() - start < 3.0


def test_a_report_nested_past_the_parser_is_refused_not_dropped(preview):
    nested = b"[" * 100_000 + b"]" * 100_000
    assert request(preview, "POST", f"/api/report?token={preview.token}", {}, nested)[0] == 400


def test_connections_beyond_the_limit_are_answered_503_without_a_thread(preview):
    held = [socket.create_connection(("127.0.0.1", port_of(preview)), timeout=5) for _ in range(4)]
    try:
        time.sleep(0.1)  # the server has accepted all four
        start = time.monotonic()
        assert raw_exchange(preview, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.1 503")
        assert time.monotonic() - start < 0.4  # refused at once, not after the idle ones time out
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)  # their handlers see the close and free the slots
    assert request(preview, "GET", f"/?token={preview.token}")[0] == 200


def test_one_address_holds_no_more_than_its_share_of_the_connections():
    """Connections held from 127.0.0.1 fill that address's share; another client address (127.0.0.2, loopback too)
    is still served, and the share comes back when they close."""
    with Preview(NOWHERE, port=0, idle_timeout=2.0, max_connections=6, max_per_address=2) as p:
        port = port_of(p)
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.1)  # the server has accepted both
            assert raw_exchange(p, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.1 503")
            with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)) as other:
                other.sendall(f"GET /?token={p.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                assert other.makefile("rb").readline().split()[1] == b"200"
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)  # their handlers see the close and give the address's share back
        assert request(p, "GET", f"/?token={p.token}")[0] == 200
