"""The bridge's denoising threads yield the CPU to the threads that take raw lines and answer control
(``maed.bridge.priority``): the worker and ONNX Runtime's pool run at a larger nice value, ingest and
control at the process's own."""

import os
import sys

import pytest

from maed.bridge.priority import DENOISING_NICENESS
from maed.bridge.server import Bridge, BridgeConfig

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def tasks() -> list[int]:
    return [int(t) for t in os.listdir("/proc/self/task")]


def test_denoising_runs_below_ingest_and_control(tmp_path):
    base = nice_of(0)
    before = set(tasks())
    config = BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", backend="onnx")
    with Bridge(config) as bridge:
        threads = {t.name: t.native_id for t in bridge._threads}
        assert nice_of(threads["maed-worker"]) == max(base, DENOISING_NICENESS)
        assert nice_of(threads["maed-ingest"]) == base
        assert nice_of(threads["maed-control"]) == base
        assert nice_of(threads["maed-journal"]) == base
        # ONNX Runtime's pool threads (not Python's) were made by the niced loading thread and keep its priority.
        python = {t.native_id for t in bridge._threads}
        pool = [t for t in set(tasks()) - before - python if nice_of(t) == max(base, DENOISING_NICENESS)]
        if (os.cpu_count() or 1) > 1:
            assert pool, "ONNX Runtime's pool threads run at the process's priority"
    assert nice_of(0) == base  # the main thread, which answers nothing live, keeps its priority too
