"""A client of the Nanonis TCP programming interface: the scan commands the bridge follows a scan with.

One ``NanonisClient`` is one TCP connection and sends one command at a time, waiting for its
response (the protocol has no request ids, so requests are never interleaved). A connection that
failed (refused, reset, no answer within ``timeout``) raises ``NanonisConnectionError`` and is
closed: a late answer to the lost request must not be read as the answer to the next one, so the
caller reconnects with a new client.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from .protocol import (
    HEADER_SIZE,
    BodyReader,
    BodyWriter,
    Header,
    NanonisProtocolError,
    decode_header,
    encode_message,
    read_response,
)

T = TypeVar("T")

DEFAULT_PORT = 6501
SCAN_ACTIONS = {"start": 0, "stop": 1, "pause": 2, "resume": 3, "freeze": 4, "unfreeze": 5, "center": 6}
"""``Scan.Action``'s action codes."""


class NanonisConnectionError(ConnectionError):
    """The controller cannot be reached, closed the connection, or did not answer in time."""


@dataclass(frozen=True)
class ScanBuffer:
    channels: tuple[int, ...]
    """Indexes of the acquired channels (signal slots), in the controller's order."""
    pixels: int
    lines: int


@dataclass(frozen=True)
class ScanFrame:
    center_x: float
    center_y: float
    width: float
    height: float
    angle: float
    """Degrees, positive clockwise."""


@dataclass(frozen=True)
class ScanSpeed:
    forward_speed: float
    backward_speed: float
    forward_time_per_line: float
    backward_time_per_line: float
    keep_constant: int
    speed_ratio: float


def scan_layout(array: np.ndarray, up: bool, forward: bool) -> np.ndarray:
    """Between the controller's frame layout and image order, both ways (a view; its own inverse).

    The controller's layout is the ``.sxm`` file's: lines in the order scanned (the bottom line
    first in an up scan), backward lines right to left as scanned. Image order: row 0 at the top,
    column 0 at the left, for both passes. ``forward`` is Nanonis' word for the trace.
    ``bridge/NANONIS.md`` says why this is assumed.
    """
    return array[:: -1 if up else 1, :: 1 if forward else -1]


@dataclass(frozen=True)
class FrameGrab:
    channel: str
    """The channel's name as the controller gives it, e.g. ``Z (m)``."""
    data: np.ndarray
    """``(lines, pixels)`` float32 in the controller's layout (``scan_layout``), NaN where not yet scanned."""
    up: bool
    """The scan's slow axis: True for up, False for down."""
    forward: bool
    """True for the trace (Nanonis: forward), False for the retrace (Nanonis: backward)."""

    @property
    def image(self) -> np.ndarray:
        """``data`` in image order: row 0 at the top, column 0 at the left."""
        return scan_layout(self.data, self.up, self.forward)


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


MIN_REPLY_RATE = 1 << 20
"""Bytes per second a reply must at least arrive at, beyond the answer's timeout: a controller that sends a byte now and
then (each ``recv`` within the timeout) would otherwise hold the source for ever. A 2048 x 2048 frame (16 MB) may take
16 s more than the timeout."""


def receive_exactly(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes from ``sock``; ``ConnectionError`` when the peer closes first, ``socket.timeout`` past
    ``deadline`` (``time.monotonic()``; None: each ``recv`` within the socket's own timeout only)."""
    chunks, left = [], size
    timeout = sock.gettimeout()
    try:
        while left:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout("the reply came too slowly")
                sock.settimeout(remaining if timeout is None else min(timeout, remaining))
            chunk = sock.recv(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("the connection was closed")
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        if deadline is not None:
            sock.settimeout(timeout)
    return b"".join(chunks)


def receive_message(sock: socket.socket, timeout: float | None = None) -> tuple[Header, bytes]:
    """One message (header and body) from ``sock``; with ``timeout``, the header within it and the body within it and
    its size at ``MIN_REPLY_RATE``."""
    start = time.monotonic()
    header = decode_header(receive_exactly(sock, HEADER_SIZE, None if timeout is None else start + timeout))
    deadline = None if timeout is None else time.monotonic() + timeout + header.body_size / MIN_REPLY_RATE
    return header, receive_exactly(sock, header.body_size, deadline)


class NanonisClient:
    """One connection to a Nanonis controller (or ``maed sim-nanonis``); a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout: float = 2.0) -> None:
        self.address = f"{host}:{port}"
        self.timeout = timeout
        try:
            self._sock: socket.socket | None = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise NanonisConnectionError(f"cannot reach Nanonis at {self.address}: {_reason(exc)}") from None
        # Requests are small and answered one by one: send each at once.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "NanonisClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, command: str, body: bytes, read_fields: Callable[[BodyReader], T]) -> T:
        """Send ``command`` with ``body`` and decode its response with ``read_fields``.

        Raises ``NanonisError`` when the controller reports an error, ``NanonisConnectionError``
        when the connection fails, ``NanonisProtocolError`` for a malformed response; after the
        last two the client is closed.
        """
        if self._sock is None:
            raise NanonisConnectionError(f"the connection to Nanonis at {self.address} is closed")
        try:
            self._sock.sendall(encode_message(command, body))
            header, reply = receive_message(self._sock, self.timeout)
            if header.command != command:
                raise NanonisProtocolError(f"Nanonis answered {command} with {header.command!r}")
        except OSError as exc:
            self.close()
            if isinstance(exc, socket.timeout):
                raise NanonisConnectionError(f"Nanonis at {self.address} did not answer {command} within {self.timeout:g} s") from None
            raise NanonisConnectionError(f"lost Nanonis at {self.address}: {_reason(exc)}") from None
        except NanonisProtocolError:
            self.close()
            raise
        return read_response(command, reply, read_fields)

    # --- the scan commands -------------------------------------------------------------------

    def scan_status(self) -> bool:
        """``Scan.StatusGet``: whether a scan is running."""
        return self.call("Scan.StatusGet", b"", lambda r: r.u32() == 1)

    def scan_buffer(self) -> ScanBuffer:
        """``Scan.BufferGet``: the acquired channels, pixels per line and lines per frame."""

        def read(r: BodyReader) -> ScanBuffer:
            count = r.i32()
            return ScanBuffer(r.i32_array(count), r.i32(), r.i32())

        return self.call("Scan.BufferGet", b"", read)

    def scan_frame(self) -> ScanFrame:
        """``Scan.FrameGet``: centre, width and height in metres, angle in degrees."""
        return self.call("Scan.FrameGet", b"", lambda r: ScanFrame(*(r.f32() for _ in range(5))))

    def scan_speed(self) -> ScanSpeed:
        """``Scan.SpeedGet``: linear speeds (m/s), times per line (s), what is kept constant, speed ratio."""
        return self.call("Scan.SpeedGet", b"", lambda r: ScanSpeed(r.f32(), r.f32(), r.f32(), r.f32(), r.u16(), r.f32()))

    def frame_data_grab(self, channel: int, forward: bool = True) -> FrameGrab:
        """``Scan.FrameDataGrab``: the current frame of an acquired channel (its index, not its name)."""
        body = BodyWriter().u32(channel).u32(1 if forward else 0).bytes()
        return self.call("Scan.FrameDataGrab", body, lambda r: FrameGrab(r.string(), r.f32_2d(), r.u32() == 1, forward))

    def scan_action(self, action: str, up: bool = False) -> None:
        """``Scan.Action``: ``start``, ``stop``, ``pause``, ``resume`` ...; ``up`` is the slow axis of a start."""
        if action not in SCAN_ACTIONS:
            raise ValueError(f"scan action must be one of {', '.join(SCAN_ACTIONS)}, got {action!r}")
        body = BodyWriter().u16(SCAN_ACTIONS[action]).u32(1 if up else 0).bytes()
        self.call("Scan.Action", body, lambda r: None)

    def z_withdraw(self, wait: bool = False, timeout_ms: int = -1) -> None:
        """``ZCtrl.Withdraw``: switch the Z-controller off and pull the tip up; ``wait``: answer when it is
        up, or after ``timeout_ms`` (-1: no limit)."""
        body = BodyWriter().u32(1 if wait else 0).i32(timeout_ms).bytes()
        self.call("ZCtrl.Withdraw", body, lambda r: None)
