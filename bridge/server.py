"""The bridge: ZeroMQ sockets and the three threads that serve them.

- ingest thread: PULL socket, every message decoded, journaled and applied at once (``Ingest``),
  never waiting for the denoiser;
- journal thread: fsyncs the open scan's journal every ``SYNC_S`` and publishes the acknowledgements
  (``scan.journaled``) on the ack PUB socket;
- worker thread: updates, publishing on PUB, finishing and saving scans (``Worker``);
- control thread: control socket (ROUTER, answering REQ peers), ``status``, ``info``, ``set_model``,
  ``pause``, ``resume``; a model loads on a thread of its own (``ModelLoader``), so ``status`` is
  answered meanwhile and the ``set_model`` reply is sent when the load is over or its time is up.

Each thread runs its loop under a supervisor (``_supervised``): an error the loop lets out (a bug;
every expected error is handled inside) is logged, counted in ``status`` (``restarts``, with the last
reason) and the loop started again, so that no part of the bridge dies while the rest goes on.

Each socket is created and bound here, then used by one thread only (ZeroMQ sockets are not
thread-safe). Binding happens in ``start`` so that a port in use is a clear error at once; then the journals a
killed bridge left are replayed (``recover``) before the first line is taken.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import zmq

from maed import __version__
from maed.denoise import BOTH
from maed.engine import Backend, load_backend
from maed.zoo import PRODUCT

from .adapter import AdaptConfig, Adapter
from .alerts.drift import ALERT_SHARE
from .control import ControlError, Deferred, respond, settle, split_envelope, unanswered
from .control_client import request
from .counters import FaultCounter, Losses
from .folder_lock import FolderInUse, FolderLock
from .ingest import MAX_BACKLOG_BYTES, MAX_PIXELS, Ingest
from .journal import SYNC_S, Journal
from .keys import ClientKeys, ServerKeys, is_loopback
from .model_loader import MODEL_LOAD_TIMEOUT_S, ModelLoader
from .protocol import VERSION, ProtocolError, ScanJournaled, encode
from .recovery import recover
from .remote_model import regular_file_problem, remote_model
from .streaming import GUARD_INTERVAL_S, HALO, REFINE
from .worker import FRAME_INTERVAL_S, Worker, weights_sha256

log = logging.getLogger("maed.bridge")

PUB_HWM = 64
"""Messages queued per subscriber before PUB drops that subscriber's frames (PROTOCOL.md)."""
PUB_LINGER_MS = 1000
MAX_MESSAGE_BYTES = 1 << 20
"""Largest frame (part) of an ingest message; ZeroMQ refuses a larger one and drops its sender."""
MAX_CONTROL_BYTES = 64 << 10
"""Largest frame of a control request (a ``set_model`` path is the longest field): one of 1 GiB took 2 GB of the
bridge's memory before it was answered."""
MAX_MESSAGE_PARTS = 3
"""No ingest message has more parts: with ``MAX_MESSAGE_BYTES`` a message costs the bridge at most 3 MiB."""
POLL_MS = 100
LOAD_POLL_MS = 10
"""How often the control thread looks at a loading model (between requests) to send its reply."""
DRAIN_MAX = 1000
RESTART_PAUSE_S = 0.1
"""A loop restarted by the supervisor waits this long first, so that one that fails at once does not spin."""


@dataclass(frozen=True)
class BridgeConfig:
    """Where the bridge listens and how it denoises; a port of 0 picks any free port."""

    host: str = "127.0.0.1"
    pull_port: int = 5570
    pub_port: int = 5571
    control_port: int = 5572
    ack_port: int | None = None
    """PUB socket of the journal's acknowledgements (``scan.journaled``); None: none (``maed serve``: 5573)."""
    out: Path = Path("maed-scans")
    backend: str = "auto"
    share_cpu: bool = False
    """``maed serve --share-cpu``: ONNX Runtime's threads sleep between runs instead of spin-waiting for the next
    (``OnnxBackend``'s ``spin``), which leaves the CPU to the controller's own software on the same machine: at 20
    lines/s on 2 cores about half the bridge's CPU time, for a few ms more per band update (docs/nanonis.md)."""
    model: str = PRODUCT
    """The live bands' model (one pass); with ``pass_`` both, the two-pass model of the scans' final frames."""
    pass_: str = "trace"
    """``maed serve --pass``: ``trace``, or ``both``: each finished scan whose every row came in both passes is denoised
    by the two-pass ``model`` (both passes moved midway, as ``maed denoise --pass both``), its live bands by the
    one-pass product model."""
    halo: int = HALO
    refine: int = REFINE
    idle_timeout: float = 300.0
    guard_interval: float = GUARD_INTERVAL_S
    """Seconds between the trust guard's live evaluations of a scan (at least; 0: as often as its cost allows)."""
    frame_interval: float = FRAME_INTERVAL_S
    """Least seconds between a running scan's whole frames (``frame.raw``, ``frame.denoised``); 0: every update."""
    drift_alert: float = ALERT_SHARE
    """Share of the frame's side that features must move between two complete scans of one area for a ``drift``
    alert (``maed serve --drift-alert``, ``bridge/alerts/drift.py``)."""
    judge_every_line: bool = False
    """The scan-health detectors judge every line, whatever share of the worker's time that takes (``maed serve
    --on-alert`` sets it: with a rule, a tip change judged too late to pause the scan is an hour lost, a preview
    update that waits is not); else they take ``worker.HEALTH_SHARE`` at most."""
    trace_retrace: bool = False
    """Figure each finished scan's trace/retrace error (``maed serve --trace-retrace``): 1 to 2 seconds of the worker's
    time per 256 x 256 scan with retrace lines, which the next scan's updates wait for."""
    keys: ServerKeys | None = None
    """CURVE keys of every socket (docs/security.md); None: no authentication, loopback only unless ``insecure``."""
    insecure: bool = False
    """Allow binding beyond loopback without keys: anyone on the network may then push, read and control."""
    models: Path | None = None
    """The folder whose model files a remote ``set_model`` may load; None: shipped names only."""
    max_pixels: int = MAX_PIXELS
    """The largest scan (rows times cols) a ``scan.start`` may open; larger ones are refused and counted."""
    max_backlog_bytes: int = MAX_BACKLOG_BYTES
    """Line payloads finished scans waiting for the worker may hold in memory; beyond, they are read back
    from their journals (docs/reliability.md, "Budgets")."""
    model_timeout: float = MODEL_LOAD_TIMEOUT_S
    """Seconds a ``set_model`` may take to load its model; after that it is abandoned, with an error reply."""
    adapt: AdaptConfig | None = None
    """``maed serve --adapt``: adapt between scans in a process of its own (``bridge/adapter.py``); None: never."""

    def __post_init__(self) -> None:
        if self.keys is None and not self.insecure and not is_loopback(self.host):
            raise ValueError(
                f"binding {self.host} without keys would let anyone on the network push lines, read "
                "frames and control the bridge; give --secret-key and --client-keys (maed keys), or --insecure"
            )
        for name in ("pull_port", "pub_port", "control_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name.replace('_', ' ')} must be 0 to 65535, got {getattr(self, name)}")
        if self.ack_port is not None and not 0 <= self.ack_port <= 65535:
            raise ValueError(f"ack port must be 0 to 65535, got {self.ack_port}")
        ports = {"pull": self.pull_port, "pub": self.pub_port, "control": self.control_port, "ack": self.ack_port}
        given = [(name, port) for name, port in ports.items() if port]  # 0: any free port, None: no ack socket
        for i, (name, port) in enumerate(given):
            clash = next((other for other, taken in given[:i] if taken == port), None)
            if clash is not None:  # one bridge's two sockets: no "another bridge running?" when it binds the second
                raise ValueError(f"the {clash} and {name} sockets both asked for port {port}: give each its own (--{name}-port)")
        if self.halo < 0 or self.refine < 0:
            raise ValueError(f"halo and refine must be >= 0, got {self.halo} and {self.refine}")
        if self.idle_timeout < 0:
            raise ValueError(f"idle timeout must be >= 0 seconds, got {self.idle_timeout}")
        if self.guard_interval < 0:
            raise ValueError(f"guard interval must be >= 0 seconds, got {self.guard_interval}")
        if self.frame_interval < 0:
            raise ValueError(f"frame interval must be >= 0 seconds, got {self.frame_interval}")
        if not 0 < self.drift_alert <= 1:
            raise ValueError(f"the drift alert's share of the frame must be over 0 and at most 1, got {self.drift_alert}")
        if self.pass_ not in ("trace", BOTH):
            raise ValueError(f"the bridge denoises the trace, or both passes into one frame; got pass {self.pass_!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max pixels must be >= 1, got {self.max_pixels}")
        if self.max_backlog_bytes < 0:
            raise ValueError(f"max backlog bytes must be >= 0, got {self.max_backlog_bytes}")
        if not self.model_timeout > 0:
            raise ValueError(f"model timeout must be positive seconds, got {self.model_timeout}")
        if self.adapt is not None and (self.models is None or not self.adapt.models.resolve().is_relative_to(self.models.resolve())):
            raise ValueError(
                f"the adapted weights' folder {self.adapt.models} must lie in the models folder "
                f"{self.models}, from which set_model loads them"
            )


class Bridge:
    """A running bridge; use as a context manager or call ``start`` and ``stop``."""

    def __init__(
        self,
        config: BridgeConfig = BridgeConfig(),
        backend: Backend | None = None,
        loader: Callable[[str, str], Backend] | None = None,
    ) -> None:
        """``backend`` is loaded with ``loader`` (default ``load_backend``) from the config when not given."""
        self.config = config
        self._models = ModelLoader(
            loader or (partial(load_backend, spin=False) if config.share_cpu else load_backend), config.model_timeout
        )
        self._backend = backend
        self._both: Backend | None = None
        """``maed serve --pass both``: the two-pass model of the scans' final frames; None: one pass."""
        self.faults = FaultCounter()
        self.losses = Losses()
        self.journal = Journal(config.out)
        self.folder_lock = FolderLock(config.out)
        self.ingest = Ingest(self.faults, config.idle_timeout, self.journal, config.max_pixels, self.losses, config.max_backlog_bytes)
        self.endpoints: dict[str, str] = {}
        self._ctx: zmq.Context | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: list[zmq.Socket] = []
        self._stops = {name: threading.Event() for name in ("ingest", "journal", "worker", "control")}
        self.worker: Worker | None = None
        self.adapter: Adapter | None = None
        self.source_status: Callable[[], dict] | None = None
        """The source's own state for ``status`` (``maed serve --source nanonis``: the controller's); None: none."""
        self._served = PRODUCT if config.pass_ == BOTH else config.model
        """The live bands' model, as it was loaded (a shipped name or a path): what the adapter adapts from."""
        self._auth = None

    def follow_controller(self, status: Callable[[], dict], commands_for: Callable[[str], list[str]]) -> None:
        """A source that follows a controller (``maed serve --source nanonis``): ``status`` shows its ``status()``,
        and each scan's ``meta.json`` names the action commands it sent on that scan's alerts (``commands_for``)."""
        self.source_status = status
        self.worker.controller_commands = commands_for

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> "Bridge":
        ctx = self._ctx = zmq.Context()
        made = not Path(self.config.out).exists()
        try:
            self.journal.check_writable()
            self.folder_lock.acquire()  # before the journals are read: another bridge's are not ours to recover
            if self.config.keys is not None:  # the authenticator must run before the first CURVE socket binds
                self._auth = self.config.keys.authenticator(ctx)
            # Options are set before bind: connections inherit the options the socket had at bind time.
            pull = ctx.socket(zmq.PULL)
            pull.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            self._bind(pull, "pull", self.config.pull_port)
            pub = ctx.socket(zmq.PUB)
            pub.setsockopt(zmq.SNDHWM, PUB_HWM)
            self._bind(pub, "pub", self.config.pub_port)
            # A short linger lets the last frames and scan.end reach subscribers when the bridge stops.
            pub.setsockopt(zmq.LINGER, PUB_LINGER_MS)
            control = ctx.socket(zmq.ROUTER)
            control.setsockopt(zmq.MAXMSGSIZE, MAX_CONTROL_BYTES)
            self._bind(control, "control", self.config.control_port)
            ack = None if self.config.ack_port is None else self._bind(ctx.socket(zmq.PUB), "ack", self.config.ack_port)
            if self._backend is None:  # after binding: a port in use is reported before a slow model load
                problem = regular_file_problem(self.config.model)
                if problem is not None:  # a FIFO would block the start for ever
                    raise ValueError(problem)
                if self.config.pass_ == BOTH:  # the scans' final frames: the two-pass model, checked first
                    self._both = self._models.start(self.config.backend, self.config.model, passes=2).result()
                self._backend = self._models.start(self.config.backend, self._served).result()
            try:  # before any thread runs: lines for a recovered scan must find it open
                self.recovered = recover(self.config.out, self.journal, self.ingest)
            except OSError as exc:
                raise ValueError(f"cannot recover the journals in {self.config.out}: {exc}") from None
        except BaseException as exc:
            if self._auth is not None:
                self._auth.stop()
            ctx.destroy(linger=0)
            self._ctx = None
            if not isinstance(exc, FolderInUse):  # the folder is ours: leave it as it was found
                self.folder_lock.release()
                self.journal.tidy()
                if made:  # made for this start, which failed: no empty --out folder left behind
                    try:
                        Path(self.config.out).rmdir()
                    except OSError:
                        pass  # not empty: something was written there after all
            raise
        self._sockets = [pull, pub, control] + ([ack] if ack is not None else [])
        self.worker = Worker(
            self.ingest,
            pub,
            self._backend,
            self.config.out,
            self.config.halo,
            self.config.refine,
            self.config.guard_interval,
            self.config.frame_interval,
            self.config.trace_retrace,
            both=self._both,
            drift_alert=self.config.drift_alert,
            judge_every_line=self.config.judge_every_line,
        )
        targets = {
            "ingest": lambda: self._ingest_loop(pull),
            "journal": lambda: self._journal_loop(ack),
            "worker": lambda: self.worker.run(self._stops["worker"]),
            "control": lambda: self._control_loop(control),
        }
        self._threads = [threading.Thread(target=self._supervised, args=(n, t), name=f"maed-{n}", daemon=True) for n, t in targets.items()]
        if self.config.adapt is not None:  # before the threads: status names it from the first request
            self.adapter = Adapter(self.config.adapt, self._served_model, self._adapted_model).start()
            self.worker.on_saved = self.adapter.scan_saved
        for thread in self._threads:
            thread.start()
        log.debug("bridge: lines in %s, frames out %s, control %s", *self.endpoints.values())
        return self

    def _bind(self, socket: zmq.Socket, name: str, port: int) -> zmq.Socket:
        address = f"tcp://{self.config.host}:{port or '*'}"
        socket.setsockopt(zmq.LINGER, 0)
        if self.config.keys is not None:
            self.config.keys.apply(socket)
        try:
            socket.bind(address)
        except zmq.ZMQError as exc:
            socket.close()
            raise ValueError(
                f"cannot bind the {name} socket to {address}: {exc} (another bridge running? --{name}-port N chooses another port)"
            ) from None
        self.endpoints[name] = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        return socket

    def stop(self) -> None:
        """Stop taking lines, finish and save the open scan, publish what is left, close."""
        if self._ctx is None:
            return
        if self.adapter is not None:  # first: no set_model of adapted weights while the bridge stops
            self.adapter.stop()
        ingest, journal, worker, control = self._threads
        self._stops["ingest"].set()
        ingest.join()
        self._stops["journal"].set()
        journal.join()
        self.ingest.close()
        self._stops["worker"].set()
        worker.join()
        self.journal.tidy()
        self.folder_lock.release()
        self._stops["control"].set()
        control.join()
        for socket in self._sockets:
            socket.close()
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()
        self._ctx = None

    def __enter__(self) -> "Bridge":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client_keys(self) -> ClientKeys | None:
        """Keys for in-process clients of this bridge (preview, sources); None when it has no keys."""
        return self.config.keys.as_client() if self.config.keys is not None else None

    def _served_model(self) -> tuple[str, str]:
        """The model served as it was loaded, and its weights' hash (for the adapter)."""
        return self._served, weights_sha256(self.worker.backend)

    def _adapted_model(self, path: str) -> dict:
        """Load accepted weights the way a person would: ``set_model`` on this bridge's own control socket."""
        return request(self.endpoints["control"], {"cmd": "set_model", "model": path}, self.client_keys, self.config.model_timeout + 10.0)

    def wait_finished(self, count: int, timeout: float | None) -> bool:
        """Wait until ``count`` scans have been finished (published and saved); None waits for ever."""
        return self.worker.wait_finished(count, timeout)

    # --- threads --------------------------------------------------------------------------

    def _supervised(self, name: str, loop: Callable[[], None]) -> None:
        """Run ``loop`` until it returns (its stop is set); restart it, counted, whenever it raises."""
        stop = self._stops[name]
        while True:
            try:
                loop()
                return
            except Exception as exc:
                reason = f"{name} thread: {type(exc).__name__}: {exc}"
                self.losses.restarts.add(reason)
                log.exception("%s; the thread's loop is restarted", reason)
            if stop.wait(RESTART_PAUSE_S):
                # Stopping: what the worker had left is in the journals, saved by the next start.
                return

    def _receive(self, pull: zmq.Socket) -> list[bytes] | None:
        """The next ingest message, part by part; None when there is none, or (counted) when it has more parts
        than any message of the protocol: those are read and let go one by one, never held together."""
        frames = [pull.recv(zmq.NOBLOCK)]
        parts = 1
        while pull.getsockopt(zmq.RCVMORE):
            part = pull.recv()
            parts += 1
            if parts <= MAX_MESSAGE_PARTS:
                frames.append(part)
        if parts > MAX_MESSAGE_PARTS:
            self.ingest.refuse(frames[:1], ProtocolError("budget", f"a message of {parts} parts; none has more than {MAX_MESSAGE_PARTS}"))
            return None
        return frames

    def _ingest_loop(self, pull: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        stop = self._stops["ingest"]
        while not stop.is_set():
            if poller.poll(POLL_MS):
                # Take what is queued without a poll per message, but come back to the stop flag
                # and the idle check even under a flood.
                for _ in range(DRAIN_MAX):
                    try:
                        frames = self._receive(pull)
                    except zmq.Again:
                        break
                    if frames is None:
                        continue
                    try:
                        self.ingest.handle(frames, time.perf_counter())
                    except Exception:  # a bug must cost one message, never the bridge
                        log.exception("ingest failed on a message")
            self.ingest.expire(time.perf_counter())

    def _journal_loop(self, ack: zmq.Socket | None) -> None:
        stop = self._stops["journal"]
        seq = 0
        while True:
            stopping = stop.wait(SYNC_S)
            # Synced without an ack socket too: the fsync policy is the journal's, acks only report it.
            for scan, journaled in self.ingest.flush(time.perf_counter()):
                if ack is not None:
                    ack.send_multipart(encode(ScanJournaled(scan=scan, seq=seq, journaled_seq=journaled)))
                    seq += 1
            if stopping:
                return

    def _control_loop(self, router: zmq.Socket) -> None:
        handlers = {"status": self.status, "info": self.info, "set_model": self.set_model, "pause": self.pause, "resume": self.resume}
        stop = self._stops["control"]
        waiting: list[tuple[list[bytes], Deferred]] = []
        while not stop.is_set():
            if router.poll(LOAD_POLL_MS if waiting else POLL_MS):
                envelope, frames = split_envelope(router.recv_multipart())
                reply = None
                try:
                    reply = respond(frames, handlers)
                finally:  # every request is answered, whatever went wrong, or its REQ peer hangs
                    if isinstance(reply, Deferred):
                        waiting.append((envelope, reply))
                    else:
                        router.send_multipart(envelope + [reply if reply is not None else unanswered(frames)])
            still = []
            for envelope, deferred in waiting:
                reply = settle(deferred)  # never raises: a failure is its reply
                if reply is None:
                    still.append((envelope, deferred))
                else:
                    router.send_multipart(envelope + [reply])
            waiting = still

    # --- control commands -----------------------------------------------------------------

    def status(self, request: dict | None = None) -> dict:
        ingest, worker = self.ingest, self.worker
        # Read without ingest's lock: ingest holds it across the journal's writes (a scan's last fdatasync
        # took 78 ms under load), and status must answer at once. Each figure is read whole (the GIL);
        # together they may be a message or two apart.
        current = ingest.current
        scan = {}
        if current is not None:
            start = current.start
            scan = {
                "scan": start.scan,
                "rows": start.rows,
                "cols": start.cols,
                "slow_axis": start.slow_axis,
                "rows_done": current.progress["trace"],
            }
        counts = {
            "lines_received": ingest.lines_received,
            "lines_dropped": ingest.lines_dropped,
            "messages_malformed": ingest.malformed,
            "messages_duplicate": ingest.duplicates,
            "recoveries": ingest.recoveries,
            "lines_recovered": ingest.lines_recovered,
            "backlog_scans": ingest.backlog_scans(),
            "backlog_bytes": ingest.backlog_bytes,
            "scans_spilled": ingest.spilled,
        }
        backend = worker.backend
        return {
            "state": "scanning" if current is not None else "idle",
            "scan": None,
            "rows": None,
            "cols": None,
            "slow_axis": None,
            "rows_done": None,
            **scan,
            **counts,
            **self.losses.status(),
            "faults": self.faults.counts(),
            "latency_ms": worker.latency.summary(),
            "guard_ms": worker.guard_ms.summary(),
            "rows_denoised": worker.rows_denoised,
            "denoise_failures": worker.failures,
            "updates": worker.updates,
            "scans_finished": worker.scans_finished,
            "last_saved": worker.last_saved,
            "paused": worker.paused,
            "model": backend.model,
            "weights_sha256": weights_sha256(backend),
            "backend": backend.name,
            "model_loading": self._models.loading,
            "adapter": self.adapter.status() if self.adapter is not None else None,
            "source": self.source_status() if self.source_status is not None else None,
        }

    def info(self, request: dict | None = None) -> dict:
        backend = self.worker.backend
        return {
            "protocol": VERSION,
            "version": __version__,
            "model": backend.model,
            "weights_sha256": weights_sha256(backend),
            "backend": backend.name,
            "halo": self.config.halo,
            "refine": self.config.refine,
            "guard_interval": self.config.guard_interval,
            "frame_interval": self.config.frame_interval,
            "pass": self.config.pass_,
            "model_both": None if self._both is None else self._both.model,
            "weights_sha256_both": None if self._both is None else weights_sha256(self._both),
            "endpoints": dict(self.endpoints),
            "out": str(self.config.out),
        }

    def set_model(self, request: dict) -> Deferred:
        """Start loading the model; the reply waits for the load (``Deferred``), other requests do not."""
        model = request.get("model")
        choice = request.get("backend", self.config.backend)
        try:
            if not isinstance(model, str) or not isinstance(choice, str):
                raise ControlError("set_model needs a string 'model' (and optionally a string 'backend')")
            load = self._models.start(choice, remote_model(model, self.config.models))
        except ValueError as exc:  # refused before loading: counted as a failed set_model too
            self.losses.model_failures.add(str(exc))
            raise

        def result() -> dict | None:
            try:
                backend = load.outcome()
            except ValueError as exc:
                self.losses.model_failures.add(str(exc))
                log.error("set_model: %s", exc)
                raise
            if backend is None:
                return None
            self.worker.backend = backend
            self._served = load.model
            log.info("model switched to %s on %s", backend.model, backend.name)
            return {"model": backend.model, "backend": backend.name}

        return Deferred(result)

    def pause(self, request: dict | None = None) -> dict:
        self.worker.paused = True
        return {"paused": True}

    def resume(self, request: dict | None = None) -> dict:
        self.worker.paused = False
        return {"paused": False}
