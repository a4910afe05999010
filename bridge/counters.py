"""What the bridge counts for ``status``: faults by kind (logged once per kind) and latencies."""

from __future__ import annotations

import errno
import logging
import threading
from collections import Counter, deque

import numpy as np

from .protocol import FAULT_KINDS

log = logging.getLogger("maed.bridge")

LATENCY_WINDOW = 1000


class FaultCounter:
    """Counts protocol faults by kind; the first of each kind is logged, the rest only counted.

    Logging once per kind keeps a controller that sends thousands of bad lines from flooding the
    log while still telling the operator what is wrong.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, kind: str, detail: str) -> None:
        with self._lock:
            self._counts[kind] += 1
            first = self._counts[kind] == 1
        if first:
            log.warning("%s: %s (%s; further %s faults are counted, not logged)", kind, detail, FAULT_KINDS[kind], kind)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class LatencyWindow:
    """Percentiles of the last ``LATENCY_WINDOW`` latencies, in milliseconds."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._values.append(ms)

    def values(self) -> list[float]:
        with self._lock:
            return list(self._values)

    def summary(self) -> dict[str, float | int | None]:
        values = np.array(self.values())
        if values.size == 0:
            return {"p50": None, "p95": None, "count": 0}
        p50, p95 = np.percentile(values, [50, 95])
        return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "count": int(values.size)}


class Tally:
    """A count of one kind of loss and the reason of the last one, for ``status``.

    Each loss is logged as an error when it happens; ``status`` keeps the count and the last reason so
    that an operator who was not watching the log still sees that something was lost, and why.
    """

    def __init__(self) -> None:
        self.count = 0
        self.last = ""
        self._lock = threading.Lock()

    def add(self, reason: str) -> None:
        with self._lock:
            self.count += 1
            self.last = reason[:500]  # a reason quotes what came from outside: bounded


class Losses:
    """Every kind of loss the bridge counts for ``status``, each with its last reason."""

    FIELDS = {
        "journal_failures": "last_journal_failure",
        "save_failures": "last_save_failure",
        "disk_full": "last_disk_full",
        "scans_rejected": "last_scan_rejected",
        "restarts": "last_restart",
        "model_failures": "last_model_failure",
    }
    """Status field of each count, and of its last reason."""

    def __init__(self) -> None:
        self.journal_failures = Tally()
        """Journal writes that failed: that scan goes on unjournaled, in memory."""
        self.save_failures = Tally()
        """Finished scans that could not be written: their journal is kept for the next start."""
        self.disk_full = Tally()
        """Journal writes and saves that failed for want of space (counted in their own kind too)."""
        self.scans_rejected = Tally()
        """``scan.start`` messages refused: malformed, over the pixel budget, repeating the open scan."""
        self.restarts = Tally()
        """Bridge threads restarted by the supervisor after an unexpected error."""
        self.model_failures = Tally()
        """``set_model`` requests that failed: refused, failed to load, or over the load timeout."""

    def failed_io(self, kind: Tally, reason: str, exc: BaseException) -> None:
        """Count a failure to write in ``kind``, and in ``disk_full`` too when the disk is full."""
        kind.add(reason)
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            self.disk_full.add(reason)

    def status(self) -> dict[str, int | str]:
        fields: dict[str, int | str] = {}
        for count, last in self.FIELDS.items():
            tally = getattr(self, count)
            fields[count], fields[last] = tally.count, tally.last
        return fields
