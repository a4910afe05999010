"""Loading a model for ``set_model`` on a thread of its own, bounded by a timeout.

The control thread must keep answering ``status`` while a model loads (an ONNX session takes about
a second, a checkpoint imports torch, a TensorRT engine may be built), and a load that never returns
(a file swapped for a FIFO after it was checked, a hung network file system) must cost one request,
not the control socket. So each load runs on a daemon thread; the control thread looks at it between
requests and replies when it has returned or its time is up. A thread cannot be killed, so one load
runs at a time: a ``set_model`` while a load runs, or while an abandoned one has still not returned,
is refused at once, and at most one stuck thread is ever left behind.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from maed.denoise import BOTH, check_pass, one_pass_only, passes_of
from maed.engine import Backend

from .priority import yield_to_io

MODEL_LOAD_TIMEOUT_S = 120.0
"""Default time a ``set_model`` may take to load (``maed serve --model-timeout``): an ONNX or torch model
loads in seconds; a TensorRT engine built on first use may need more."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one bounded line: back ends (onnxruntime, torch) raise messages of many lines."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def warm_up(backend: Backend) -> None:
    """One small inference on the loading thread, so that the first update after the swap does not pay the back
    end's first-call costs (ONNX Runtime's kernels and thread pool: measured up to 200 ms on the loaded CPU)."""
    side = 4 * int(getattr(backend, "size_multiple", 16) or 16)
    try:
        backend.denoise(np.zeros((1, passes_of(backend), side, side), dtype=np.float32))
    except Exception:  # a shape outside a TensorRT engine's profiles: no warm-up, the load stands
        pass


class ModelLoad:
    """One load running on its own thread; ``outcome`` tells, without waiting, how it went."""

    def __init__(self, loader: Callable[[str, str], Backend], backend: str, model: str, timeout: float, passes: int = 1) -> None:
        self.model = model
        self.passes = passes
        """1: a model for the live bands (one pass); 2: the two-pass model of ``maed serve --pass both``."""
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.timeout = timeout
        self.abandoned = False
        """Its time ran out: whatever it returns later is thrown away."""
        self._done = threading.Event()
        self._backend: Backend | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(loader, backend, model), name="maed-model-load", daemon=True)
        self.thread.start()

    def _run(self, loader: Callable[[str, str], Backend], backend: str, model: str) -> None:
        yield_to_io()  # before the session exists: its pool threads take this thread's priority
        try:
            loaded = loader(backend, model)
            if self.passes == 1:
                one_pass_only(loaded, "the live bridge")
            else:
                check_pass(loaded, BOTH)
            warm_up(loaded)
            self._backend = loaded
        except BaseException as exc:  # whatever a back end raises becomes the request's error reply
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> Backend:
        """Wait for the load however long it takes, and return what it loaded or raise what it raised (the
        bridge's start: nothing is served yet, so there is nothing to time out for)."""
        self.thread.join()
        if self._error is not None:
            raise self._error
        return self._backend

    def outcome(self) -> Backend | None:
        """The loaded back end; None while it loads. Raises ``ValueError`` (one line) if it failed or its
        time ran out (then it is abandoned)."""
        if self._done.is_set() and not self.abandoned:
            if self._error is not None:
                raise ValueError(f"model {self.model[:200]!r} could not be loaded: {one_line(self._error)}")
            return self._backend
        if time.monotonic() >= self.deadline:
            self.abandoned = True
            raise ValueError(f"model {self.model[:200]!r} did not load within {self.timeout:g} s; abandoned (the current model stays)")
        return None


class ModelLoader:
    """Starts loads one at a time with ``loader`` (``load_backend``'s signature), each bounded by ``timeout``."""

    def __init__(self, loader: Callable[[str, str], Backend], timeout: float = MODEL_LOAD_TIMEOUT_S) -> None:
        if not timeout > 0:
            raise ValueError(f"model timeout must be positive seconds, got {timeout}")
        self.loader, self.timeout = loader, timeout
        self._last: ModelLoad | None = None

    @property
    def loading(self) -> str | None:
        """The model a load is running for (also an abandoned one that has not returned), or None."""
        last = self._last
        return last.model if last is not None and last.thread.is_alive() else None

    def start(self, backend: str, model: str, passes: int = 1) -> ModelLoad:
        """Start loading ``model`` on ``backend``, a model of ``passes`` passes; ``ValueError`` at once while another
        load runs."""
        last = self._last
        if last is not None and last.thread.is_alive():
            what = "was abandoned and has not returned" if last.abandoned else "is running"
            raise ValueError(
                f"a load of model {last.model[:200]!r} {what} ({time.monotonic() - last.started:.0f} s); try again when it is over"
            )
        self._last = ModelLoad(self.loader, backend, model, self.timeout, passes)
        return self._last
