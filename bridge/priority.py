"""Denoising yields the CPU to the threads that take raw lines and answer control requests.

On a 2-core machine the denoiser's threads (the worker, ONNX Runtime's pool, the live guard) can keep
both cores busy for hundreds of milliseconds; a control request or a burst of lines then waits for the
scheduler, not for the bridge (``status`` answered in 6 ms at p95 but up to 60 ms at worst in the soak,
``docs/reliability.md``). Raw lines and control come first, so each denoising thread lowers its own
scheduling priority (a larger nice value, per thread on Linux). ONNX Runtime's pool threads inherit the
priority of the thread that creates the session, so sessions are created on such a thread
(``bridge.model_loader``). Raising niceness needs no privilege; where the system has no per-thread
priority (not Linux) this does nothing.
"""

from __future__ import annotations

import os
import sys
import threading

DENOISING_NICENESS = 5
"""How much lower the denoising threads run than the rest (nice 0 -> 5: about a third of a normal thread's
share of a contended core, and a waking normal thread runs first)."""
GUARD_NICENESS = 10
"""The live trust guard runs lower still: its evaluations of a tall frame take a core for up to a second, and
the band updates a scientist watches come first (on the idle Xeon VM, 256-pixel lines at 200 lines/s: update
latency p95 27-39 -> 21-22 ms on 256-row scans, 34-44 -> 24-30 ms on 1024-row scans). Its verdicts come later
on a busy machine, and their interval, set by their cost (``bridge.streaming.GUARD_SHARE``), stretches with them."""


def yield_to_io(niceness: int = DENOISING_NICENESS) -> None:
    """Lower the calling thread's priority by ``niceness`` (from where it is; never raises it back)."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere os.setpriority acts on the whole process: the control thread would lose too
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
    except OSError:  # a sandbox that forbids it: the bridge runs as before
        pass
