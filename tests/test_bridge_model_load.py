"""set_model loads off the control thread, bounded by a timeout: status is answered meanwhile, and a load
that fails, is refused or runs out of time gets a one-line error reply and is counted.

A slow load here is a real one: the loader opens a FIFO before it loads, and the open blocks in the
kernel until the test opens the other end (as a model file swapped for a FIFO after its check, or a
hung network file system, would block a back end).
"""

import errno
import os
import threading
import time

import pytest
from fake_backends import NamedBackend

from maed.bridge.control_client import request
from maed.bridge.server import Bridge, BridgeConfig


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mine.pt").write_bytes(b"weights")
    (folder / "other.pt").write_bytes(b"weights")
    (folder / "bad.onnx").write_bytes(b"this is no ONNX file\n" * 10)
    os.mkfifo(folder / "fifo.onnx")
    return folder


@pytest.fixture
def gate(tmp_path):
    """A FIFO the loader opens first: it blocks until ``unblock``."""
    path = tmp_path / "gate"
    os.mkfifo(path)
    return path


def gated_loader(gate):
    def load(backend, model):
        with open(gate, "rb") as f:  # blocks until a writer opens the other end
            f.read()
        return NamedBackend(model)

    return load


def unblock(fifo, timeout=10.0):
    """Let a reader blocked opening ``fifo`` go on: a writer opens and closes it (the reader reads EOF).

    The bridge says a load is running before its thread reaches the open: until a reader is there, a
    non-blocking writer's open fails with ENXIO, so it is tried again (a loaded machine is slow to get there)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def config(tmp_path, models, **kw):
    return BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", models=models, **kw)


def set_model_in_background(endpoint, model):
    """The set_model reply, received on a thread of its own (it comes when the load is over)."""
    replies = []
    thread = threading.Thread(target=lambda: replies.append(request(endpoint, {"cmd": "set_model", "model": model}, timeout=30)))
    thread.start()
    return thread, replies


def wait_status(endpoint, check):
    for _ in range(1000):
        status = request(endpoint, {"cmd": "status"}, timeout=5)
        if check(status):
            return status
    raise AssertionError(f"status never became as expected: {status}")


def test_status_is_answered_while_a_model_loads_and_the_reply_comes_when_it_is_loaded(tmp_path, models, gate):
    mine = str(models.resolve() / "mine.pt")
    with Bridge(config(tmp_path, models), backend=NamedBackend("start"), loader=gated_loader(gate)) as bridge:
        ep = bridge.endpoints["control"]
        thread, replies = set_model_in_background(ep, "mine.pt")
        status = wait_status(ep, lambda s: s["model_loading"] == mine)
        assert status["model"] == "start" and not replies  # loading, and the control socket still serves
        assert request(ep, {"cmd": "info"}, timeout=5)["model"] == "start"
        refused = request(ep, {"cmd": "set_model", "model": "other.pt"}, timeout=5)  # one load at a time
        assert refused["ok"] is False and "is running" in refused["error"] and "\n" not in refused["error"]
        unblock(gate)
        thread.join(10)
        assert replies == [{"ok": True, "v": 2, "model": mine, "backend": "fake"}]
        status = wait_status(ep, lambda s: s["model_loading"] is None)
        assert status["model"] == mine and status["model_failures"] == 1  # the refused one


def test_a_load_over_its_timeout_is_abandoned_with_an_error_and_blocks_no_one(tmp_path, models, gate):
    cfg = config(tmp_path, models, model_timeout=0.3)
    with Bridge(cfg, backend=NamedBackend("start"), loader=gated_loader(gate)) as bridge:
        ep = bridge.endpoints["control"]
        reply = request(ep, {"cmd": "set_model", "model": "mine.pt"}, timeout=10)
        assert reply["ok"] is False and "did not load within 0.3 s" in reply["error"] and "\n" not in reply["error"]
        status = request(ep, {"cmd": "status"}, timeout=5)
        assert status["model"] == "start" and status["model_failures"] == 1
        assert "did not load within" in status["last_model_failure"]
        # The stuck thread cannot be killed: no second load starts beside it.
        again = request(ep, {"cmd": "set_model", "model": "other.pt"}, timeout=5)
        assert again["ok"] is False and "abandoned and has not returned" in again["error"]
        unblock(gate)  # the abandoned load returns: its model is thrown away, never switched to
        wait_status(ep, lambda s: s["model_loading"] is None)
        assert request(ep, {"cmd": "status"}, timeout=5)["model"] == "start"
        thread, replies = set_model_in_background(ep, "other.pt")
        wait_status(ep, lambda s: s["model_loading"] is not None)
        unblock(gate)
        thread.join(10)
        assert replies[0]["ok"] and replies[0]["model"] == str(models.resolve() / "other.pt")


def test_an_invalid_model_file_and_a_fifo_get_one_line_errors_with_the_real_loader(tmp_path, models):
    with Bridge(config(tmp_path, models), backend=NamedBackend("start")) as bridge:  # load_backend
        ep = bridge.endpoints["control"]
        bad = request(ep, {"cmd": "set_model", "model": "bad.onnx", "backend": "onnx"}, timeout=30)
        assert bad["ok"] is False and "could not be loaded" in bad["error"] and "\n" not in bad["error"]
        fifo = request(ep, {"cmd": "set_model", "model": "fifo.onnx"}, timeout=5)  # refused, never opened
        assert fifo["ok"] is False and "not a regular file" in fifo["error"]
        status = request(ep, {"cmd": "status"}, timeout=5)
        assert status["model"] == "start" and status["model_failures"] == 2
        assert "not a regular file" in status["last_model_failure"]


def test_a_fifo_as_the_starting_model_is_refused_at_once(tmp_path, models):
    bridge = Bridge(
        BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "scans", model=str(models / "fifo.onnx"), backend="onnx")
    )
    with pytest.raises(ValueError, match="not a regular file"):
        bridge.start()


def spins(backend) -> bool:
    """Whether an ONNX Runtime back end's threads spin-wait between runs (their default)."""
    options = backend.session.get_session_options()
    try:
        return options.get_session_config_entry("session.intra_op.allow_spinning") != "0"
    except RuntimeError:  # the entry was never set
        return True


def test_share_cpu_loads_every_model_with_threads_that_sleep_between_runs(tmp_path):
    """``maed serve --share-cpu``: the starting model and one a set_model loads later both leave the CPU to other
    software between band updates; without it, ONNX Runtime keeps its default."""
    with Bridge(BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "shared", backend="onnx", share_cpu=True)) as bridge:
        started = bridge.worker.backend
        assert not spins(started)
        reply = request(bridge.endpoints["control"], {"cmd": "set_model", "model": "rt-plane"}, timeout=60)
        assert reply["ok"], reply
        assert bridge.worker.backend is not started and not spins(bridge.worker.backend)
    with Bridge(BridgeConfig(pull_port=0, pub_port=0, control_port=0, out=tmp_path / "default", backend="onnx")) as bridge:
        assert spins(bridge.worker.backend)
