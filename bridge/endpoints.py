"""Client sockets connecting to the endpoints a user names (``maed listen``, ``maed control``, ``maed push-sim`` and its
acks): a malformed endpoint said in one line."""

from __future__ import annotations

import zmq


def connect(socket: zmq.Socket, endpoint: str) -> None:
    """``socket.connect(endpoint)``; a malformed endpoint closes the socket and raises ``ValueError`` in one line."""
    try:
        socket.connect(endpoint)
    except zmq.ZMQError as exc:
        socket.close()
        raise ValueError(f"cannot connect to {endpoint!r}: {exc}; an endpoint looks like tcp://127.0.0.1:5571") from None
