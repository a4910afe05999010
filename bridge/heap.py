"""The C heap of ``maed serve``'s process: large blocks go back to the system when they are freed (glibc).

glibc's ``malloc`` maps a block of its own only from its mmap threshold up (128 KiB at start); smaller
ones come from its heaps, where freed memory mostly stays resident, kept for later requests. And each time
a mapped block is freed, glibc raises that threshold to the block's size, up to 32 MiB. In the bridge the
first freed frames of a 1024 x 1024 scan (4 MiB as float32, 8 MiB as float64) raised it within seconds; from
then on every frame-sized array of the live guard and the full-frame pass, the 4 MiB frames waiting for a
slow subscriber and the chunks ONNX Runtime's arena grows by for a 512 x 512 tile came from the heaps, and
what they freed stayed resident. ONNX Runtime's give-back after a large run (``engine/onnx_backend.py``)
then gave its memory back to the heaps, not to the system.

Measured (``benchmarks/test_bridge_soak.py``'s phases shortened to 30 s of 256-pixel and 60 s of 1024-pixel
scans, 2026-12-01, the shared 2-core machine): resident memory in the 1024-pixel phase p50 412 MB, at most
645 to 788 MB (during full-frame passes); with both thresholds fixed as here, p50 288 MB, at most 512 to
520 MB. Calling ``malloc_trim`` after each scan instead: at most 672 MB (the memory is held within a scan's
own work). The full 10-minute soak with it: at most 628 MB (806 MB before; docs/reliability.md).

A fixed mmap threshold also stops glibc from raising its trim threshold, so the heaps' free top is given
back from 128 KiB on: trimming that often made a 256-pixel scan's guard and full-frame pass 30 to 40 %
slower. At ``TRIM_THRESHOLD`` the cost was not measurable (guard and final pass of 256- and 1024-pixel
scans within the run-to-run spread).
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 256 << 10
"""Blocks from this size up are mapped when allocated and unmapped when freed (glibc's ``M_MMAP_THRESHOLD``)."""
TRIM_THRESHOLD = 32 << 20
"""Free memory at a heap's top beyond this is given back (glibc's ``M_TRIM_THRESHOLD``)."""
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
"""Where a user sets glibc's thresholds (or in ``GLIBC_TUNABLES``): then they are left as set."""


def bound_heap() -> bool:
    """Fix glibc's mmap and trim thresholds for this process; whether it did. Nothing is done on a C library
    other than glibc (macOS, Windows, musl) or where the environment sets glibc's thresholds itself."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in ENVIRONMENT) or "_threshold" in tunables:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
