"""The live preview: a web page showing raw and denoised frames growing line by line.

The preview is one more subscriber of the bridge's PUB socket (``frame.raw``, ``frame.denoised``,
``alert`` and ``scan.finished``): a thread keeps the newest trace raw and denoised frames of the current
scan, with the trust guard's latest verdict, the model's weights hash and the scan's alerts. A small HTTP server (standard library, bound to
127.0.0.1 by default) serves the page and hands it the newest frames by long polling: the page asks
for anything newer than what it has and gets it as soon as it exists. A slow browser therefore only
skips frames; it never slows the bridge.

``GET /api/frames?after=N`` answers with one binary blob: a little-endian uint32 header length, the
header as JSON (padded with spaces to a multiple of 4 bytes), then the raw and the denoised frame as
float32 (rows x cols each, NaN where not scanned). It answers 204 when nothing newer came within the
poll time, and at once with the newest frames where ``N`` is beyond the newest version (a page left open across a
bridge restart). ``GET /api/status`` relays the bridge's ``status``. ``POST /api/report`` lets a page
opened with ``?selftest=1`` report what it drew (used by the browser test); the last
``MAX_REPORTS`` reports, at most ``MAX_REPORT_BYTES`` together, are kept.

Every request needs the preview's token (generated at start unless given; ``url`` carries it) and
a Host naming this server; timeouts and a connection limit bound what clients can hold
(``httpguard``, docs/security.md).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import struct
import threading
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Callable
from urllib.parse import parse_qs, urlparse

import numpy as np
import zmq

from .httpguard import (
    IDLE_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    WILDCARDS,
    DeadlineHandler,
    Gate,
    GuardedHTTPServer,
    Refused,
    read_body,
)
from .keys import ClientKeys
from .protocol import Alert, Frame, ProtocolError, Published, ScanFinished, decode_published

log = logging.getLogger("maed.bridge")

POLL_S = 2.0
PAGE = "static/preview.html"
MAX_REPORT_BYTES = 4 << 20
"""Reports kept, their bodies' bytes together; the oldest go first."""
MAX_REPORTS = 256
MAX_BODY_BYTES = 1 << 20
MAX_ALERTS = 200
"""Alerts kept per scan for the page (a scan that raises more is shown its first ones)."""
ALERT_SCANS = 4
"""Scans whose alerts are kept: an alert may come before its scan's first frame."""


def _finite(value):
    """``value`` with every non-finite float as None: JSON has no NaN, and the page's parser refuses it."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class FrameBoard:
    """The newest trace raw and denoised frames of the current scan, with a version to wait on."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self.version = 0
        self.header: dict = {}
        self.raw: np.ndarray | None = None
        self.denoised: np.ndarray | None = None
        self.reports: deque[dict] = deque()
        self._report_sizes: deque[int] = deque()
        self._alerts: dict[str, list[dict]] = {}

    def add_report(self, report: dict, size: int) -> None:
        """Keep ``report`` (``size`` bytes as posted) within ``MAX_REPORTS`` and ``MAX_REPORT_BYTES``."""
        with self._cv:
            self.reports.append(report)
            self._report_sizes.append(size)
            while len(self.reports) > MAX_REPORTS or sum(self._report_sizes) > MAX_REPORT_BYTES:
                self.reports.popleft()
                self._report_sizes.popleft()

    def put(self, message: Published) -> None:
        with self._cv:
            if isinstance(message, ScanFinished):
                self.header = {**self.header, "ended": True, "saved": message.saved}
            elif isinstance(message, Alert):
                alerts = self._alerts.setdefault(message.scan, [])
                while len(self._alerts) > ALERT_SCANS:
                    del self._alerts[next(iter(self._alerts))]
                if len(alerts) >= MAX_ALERTS:
                    return
                alerts.append(
                    {
                        "kind": message.kind,
                        "row": message.row,
                        "columns": list(message.columns),
                        "severity": message.severity,
                        "evidence": _finite(message.evidence),
                    }
                )
                if message.scan != self.header.get("scan"):
                    return  # its scan's first frame brings it
                self.header["alerts"] = list(alerts)
            elif isinstance(message, Frame) and message.pass_ == "trace":
                if message.scan != self.header.get("scan") or self.raw is None or self.raw.shape != message.data.shape:
                    self.raw = np.full(message.data.shape, np.nan, np.float32)
                    self.denoised = np.full(message.data.shape, np.nan, np.float32)
                    self.header = {
                        "ended": False,
                        "latency_ms": None,
                        "rows_done_denoised": 0,
                        "trust": None,
                        "trace_retrace": None,
                        "alerts": list(self._alerts.get(message.scan, [])),
                    }
                if message.kind == "raw":
                    self.raw = message.data
                    self.header["rows_done"] = message.rows_done
                else:
                    self.denoised = message.data
                    self.header["rows_done_denoised"] = message.rows_done
                    self.header["latency_ms"] = message.latency_ms
                    self.header["trust"] = _finite(message.trust)
                    self.header["trace_retrace"] = _finite(message.trace_retrace)
                rows, cols = message.data.shape
                self.header.update(
                    scan=message.scan,
                    rows=rows,
                    cols=cols,
                    range=list(message.range),
                    unit=message.unit,
                    channel=message.channel,
                    slow_axis=message.slow_axis,
                    update=message.update,
                    final=message.final,
                    model=message.model,
                    backend=message.backend,
                    weights_sha256=message.weights_sha256,
                )
            else:
                return
            self.version += 1
            self.header["version"] = self.version
            self._cv.notify_all()

    def wait_newer(self, after: int, timeout: float) -> bytes | None:
        """The blob of the newest frames once the version exceeds ``after``; None on timeout. A page that knows a
        version beyond this board's saw a bridge before a restart (the same token, ``MAED_PREVIEW_TOKEN``): it gets
        the newest frames at once, else it would show the old scan as scanning until the new count passed its own."""
        with self._cv:
            if not self._cv.wait_for(lambda: self.version > after or after > self.version > 0, timeout):
                return None
            header = json.dumps(self.header).encode()
            raw, denoised = self.raw, self.denoised
        header += b" " * (-len(header) % 4)
        return struct.pack("<I", len(header)) + header + raw.astype("<f4").tobytes() + denoised.astype("<f4").tobytes()


class Preview:
    """Subscribes to ``pub_endpoint`` and serves the page on ``http://host:port/?token=TOKEN``.

    ``token``: the preview's token (None: a new random one); ``keys``: CURVE keys for a keyed
    bridge; ``idle_timeout``, ``max_connections`` and ``max_per_address`` bound what HTTP clients can hold.
    """

    def __init__(
        self,
        pub_endpoint: str,
        host: str = "127.0.0.1",
        port: int = 5580,
        status: Callable[[], dict] | None = None,
        token: str | None = None,
        keys: ClientKeys | None = None,
        idle_timeout: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        max_per_address: int = MAX_PER_ADDRESS,
    ) -> None:
        if token is not None and len(token) < 16:
            raise ValueError("a preview token needs at least 16 characters")
        self.board = FrameBoard()
        self.token = token or secrets.token_urlsafe(24)
        self._endpoint = pub_endpoint
        self._keys = keys
        self._status = status or dict
        self._stop = threading.Event()
        self._page = resources.files("maed.bridge").joinpath(PAGE).read_bytes()
        self._gate = Gate(self.token, host)
        self._idle_timeout = idle_timeout
        try:
            self._http = GuardedHTTPServer((host, port), self._handler(), max_connections, max_per_address)
        except OSError as exc:
            raise ValueError(
                f"cannot serve the preview on {host}:{port}: {exc.strerror} (another bridge's preview? --http-port N chooses another "
                "port, --no-preview serves none)"
            ) from None
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        """The page's address without the token (a wildcard bind is shown as 127.0.0.1)."""
        host, port = self._http.server_address[:2]
        host = "127.0.0.1" if host in WILDCARDS else f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    @property
    def url(self) -> str:
        """The address to open: the page with its token."""
        return f"{self.base_url}?token={self.token}"

    def start(self) -> "Preview":
        self._threads = [
            threading.Thread(target=self._subscribe, name="maed-preview-sub", daemon=True),
            threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.2}, name="maed-preview-http", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> "Preview":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _subscribe(self) -> None:
        socket = zmq.Context.instance().socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        if self._keys is not None:
            self._keys.apply(socket)
        socket.connect(self._endpoint)
        for topic in (b"frame.raw", b"frame.denoised", b"alert", b"scan.finished"):
            socket.setsockopt(zmq.SUBSCRIBE, topic)
        try:
            while not self._stop.is_set():
                if socket.poll(100):
                    try:
                        self.board.put(decode_published(socket.recv_multipart()))
                    except ProtocolError as exc:
                        log.warning("preview: malformed message from the bridge: %s", exc)
        finally:
            socket.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        preview = self

        class Handler(DeadlineHandler):
            timeout = preview._idle_timeout  # applied to the socket: a silent client is dropped

            def log_message(self, format: str, *args: object) -> None:  # no access log on the console
                pass

            def _refuse(self, refused: Refused) -> None:
                self.close_connection = True  # a refused body may be unread: the connection is not reusable
                self._send(refused.status, json.dumps({"error": str(refused)}).encode())

            def _allowed(self) -> bool:
                try:
                    preview._gate.check(self.headers, urlparse(self.path).query)
                except Refused as refused:
                    self._refuse(refused)
                    return False
                return True

            def _send(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.send_header("Referrer-Policy", "no-referrer")  # the token is in the page's URL
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the page was closed or reloaded during a long poll, or stalled: nobody to answer

            def do_GET(self) -> None:
                self.request_read()
                if not self._allowed():
                    return
                url = urlparse(self.path)
                if url.path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, preview._page, "text/html; charset=utf-8")
                elif url.path == "/api/frames":
                    try:
                        after = int(parse_qs(url.query).get("after", ["0"])[0])
                    except ValueError:
                        self._send(HTTPStatus.BAD_REQUEST, b'{"error": "after must be an integer"}')
                        return
                    blob = preview.board.wait_newer(after, POLL_S)
                    if blob is None:
                        self._send(HTTPStatus.NO_CONTENT)
                    else:
                        self._send(HTTPStatus.OK, blob, "application/octet-stream")
                elif url.path == "/api/status":
                    self._send(HTTPStatus.OK, json.dumps(preview._status()).encode())
                else:
                    self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')

            def do_POST(self) -> None:
                if not self._allowed():
                    return
                if urlparse(self.path).path != "/api/report":
                    self.close_connection = True  # its body is not read
                    self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
                    return
                try:
                    body = read_body(self, MAX_BODY_BYTES)
                except Refused as refused:
                    self._refuse(refused)
                    return
                self.request_read()
                try:
                    report = json.loads(body)
                except (ValueError, RecursionError):  # a list nested thousands deep is no report either
                    self._send(HTTPStatus.BAD_REQUEST, b'{"error": "report is not JSON"}')
                    return
                if not isinstance(report, dict):
                    self._send(HTTPStatus.BAD_REQUEST, b'{"error": "report is not a JSON object"}')
                    return
                preview.board.add_report(report, len(body))
                self._send(HTTPStatus.NO_CONTENT)

        return Handler
