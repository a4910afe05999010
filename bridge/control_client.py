"""The client side of the control socket: one request, one reply (``maed control``)."""

from __future__ import annotations

import msgpack
import zmq

from .endpoints import connect
from .keys import ClientKeys


def request(endpoint: str, message: dict, keys: ClientKeys | None = None, timeout: float = 5.0, context: zmq.Context | None = None) -> dict:
    """Send ``message`` (a map with ``cmd``) to the bridge's control ``endpoint`` and return its reply.

    ``keys``: CURVE keys for a keyed bridge. Raises ``ValueError`` in one line when no reply comes
    within ``timeout`` seconds: a keyed bridge never answers a client it does not know.
    """
    socket = (context or zmq.Context.instance()).socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.apply(socket)
    connect(socket, endpoint)
    try:
        socket.send(msgpack.packb(message, use_bin_type=True))
        if not socket.poll(int(timeout * 1000)):
            raise ValueError(
                f"no reply from {endpoint} within {timeout:g} s: is the bridge up, and "
                "(for a keyed bridge) are --secret-key and --server-key right and allowed?"
            )
        return msgpack.unpackb(socket.recv(), raw=False)
    finally:
        socket.close()
