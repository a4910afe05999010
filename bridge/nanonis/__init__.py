"""The Nanonis TCP programming interface: our client.

``protocol`` encodes and decodes messages, ``client`` sends the scan commands. The source that
feeds a bridge from a controller is ``maed.bridge.sources.nanonis``; the simulated controller of
``maed sim-nanonis`` is ``maed.bridge.simulated.nanonis_server``. Layouts and conventions:
``bridge/NANONIS.md``.
"""

from .client import NanonisClient, NanonisConnectionError
from .protocol import NanonisError, NanonisProtocolError

__all__ = ["NanonisClient", "NanonisConnectionError", "NanonisError", "NanonisProtocolError"]
