"""Line sources: programs that feed scan lines into the bridge's PULL socket.

A source is anything with ``run(endpoint, stop)`` (``Source``) that pushes the ingest messages of
the wire protocol to ``endpoint`` through a ``LinePusher``, exactly as an external controller
would, so everything downstream is the same whichever source is used. ``--source zmq`` needs no
source object: external controllers connect to the PULL socket themselves. The simulated
controller is in ``maed.bridge.simulated``.
"""

from .base import LinePusher, Source
from .nanonis import NanonisSource

__all__ = ["LinePusher", "NanonisSource", "Source"]
