"""Freed memory the C heap keeps goes back to the system when asked (``maed.engine.heap``, glibc only).

glibc raises its mmap threshold to the size of each mapped block freed (up to 32 MiB): after one freed
16 MiB array, 2 MiB arrays come from its heaps and stay resident once freed, as ONNX Runtime's buffers of
a large run did in the bridge (100 to 140 MB of a 512 x 512 tile). The case runs in a process of its own,
as the heap is the process's.
"""

import os
import platform
import subprocess
import sys

import pytest

BLOCKS = 64
SCRIPT = f"""
from pathlib import Path

import numpy as np

from maed.engine.heap import give_back_free_memory


def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024


big = np.ones((16 << 20) // 8)  # freed: glibc's own threshold rises to 16 MiB
del big
before = rss_mb()
blocks, small = [], []
for _ in range({BLOCKS}):
    blocks.append(np.ones((512, 512)))  # 2 MiB, from the heap now
    small.append(np.ones(1000))  # a block still in use above each one: the heap's top is not free
blocks.clear()
kept = rss_mb() - before
given = give_back_free_memory()
print(kept, rss_mb() - before, given)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/status"), reason="glibc's malloc and /proc only")
def test_freed_blocks_stay_resident_until_given_back():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    kept, after, given = out.stdout.split()
    assert float(kept) > BLOCKS * 2 * 0.75  # glibc keeps what was freed: about 128 MB resident
    assert float(after) < 16 and given == "True"
