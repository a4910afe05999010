"""Simulator and bridge together in one process: the engine of ``maed demo`` and ``maed serve --source sim``."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from maed.engine import Backend

from ..preview import Preview
from ..server import Bridge, BridgeConfig
from .controller import SimScan, SimulatedController


@dataclass(frozen=True)
class LiveRun:
    """What a live run produced: the saved scan folders, what was scanned, the final status."""

    saved: list[Path]
    scans: list[SimScan]
    status: dict
    endpoints: dict[str, str]
    latencies_ms: list[float]
    """Latency of each live denoised frame (newest line's arrival to publish), the last 1000."""


def run_live(
    config: BridgeConfig,
    sim: SimulatedController,
    backend: Backend | None = None,
    preview_port: int | None = None,
    on_start: Callable[[dict[str, str]], None] | None = None,
    timeout: float | None = None,
) -> LiveRun:
    """Start a bridge (and the preview on ``preview_port``, 0 for any free port) and ``sim`` pushing into it.

    Returns once the simulator's scans are finished and saved; ``sim.scans`` must be at least 1.
    ``on_start`` gets the endpoints (``pull``, ``pub``, ``control`` and ``preview``, the page's URL
    with its token, when served) before the first line is sent. Raises ``TimeoutError`` when the scans are not
    finished within ``timeout`` seconds (None: the scan time plus a minute).
    """
    if sim.scans < 1:
        raise ValueError("a live run needs a finite number of scans (at least 1)")
    if timeout is None:
        timeout = sim.scans * sim.size / sim.line_rate + 60.0
    stop = threading.Event()
    with Bridge(config, backend) as bridge, contextlib.ExitStack() as stack:
        endpoints = dict(bridge.endpoints)
        if preview_port is not None:
            preview = stack.enter_context(
                Preview(bridge.endpoints["pub"], config.host, preview_port, bridge.status, keys=bridge.client_keys)
            )
            endpoints["preview"] = preview.url
        if on_start is not None:
            on_start(endpoints)
        source = threading.Thread(target=sim.run, args=(bridge.endpoints["pull"], stop, bridge.client_keys), name="maed-sim", daemon=True)
        source.start()
        try:
            if not bridge.wait_finished(sim.scans, timeout):
                raise TimeoutError(f"the simulated scans did not finish within {timeout:.0f} s")
        finally:
            stop.set()
            source.join()
        worker = bridge.worker
        return LiveRun(list(worker.saved), list(sim.scanned), bridge.status(), endpoints, worker.latency.values())
