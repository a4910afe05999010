"""Weights are written whole or not at all (``maed.atomic``), and the live adapter, stopped with SIGTERM as the bridge
stops it, leaves through Python's exit path, so that a file it was writing leaves no temporary file behind."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from maed.model.checkpoint import save_checkpoint
from maed.model.registry import build_model


def test_a_checkpoint_that_fails_mid_write_leaves_nothing_in_its_folder(tmp_path, monkeypatch):
    model = build_model("rt")

    def half_then_fail(state, path):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "adapted.pt", model, "rt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
def test_the_live_adapter_leaves_through_its_exit_path_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "maed.adapt_live", "--models", str(tmp_path / "models")],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "models").is_dir():  # it has parsed its arguments and is waiting for scans
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 128 + signal.SIGTERM  # SystemExit from the handler, not death by the signal
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
