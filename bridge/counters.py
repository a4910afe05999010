"""What the bridge counts for ``status``: faults by kind (logged once per kind) and latencies."""

from __future__ import annotations

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
