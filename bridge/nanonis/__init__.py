"""The Nanonis TCP programming interface: our client, and a simulated controller that speaks it.

``protocol`` encodes and decodes messages, ``client`` sends the scan commands, ``scanner`` and
``server`` make the simulated controller of ``maed sim-nanonis``. The source that feeds a bridge
from a controller is ``maed.bridge.sources.nanonis``. Layouts and conventions: ``bridge/NANONIS.md``.
"""

from .client import NanonisClient, NanonisConnectionError
from .protocol import NanonisError, NanonisProtocolError
from .scanner import Scanner, simulated_frames
from .server import SimulatedNanonis

__all__ = ["NanonisClient", "NanonisConnectionError", "NanonisError", "NanonisProtocolError", "Scanner",
           "SimulatedNanonis", "simulated_frames"]
