"""``maed serve``'s C heap gives frame-sized blocks back to the system when they are freed (bridge/heap.py).

Without it, glibc raises its mmap threshold to the size of each mapped block freed (up to 32 MiB): after one
freed 16 MiB array, 2 MiB frames come from the heap and stay resident once freed. The soak's bridge held
120-150 MB more that way and peaked at 650-800 MB during full-frame passes (target 600). Each case runs in a
process of its own, as the thresholds are the process's.
"""

import os
import platform
import subprocess
import sys

import pytest

from maed.bridge.heap import ENVIRONMENT

FRAMES = 64
SCRIPT = f"""
import sys
from pathlib import Path

import numpy as np

from maed.bridge.heap import bound_heap


def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024


if sys.argv[1] == "bound":
    assert bound_heap()
big = np.ones((16 << 20) // 8)  # freed: glibc's own threshold rises to 16 MiB
del big
before = rss_mb()
frames, small = [], []
for _ in range({FRAMES}):
    frames.append(np.ones((512, 512)))  # 2 MiB, like a 512 x 512 float64 band
    small.append(np.ones(1000))  # a block still in use after each frame
frames.clear()
print(rss_mb() - before)
"""


def retained_mb(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/status"), reason="glibc's malloc and /proc only")
def test_freed_frames_go_back_to_the_system():
    assert retained_mb("default") > FRAMES * 2 * 0.75  # glibc's own thresholds: 128 MB stay resident
    assert retained_mb("bound") < 16
