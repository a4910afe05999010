"""The source interface and the pusher every source sends through."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np
import zmq

from ..keys import ClientKeys
from ..protocol import Line, ScanEnd, ScanStart, encode

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
    """A controller's side of the wire protocol: a PUSH socket and the sender's ``seq`` counter."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, keys: ClientKeys | None = None) -> None:
        """Connect to the bridge's PULL ``endpoint``; ``keys``: CURVE keys for a keyed bridge."""
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUSH)
        if keys is not None:
            keys.apply(self._socket)
        # Lines still queued when the source closes are delivered, up to this long.
        self._socket.setsockopt(zmq.LINGER, PUSH_LINGER_MS)
        self._socket.connect(endpoint)
        self._seq = 0

    def _send(self, message: ScanStart | Line | ScanEnd) -> None:
        self._socket.send_multipart(encode(message))
        self._seq += 1

    def start(self, scan: str, rows: int, cols: int, range_m: tuple[float, float], *, slow_axis: str = "down",
              channel: str = "Z", unit: str = "m", **extra: object) -> None:
        """Send ``scan.start``; ``slow_axis`` is ``down`` (row 0 first) or ``up``; ``extra`` adds header keys."""
        self._send(ScanStart(scan=scan, seq=self._seq, rows=rows, cols=cols, channel=channel, unit=unit,
                             range=tuple(range_m), slow_axis=slow_axis, extra=extra))

    def line(self, scan: str, row: int, data: np.ndarray, *, pass_: str = "trace", t: float | None = None) -> None:
        """Send one line of frame row ``row``; ``pass_`` is ``trace`` or ``retrace``, ``data`` in image order
        (column 0 left, for the retrace too)."""
        data = np.ascontiguousarray(data, dtype="<f4")
        self._send(Line(scan=scan, seq=self._seq, row=row, pass_=pass_, t=time.time() if t is None else t, data=data))

    def end(self, scan: str, complete: bool = True) -> None:
        self._send(ScanEnd(scan=scan, seq=self._seq, complete=complete))

    def close(self) -> None:
        self._socket.close()
