"""The simulated Nanonis controller: a TCP server speaking the Nanonis protocol about a ``Scanner``.

It answers the commands the bridge follows a scan with (``Scan.StatusGet``, ``Scan.BufferGet``,
``Scan.FrameGet``, ``Scan.SpeedGet``, ``Scan.FrameDataGrab``) and ``Scan.Action`` start and stop;
any other command gets an error response (the error section, no fields), as the controller
answers a failed command. Each connection is served on a thread of its own, so the vendor's
client and the bridge can read the same scan at once.

Faults, for tests: ``freeze`` stops answering for a while (requests wait, the scan goes on);
``disconnect`` drops every connection and refuses new ones for a while (the TCP interface
switched off, the controller program restarting).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time

from ..nanonis.client import DEFAULT_PORT, SCAN_ACTIONS, receive_message, scan_layout
from ..nanonis.protocol import BodyReader, BodyWriter, NanonisProtocolError, encode_message
from .scanner import Scanner

log = logging.getLogger("maed.bridge.nanonis")

ERROR_STATUS = 1
ACCEPT_POLL_S = 0.05


class CommandFailed(Exception):
    """A command the controller cannot carry out; ``fields`` are the response's fields before the error."""

    def __init__(self, message: str, fields: bytes = b"") -> None:
        super().__init__(message)
        self.fields = fields


class SimulatedNanonis:
    """Serves ``scanner`` on ``host:port`` (0: any free port); a context manager."""

    def __init__(self, scanner: Scanner, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 to 65535, got {port}")
        self.scanner = scanner
        self.host, self.port = host, port
        self._listener: socket.socket | None = None
        """Opened by ``start``; then the accept thread's own."""
        self._closed = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._frozen_until = 0.0
        self._refused_until = 0.0
        self._thread: threading.Thread | None = None
        self._handlers = {
            "Scan.StatusGet": self._status,
            "Scan.BufferGet": self._buffer,
            "Scan.FrameGet": self._frame,
            "Scan.SpeedGet": self._speed,
            "Scan.FrameDataGrab": self._grab,
            "Scan.Action": self._action,
            "ZCtrl.Withdraw": self._withdraw,
        }
        self.calls: list[str] = []
        """Every command received, in order, from every client (tests check what the bridge sent)."""

    # --- life cycle -----------------------------------------------------------------------------

    def start(self) -> "SimulatedNanonis":
        self._listener = self._listen()
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="maed-sim-nanonis", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._drop_connections()

    def __enter__(self) -> "SimulatedNanonis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Reopening the port after ``disconnect`` must not wait for the old connections' TIME_WAIT. On Windows
        # SO_REUSEADDR would let it share a port another server holds; the exclusive option there refuses that.
        if sys.platform == "win32":
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as exc:
            listener.close()
            reason = (exc.strerror or str(exc)).lower()
            raise ValueError(f"cannot listen on {self.host}:{self.port}: {reason}") from None
        listener.listen()
        listener.settimeout(ACCEPT_POLL_S)
        return listener

    # --- faults ---------------------------------------------------------------------------------

    def freeze(self, seconds: float) -> None:
        """Answer nothing for ``seconds``: requests wait unanswered; the scan goes on."""
        self._frozen_until = time.monotonic() + seconds

    def disconnect(self, seconds: float = 0.0) -> None:
        """Drop every connection now and refuse new ones for ``seconds``."""
        if seconds > 0:
            # The accept thread closes the port itself (closing a socket another thread waits on is
            # unsafe); connections it accepted meanwhile are dropped below with the others.
            self._closed.clear()
            self._refused_until = time.monotonic() + seconds
            self._closed.wait(1.0)
        self._drop_connections()

    def _drop_connections(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            # shutdown wakes the connection's thread from recv; close alone would not.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    # --- serving --------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stop.is_set():
            if time.monotonic() < self._refused_until:
                if listener is not None:
                    listener.close()
                    listener = None
                self._closed.set()
                self._stop.wait(ACCEPT_POLL_S)
                continue
            if listener is None:
                try:
                    listener = self._listen()
                except ValueError as exc:  # the port was taken meanwhile: keep trying
                    log.warning("simulated Nanonis: %s", exc)
                    self._stop.wait(0.5)
                    continue
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="maed-sim-nanonis-conn", daemon=True).start()
        if listener is not None:
            listener.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                header, body = receive_message(conn)
                with self._lock:
                    self.calls.append(header.command)
                while time.monotonic() < self._frozen_until and not self._stop.is_set():
                    time.sleep(0.01)
                response = self.respond(header.command, body)
                if header.send_response:
                    conn.sendall(encode_message(header.command, response, send_response=False))
        except (OSError, NanonisProtocolError):
            pass  # the client left, or sent bytes that are no message: drop the connection
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def respond(self, command: str, body: bytes) -> bytes:
        """The response body to ``command``: its fields and the error section."""
        handler = self._handlers.get(command)
        if handler is None:
            return BodyWriter().error(ERROR_STATUS, f"unknown command {command!r}").bytes()
        try:
            reader = BodyReader(body, command)
            fields = handler(reader)
            reader.end()
        except CommandFailed as exc:
            return exc.fields + BodyWriter().error(ERROR_STATUS, str(exc)).bytes()
        except NanonisProtocolError as exc:
            return BodyWriter().error(ERROR_STATUS, f"malformed arguments: {exc}").bytes()
        return fields + BodyWriter().error().bytes()

    # --- commands -------------------------------------------------------------------------------

    def _status(self, args: BodyReader) -> bytes:
        return BodyWriter().u32(1 if self.scanner.status() else 0).bytes()

    def _buffer(self, args: BodyReader) -> bytes:
        channels, pixels, lines = self.scanner.buffer()
        return BodyWriter().i32(len(channels)).i32_array(channels).i32(pixels).i32(lines).bytes()

    def _frame(self, args: BodyReader) -> bytes:
        w = BodyWriter()
        for value in self.scanner.frame():
            w.f32(value)
        return w.bytes()

    def _speed(self, args: BodyReader) -> bytes:
        forward, backward, forward_time, backward_time = self.scanner.speed()
        # Keep-constant 1: the time per line is kept; speed ratio 1: the retrace as fast as the trace.
        return BodyWriter().f32(forward).f32(backward).f32(forward_time).f32(backward_time).u16(1).f32(1.0).bytes()

    def _grab(self, args: BodyReader) -> bytes:
        index, forward = args.u32(), args.u32() == 1
        try:
            name, data, up = self.scanner.grab(index, forward)
        except KeyError:
            acquired = ", ".join(str(i) for i in self.scanner.buffer()[0])
            empty = BodyWriter().string("").i32(0).i32(0).u32(0).bytes()
            raise CommandFailed(f"channel index {index} is not acquired (acquired: {acquired})", empty) from None
        return BodyWriter().string(name).f32_2d(scan_layout(data, up, forward)).u32(1 if up else 0).bytes()

    def _action(self, args: BodyReader) -> bytes:
        action, up = args.u16(), args.u32() == 1
        if action == SCAN_ACTIONS["start"]:
            self.scanner.start(up)
        elif action == SCAN_ACTIONS["stop"]:
            self.scanner.stop()
        elif action == SCAN_ACTIONS["pause"]:
            self.scanner.pause()
        elif action == SCAN_ACTIONS["resume"]:
            self.scanner.resume()
        else:
            raise CommandFailed(f"scan action {action} is not simulated (start 0, stop 1, pause 2 and resume 3 are)")
        return b""

    def _withdraw(self, args: BodyReader) -> bytes:
        args.u32(), args.i32()  # wait until finished, timeout: the simulated tip is up at once
        self.scanner.withdraw()
        log.warning("simulated Nanonis: ZCtrl.Withdraw: the tip is withdrawn and the scan stopped (Scan.Action start scans again)")
        return b""
