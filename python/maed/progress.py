"""The progress bar of ``maed denoise``: one line per run, files done of files asked, the file at work and its
stage, and its elapsed time moving while one large scan takes a minute (a 3000 x 3000 scan held the bar at
0/1 for 95 s before: a user could not tell work from a hang).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

TICK_S = 1.0
"""How often the bar is redrawn while nothing else moves it."""


class FileProgress:
    """A bar over ``total`` files, redrawn every ``TICK_S`` by a thread of its own (tqdm redraws only when told);
    off, like tqdm, where ``file`` (standard error by default) is not a terminal."""

    def __init__(self, total: int, desc: str = "denoise", file: TextIO | None = None) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="file", disable=None, file=file)
        self._stop = threading.Event()
        self._ticker = None
        if not self.bar.disable:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self.bar.refresh()

    def stage(self, name: str, what: str) -> None:
        """Show that file ``name`` is at stage ``what`` (reading, denoising, ...)."""
        self.bar.set_postfix_str(f"{name}: {what}")

    def done(self) -> None:
        """One more file finished (done, skipped or failed)."""
        self.bar.set_postfix_str("")
        self.bar.update()

    def __enter__(self) -> FileProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.bar.close()
