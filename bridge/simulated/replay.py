"""A real scan file as the frame of the simulated Nanonis controller (``maed sim-nanonis --replay``).

The file is read with ``maed.scanfiles`` (image order, physical units, NaN where never measured)
and scanned again, line by line, every frame the same. Only the chosen channel is acquired; a
channel recorded forward only has no retrace (its backward lines stay NaN and are never sent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .scanner import FrameMaker, SimChannel, SimFrame

REPLAY_CHANNEL_INDEX = 0


def replay_frames(path: Path | str, channel: str | None = None) -> tuple[FrameMaker, SimFrame, str]:
    """A frame maker that always gives the file's ``channel`` (None: ``read_channel``'s default, the topograph or, at
    constant height, the current), that frame, and the slow axis it was recorded along (``up`` where the file says
    its last row was scanned first, ``maed.scanfiles.scanned_upwards``; else ``down``).

    Raises ``maed.scanfiles.ScanFileError`` (a ``ValueError`` with a one-line message) when the
    file or the channel cannot be read.
    """
    from maed.scanfiles import ScanFileError, read_channel, scanned_upwards

    forward = read_channel(path, channel, "forward")
    try:
        backward = read_channel(path, forward.name, "backward").data
    except ScanFileError:
        backward = np.full_like(forward.data, np.nan)
    # Named as Nanonis names its signals, so that a client finds it as it would on the instrument.
    name = f"{forward.name} ({forward.unit})"
    image = SimChannel(REPLAY_CHANNEL_INDEX, name, forward.data.astype(np.float32), backward.astype(np.float32))
    frame = SimFrame((image,), *forward.scan_range)

    def make(k: int, size: int, up: bool) -> SimFrame:
        return frame

    return make, frame, "up" if scanned_upwards(forward) else "down"
