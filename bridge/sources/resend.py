"""The sender's side of the journal's acknowledgements: keep every message until the bridge has it on disk.

A ``Resender`` drives a ``LinePusher``'s PUSH socket when the bridge publishes acknowledgements
(``scan.journaled`` on its ack socket, ``bridge/PROTOCOL.md``). It keeps each message it is given
until a ``scan.journaled`` of the message's scan covers its ``seq``, and never blocks:

- the PUSH socket queues only to a live connection (``ZMQ_IMMEDIATE``), so when the bridge dies
  the messages queued for it are dropped with the connection instead of being delivered, out of
  order, to the restarted bridge; sends meanwhile fail at once and the messages wait here;
- when the connection drops (a monitor event), every message not yet acknowledged is sent again,
  in order, before any newer one, once a new connection has completed its handshake: the restarted
  bridge sees no gap and takes the resent messages it already journaled as duplicates. Nothing is
  sent between the drop and the new handshake: for a moment after the drop is reported, ZMQ still
  takes messages into the dead connection's pipe and loses them (seen with ``kill -9`` of the
  bridge), and nothing would tell this sender to send them again.

Messages wait here for as long as the bridge does not acknowledge them: memory grows at the line
rate while it is down (a 256-pixel line is about 1.1 kB).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..endpoints import connect
from ..protocol import ProtocolError, ScanJournaled, decode_published

ACK_TOPIC = b"scan.journaled"


class Resender:
    """Unacknowledged messages, the ack subscription and the sending of both new and resent messages."""

    def __init__(self, socket: zmq.Socket, acks: str, context: zmq.Context, secure: Callable[[zmq.Socket], None] | None = None) -> None:
        """``socket``: the pusher's PUSH socket, already connected with ``ZMQ_IMMEDIATE`` set; ``acks``: the
        bridge's ack endpoint; ``secure`` sets the CURVE keys of a new socket (None: none)."""
        self._socket = socket
        self._acks = context.socket(zmq.SUB)
        self._acks.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure(self._acks)
        connect(self._acks, acks)  # first: a malformed endpoint leaves nothing of this object open
        self._acks.setsockopt(zmq.SUBSCRIBE, ACK_TOPIC)
        self._monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._connected = True
        """False from a lost connection until the next one's handshake: sends would be lost meanwhile. (The
        first connection's handshake may precede the monitor; before it, ``ZMQ_IMMEDIATE`` refuses sends.)"""
        self._unacked: deque[tuple[str, int, list[bytes]]] = deque()
        self._sent = 0
        """How many of the oldest unacknowledged messages went out on the current connection."""
        self.resent = 0
        """Messages sent again after a lost connection."""

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    def send(self, scan: str, seq: int, frames: list[bytes]) -> None:
        """Keep the message and send whatever the connection takes now, oldest first."""
        self._unacked.append((scan, seq, frames))
        self.pump()

    def pump(self) -> None:
        """Take in acknowledgements and lost connections, then send what is waiting."""
        self._read_acks()
        while self._monitor.poll(0):
            if recv_monitor_message(self._monitor)["event"] == zmq.EVENT_DISCONNECTED:
                # What went out on the lost connection may have died in its buffers: all of it again.
                self.resent += self._sent
                self._sent = 0
                self._connected = False
            else:
                self._connected = True
        while self._connected and self._sent < len(self._unacked):
            try:
                self._socket.send_multipart(self._unacked[self._sent][2], zmq.NOBLOCK)
            except zmq.Again:  # no connection, or its queue is full: the rest waits for the next pump
                return
            self._sent += 1

    def _read_acks(self) -> None:
        while self._acks.poll(0):
            try:
                ack = decode_published(self._acks.recv_multipart())
            except ProtocolError:
                continue  # not an acknowledgement this sender can read: it keeps its messages
            if not isinstance(ack, ScanJournaled) or not any(s == ack.scan for s, _, _ in self._unacked):
                continue  # another sender's scan
            # The bridge journals a sender's messages in order, so every older one is on disk too.
            while self._unacked and self._unacked[0][1] <= ack.journaled_seq:
                self._unacked.popleft()
                self._sent = max(0, self._sent - 1)

    def wait(self, timeout: float) -> bool:
        """Send and wait until every message is acknowledged or ``timeout`` seconds passed; True if all were."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            left = deadline - time.monotonic()
            if not self._unacked or left <= 0:
                return not self._unacked
            self._acks.poll(min(50, max(1, int(left * 1000))))

    def close(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close()
        self._acks.close()
