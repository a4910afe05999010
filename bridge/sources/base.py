"""The source interface and the pusher every source sends through."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import numpy as np
import zmq

from ..endpoints import connect
from ..keys import ClientKeys
from ..protocol import Line, ScanEnd, ScanStart, encode
from .resend import Resender

log = logging.getLogger("maed.bridge")

PUSH_LINGER_MS = 5000


class Source(Protocol):
    """Feeds scan lines to a bridge.

    ``run`` pushes ingest messages (``scan.start``, ``line``, ``scan.end``) to the bridge's PULL
    ``endpoint`` with a ``LinePusher`` (CURVE with ``keys`` when given) until it has nothing more to
    send or ``stop`` is set, and returns. It runs on a thread of its own; it must not hold up the
    caller after ``stop``.
    """

    name: str

    def run(self, endpoint: str, stop: threading.Event, keys: ClientKeys | None = None) -> None: ...


class LinePusher:
    """A controller's side of the wire protocol: a PUSH socket and the sender's ``seq`` counter.

    With ``acks`` (the bridge's ack endpoint, ``maed serve --ack-port``) every message is kept until
    the bridge has journaled it, and resent after the bridge restarts (``Resender``); sends then
    never block.
    """

    def __init__(self, endpoint: str, context: zmq.Context | None = None, acks: str | None = None, keys: ClientKeys | None = None) -> None:
        """Connect to the bridge's PULL ``endpoint``; ``keys``: CURVE keys for a keyed bridge."""
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUSH)
        if keys is not None:
            keys.apply(self._socket)
        # Lines still queued when the source closes are delivered, up to this long.
        self._socket.setsockopt(zmq.LINGER, PUSH_LINGER_MS)
        if acks is not None:  # queue only to a live connection: what a dead bridge had queued is resent instead
            self._socket.setsockopt(zmq.IMMEDIATE, 1)
        else:  # a bridge that refuses this client's keys leaves no connection, and a PUSH send would wait for ever
            self._socket.setsockopt(zmq.SNDTIMEO, PUSH_LINGER_MS)
        connect(self._socket, endpoint)
        self._endpoint = endpoint
        self._seq = 0
        self._last: tuple[str, list[bytes]] | None = None
        """The scan and the frames of the last message sent where it was a line (``keep_alive`` sends them again)."""
        try:
            self._resender = (
                None
                if acks is None
                else Resender(self._socket, acks, context or zmq.Context.instance(), keys.apply if keys is not None else None)
            )
        except ValueError:  # a malformed ack endpoint: said in one line, the PUSH socket not left open
            self._socket.close(linger=0)
            raise

    def _send(self, message: ScanStart | Line | ScanEnd) -> None:
        # Only a line is sent again as a sign of life: a scan.start a bridge no longer holds open (it restarted and
        # finished it) would open a new, empty scan of the same id.
        frames = encode(message)
        self._last = (message.scan, frames) if isinstance(message, Line) else None
        if self._resender is None:
            try:
                self._socket.send_multipart(frames)
            except zmq.Again:
                raise ConnectionError(
                    f"no bridge at {self._endpoint} took a message within {PUSH_LINGER_MS / 1000:g} s: "
                    "is it running, and does it accept this client's keys?"
                ) from None
        else:
            self._resender.send(message.scan, message.seq, frames)
        self._seq += 1

    @property
    def unacked(self) -> int:
        """Messages the bridge has not acknowledged yet (0 without ``acks``)."""
        return 0 if self._resender is None else self._resender.unacked

    def wait_acked(self, timeout: float) -> bool:
        """Send what waits and wait up to ``timeout`` seconds until the bridge journaled every message
        (at once True without ``acks``)."""
        return self._resender is None or self._resender.wait(timeout)

    def start(
        self,
        scan: str,
        rows: int,
        cols: int,
        range_m: tuple[float, float],
        *,
        slow_axis: str = "down",
        channel: str = "Z",
        unit: str = "m",
        **extra: object,
    ) -> None:
        """Send ``scan.start``; ``slow_axis`` is ``down`` (row 0 first) or ``up``; ``extra`` adds header keys."""
        self._send(
            ScanStart(
                scan=scan,
                seq=self._seq,
                rows=rows,
                cols=cols,
                channel=channel,
                unit=unit,
                range=tuple(range_m),
                slow_axis=slow_axis,
                extra=extra,
            )
        )

    def line(self, scan: str, row: int, data: np.ndarray, *, pass_: str = "trace", t: float | None = None) -> None:
        """Send one line of frame row ``row``; ``pass_`` is ``trace`` or ``retrace``, ``data`` in image order
        (column 0 left, for the retrace too)."""
        data = np.ascontiguousarray(data, dtype="<f4")
        self._send(Line(scan=scan, seq=self._seq, row=row, pass_=pass_, t=time.time() if t is None else t, data=data))

    def end(self, scan: str, complete: bool = True, why: str | None = None) -> None:
        """Send ``scan.end``; ``why``: what ended the scan, where known (``protocol.WHY_ENDED``)."""
        self._send(ScanEnd(scan=scan, seq=self._seq, complete=complete, why=why))

    def keep_alive(self, scan: str) -> None:
        """Send the last line of ``scan`` again, as it was sent: the bridge counts a message it already holds as a
        duplicate, and as a sign that its controller is still there (its idle timeout), never as new data. For a scan
        the controller holds paused, which sends no lines for as long as the pause lasts. Nothing where the last
        message sent was not a line of ``scan`` (a scan paused before its first line still times out); never waits (a
        bridge that is away misses it)."""
        if self._last is None or self._last[0] != scan:
            return
        try:
            self._socket.send_multipart(self._last[1], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        """Close; with ``acks``, after waiting up to the linger time for the last acknowledgements."""
        if self._resender is not None:
            if not self.wait_acked(PUSH_LINGER_MS / 1000):
                log.warning("%d messages were not acknowledged by the bridge: they are lost unless it journaled them", self.unacked)
            self._resender.close()
        self._socket.close()
