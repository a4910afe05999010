"""``maed serve --adapt``: the bridge's side of adapting between scans (``docs/adapt.md``).

Training needs torch and the bridge imports none, so adapting runs in a child process
(``python -m maed.adapt_live``, niced) that this module starts, feeds and watches:

- each finished scan's saved folder (``Worker.on_saved``, called on the worker thread) goes into a queue
  that never blocks; a feeder thread writes it to the child's stdin with the model being served;
- a reader thread takes the child's JSON lines (``maed.adapt_live.emit``) and keeps the state ``status``
  shows (``adapter``);
- when the child reports accepted weights, the reader thread sends ``set_model`` with their ``.onnx`` to the
  bridge's own control socket: the same path a person's ``set_model`` takes (loaded on a thread of its own
  within ``--model-timeout``, swapped whole between updates). It does so only while the bridge still serves
  the weights the round started from (a model set by hand in the meantime is not overridden);
- a child that dies is started again after ``RESTART_DELAY_S``, fed every scan saved so far, at most
  ``MAX_RESTARTS`` times; after that ``status`` says it is dead and why, and the bridge serves on without it.

Nothing here ever waits on the child from the ingest, worker or control threads: the live path never waits for
training.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("maed.bridge")

MIN_SCANS = 3
"""As ``maed.adapt_live.MIN_SCANS`` (not imported: that module imports torch when it runs)."""
MAX_RESTARTS = 3
RESTART_DELAY_S = 5.0
STOP_WAIT_S = 5.0
"""How long ``stop`` lets the child end on SIGTERM before it is killed."""


@dataclass(frozen=True)
class AdaptConfig:
    """``maed serve --adapt``'s options."""

    models: Path
    """Folder the accepted weights are written to; the bridge's ``--models`` folder (or inside it)."""
    minutes: float = 2.0
    """Training time of one round (the checks after it take a bounded time more)."""
    steps: int | None = None
    """Stop each round's training after this many steps (quick checks, tests)."""

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"--adapt-minutes must be above 0, got {self.minutes}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--adapt-steps must be at least 1, got {self.steps}")


class Adapter:
    """The adapter process of one bridge, and what ``status`` says of it."""

    def __init__(self, config: AdaptConfig, served_model, set_model) -> None:
        """``served_model()``: (the model the bridge serves, as it was loaded: a name or a path, its weights hash);
        ``set_model(path)``: ask the bridge to load ``path`` (its control request), returning the reply."""
        self.config = config
        self._served_model = served_model
        self._set_model = set_model
        self._lock = threading.Lock()
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._folders: list[Path] = []
        self._stop = threading.Event()
        self._process: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []
        self._state = "starting"
        self._scans_usable = 0
        self._scans_received = 0
        self._training_on: int | None = None
        self._round_started: float | None = None
        self._rounds = self._accepted = self._refused = self._swaps = 0
        self._restarts = 0
        self._exit: str | None = None
        self._last: dict | None = None

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> "Adapter":
        self._spawn()
        supervisor = threading.Thread(target=self._supervise, name="maed-adapter", daemon=True)
        supervisor.start()
        self._threads.append(supervisor)
        return self

    def _spawn(self) -> None:
        if self._stop.is_set():
            return
        command = [sys.executable, "-m", "maed.adapt_live", "--models", str(self.config.models), "--minutes", str(self.config.minutes)]
        if self.config.steps is not None:
            command += ["--steps", str(self.config.steps)]
        # Its own session: a Ctrl-C at the terminal reaches the bridge, which stops it (``stop``).
        # On Windows (no sessions, no nice): a process group of its own, below normal priority.
        windows = (
            {"creationflags": subprocess.BELOW_NORMAL_PRIORITY_CLASS | subprocess.CREATE_NEW_PROCESS_GROUP}
            if sys.platform == "win32"
            else {"start_new_session": True}
        )
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, **windows)
        with self._lock:
            self._process = process
            self._state = "starting"
            folders = list(self._folders)
        reader = threading.Thread(target=self._read, args=(process,), name="maed-adapter-read", daemon=True)
        reader.start()
        for folder in folders:  # a restarted child learns every scan saved so far
            self._write(process, folder)
        log.info(
            "adapter process %d started (adapting between scans, %s)",
            process.pid,
            f"{self.config.steps} steps" if self.config.steps else f"{self.config.minutes:g} min per round",
        )

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        for thread in self._threads:  # first: a restart it was making is over (or never starts) once it returns
            thread.join(STOP_WAIT_S)
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            try:
                process.stdin.close()
            except OSError:
                pass
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with self._lock:
            self._state = "stopped"

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None

    # --- the worker thread's side ---------------------------------------------------------

    def scan_saved(self, folder: Path) -> None:
        """A finished scan was saved to ``folder``: hand it to the adapter. Never blocks."""
        self._queue.put_nowait(Path(folder))

    # --- threads --------------------------------------------------------------------------

    def _write(self, process: subprocess.Popen, folder: Path) -> bool:
        model, _ = self._served_model()
        try:
            process.stdin.write(json.dumps({"scan": str(folder), "model": model}) + "\n")
            process.stdin.flush()
            return True
        except (OSError, ValueError):  # the child has gone: the supervisor restarts it with every folder
            return False

    def _supervise(self) -> None:
        """Feed the child each saved folder; restart it when it dies (``MAX_RESTARTS``)."""
        while not self._stop.is_set():
            try:
                folder = self._queue.get(timeout=0.5)
            except queue.Empty:
                folder = None
            with self._lock:
                process = self._process
                if folder is not None:
                    self._folders.append(folder)
                    self._scans_received += 1
            if self._stop.is_set():
                return
            if process is not None and process.poll() is None:
                if folder is not None:
                    self._write(process, folder)
                continue
            if process is not None and self._process_ended(process):
                if self._stop.wait(RESTART_DELAY_S):
                    return
                self._spawn()

    def _process_ended(self, process: subprocess.Popen) -> bool:
        """Record how the child ended; whether to start it again."""
        with self._lock:
            if self._state == "dead":
                return False
            self._exit = f"the adapter process exited with status {process.returncode}" + (
                f" during a round on {self._training_on} scans" if self._training_on is not None else ""
            )
            self._training_on = None
            if self._restarts >= MAX_RESTARTS:
                self._state = "dead"
                self._process = None
                log.error("%s; not restarted after %d restarts: the bridge serves on without adapting", self._exit, self._restarts)
                return False
            self._restarts += 1
            self._state = "restarting"
        log.error("%s; restarting it in %g s (restart %d of %d)", self._exit, RESTART_DELAY_S, self._restarts, MAX_RESTARTS)
        return True

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("adapter: %s", line.rstrip()[:300])
                continue
            try:
                self._on_event(event)
            except Exception:  # a bug here must not leave the adapter unwatched
                log.exception("adapter: event %r not handled", event.get("event"))

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        with self._lock:
            if kind == "ready":
                self._state = "idle"
            elif kind == "scan":
                self._scans_usable = int(event.get("scans", 0))
                if not event.get("usable"):
                    log.info("adapter: scan %s not used: %s", Path(str(event.get("folder"))).name, event.get("why"))
            elif kind == "round":
                self._state = "training"
                self._training_on = int(event["training"])
                self._round_started = time.monotonic()
                self._rounds += 1
        if kind != "result":
            return
        result = {
            key: event.get(key) for key in ("accepted", "reasons", "figures", "model", "weights_sha256", "base", "base_sha256", "seconds")
        }
        result["finished"] = time.time()
        if event.get("test_hook"):
            result["test_hook"] = True
        if event.get("accepted"):
            result.update(self._load(event))
        with self._lock:
            if event.get("accepted"):
                self._accepted += 1
            else:
                self._refused += 1
            self._swaps += bool(result.get("loaded"))
            self._last = result
            self._state = "idle"
            self._training_on = None
            self._round_started = None
        if not event.get("accepted"):
            log.info("adapter: round refused, the model stays: %s", "; ".join(event.get("reasons") or []))

    def _load(self, event: dict) -> dict:
        """Ask the bridge to load accepted weights, if it still serves those the round started from."""
        _, served_sha = self._served_model()
        if event.get("base_sha256") and served_sha != event["base_sha256"]:
            reason = (
                f"not loaded: the bridge now serves weights {served_sha[:12]}, not {event['base_sha256'][:12]} "
                "the round adapted (a model set meanwhile is not overridden)"
            )
            log.warning("adapter: %s", reason)
            return {"loaded": False, "reasons": [reason]}
        with self._lock:
            self._state = "loading"
        try:
            reply = self._set_model(str(event["model"]))
        except ValueError as exc:
            reply = {"ok": False, "error": str(exc)}
        if reply.get("ok"):
            log.info("adapter: new weights %s loaded (%s)", str(event.get("weights_sha256"))[:12], event["model"])
            return {"loaded": True}
        log.error("adapter: accepted weights %s could not be loaded: %s", event["model"], reply.get("error"))
        return {"loaded": False, "reasons": [f"not loaded: {reply.get('error')}"]}

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict:
        with self._lock:
            process = self._process
            alive = process is not None and process.poll() is None
            state = self._state
            if state in ("idle", "training", "loading", "starting") and not alive and process is not None:
                state = "restarting"
            return {
                "state": state,
                "pid": process.pid if alive else None,
                "scans_received": self._scans_received,
                "scans_usable": self._scans_usable,
                "needs": MIN_SCANS,
                "training_on": self._training_on,
                "round_seconds": (round(time.monotonic() - self._round_started, 1) if self._round_started is not None else None),
                "rounds": self._rounds,
                "accepted": self._accepted,
                "refused": self._refused,
                "swaps": self._swaps,
                "restarts": self._restarts,
                "exit": self._exit,
                "last": dict(self._last) if self._last is not None else None,
                "models": str(self.config.models),
                "minutes": self.config.minutes,
                "steps": self.config.steps,
            }
