"""The preview's HTTP server, hardened: a token, Host and Origin checks, timeouts and limits.

Built on the standard library's ``ThreadingHTTPServer``, hardened here rather than replaced by a
server library: the preview starts and stops inside the bridge's process (``maed serve``, the demo,
the tests), and waitress, the well-kept pure-Python choice, has no supported way to stop it from
another thread (its maintainers say so); the limits below are few and each has a test
(docs/security.md).

- ``Gate``: every request needs the token (``?token=`` or ``Authorization: Bearer``, compared in
  constant time) and a Host header naming this server (``localhost``, a loopback address, the bound
  host; bound to a wildcard, also this machine's name and any IP address), and an Origin header,
  when sent, naming the same: a page of another site that a rebound DNS name points at us is refused.
- ``GuardedHTTPServer``: at most ``max_connections`` connections at once, and ``max_per_address`` from one client
  address (more get 503 from the accepting thread, costing no thread), and every connection times out after
  ``idle_timeout`` seconds without a byte.
- ``read_body``: a body only with a valid ``Content-Length`` up to a limit; anything else is
  refused before a byte is read.
- ``DeadlineHandler``: a request's line, headers and body must all have come within ``REQUEST_DEADLINE_S``: a
  client that sends a byte now and then never trips the idle timeout, and 32 such held every slot (all others got
  503). One that sends a request every 10 s can still hold its connection; from one address it holds no more than
  ``MAX_PER_ADDRESS`` of the slots.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("maed.bridge")

IDLE_TIMEOUT_S = 10.0
REQUEST_DEADLINE_S = 10.0
MAX_CONNECTIONS = 32
MAX_PER_ADDRESS = 8
"""Connections one client address may hold at once: a browser opens at most 6 to one server, so one viewer never
meets it, and one machine on the lab's network can hold no more than a quarter of ``MAX_CONNECTIONS``."""
WILDCARDS = ("", "0.0.0.0", "::")
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class Refused(Exception):
    """A request the preview will not serve: the HTTP status and a one-line reason."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Gate:
    """Decides whether a request may be served: its Host, Origin and token."""

    def __init__(self, token: str, bound_host: str) -> None:
        self._token = token.encode()
        bound = bound_host.strip("[]").lower()
        self._wildcard = bound in WILDCARDS
        self._names = {"localhost", "127.0.0.1", "::1"}
        if self._wildcard:
            self._names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        else:
            self._names.add(bound)

    def _ours(self, name: str | None) -> bool:
        # An IP address cannot be the name of a rebinding attacker's site: its page would be
        # another origin than ours. Bound to a wildcard, any address of this machine may be used.
        return name is not None and (name in self._names or (self._wildcard and _is_ip(name)))

    def check(self, headers, query: str) -> None:
        """Raise ``Refused`` unless the request names this server and carries the token."""
        try:
            host = urlsplit("//" + headers.get("Host", "")).hostname
        except ValueError:
            host = None
        if not self._ours(host):
            raise Refused(HTTPStatus.FORBIDDEN, "Host header does not name this server")
        origin = headers.get("Origin")
        if origin is not None:
            try:
                parts = urlsplit(origin)
                ours = parts.scheme == "http" and self._ours(parts.hostname)
            except ValueError:
                ours = False
            if not ours:
                raise Refused(HTTPStatus.FORBIDDEN, "Origin header is not this server")
        given = parse_qs(query).get("token", [None])[0]
        auth = headers.get("Authorization", "")
        if given is None and auth.startswith("Bearer "):
            given = auth[len("Bearer ") :].strip()
        if not given:
            raise Refused(HTTPStatus.UNAUTHORIZED, "the preview needs its token: open the URL maed printed")
        if not hmac.compare_digest(given.encode(), self._token):
            raise Refused(HTTPStatus.FORBIDDEN, "wrong token")


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    """The request body, or ``Refused`` for a missing, malformed or too large ``Content-Length``.

    Chunked bodies are refused too: with no length, a client could stream without end.
    """
    if handler.headers.get("Transfer-Encoding") is not None:
        raise Refused(HTTPStatus.BAD_REQUEST, "Transfer-Encoding is not supported; send Content-Length")
    lengths = handler.headers.get_all("Content-Length") or []
    if len(lengths) != 1 or not _DIGITS.match(lengths[0].strip()):
        raise Refused(HTTPStatus.BAD_REQUEST, "a body needs one Content-Length, a non-negative integer")
    length = int(lengths[0])
    if length > limit:
        raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes")
    return handler.rfile.read(length)


class DeadlineHandler(BaseHTTPRequestHandler):
    """A handler whose every request must be read whole within ``REQUEST_DEADLINE_S`` of its start: past it the
    connection is cut. A subclass calls ``request_read`` once it has read what it needs (a long poll then waits on)."""

    def handle_one_request(self) -> None:
        self._deadline = threading.Timer(REQUEST_DEADLINE_S, self._cut)
        self._deadline.daemon = True
        self._deadline.start()
        try:
            super().handle_one_request()
        finally:
            self._deadline.cancel()

    def request_read(self) -> None:
        """The request is read: its deadline no longer runs."""
        self._deadline.cancel()

    def _cut(self) -> None:
        log.debug("preview: a request from %s took longer than %g s to arrive; cut", self.client_address, REQUEST_DEADLINE_S)
        try:
            self.connection.shutdown(socket.SHUT_RDWR)  # the blocked read returns: the request ends there
        except OSError:
            pass


class GuardedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a connection limit, in all and per client address; handlers set ``timeout`` for
    idle connections."""

    daemon_threads = True
    allow_reuse_address = sys.platform != "win32"
    """On Windows SO_REUSEADDR would let the preview share a port another server holds."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_connections: int,
        max_per_address: int = MAX_PER_ADDRESS,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._per_address = max_per_address
        self._held: dict[str, int] = {}
        self._held_lock = threading.Lock()
        super().__init__(address, handler)

    @staticmethod
    def _host(client_address: object) -> str:
        """The address a connection came from, without its port: what ``max_per_address`` counts by."""
        return client_address[0] if isinstance(client_address, tuple) else str(client_address)

    def _take(self, client_address: object) -> bool:
        """Take a slot for a connection from ``client_address``: False where every slot, or its address's share, is
        held."""
        host = self._host(client_address)
        with self._held_lock:
            if self._held.get(host, 0) >= self._per_address:
                return False
            if not self._slots.acquire(blocking=False):
                return False
            self._held[host] = self._held.get(host, 0) + 1
        return True

    def _give(self, client_address: object) -> None:
        host = self._host(client_address)
        with self._held_lock:
            left = self._held.get(host, 0) - 1
            if left > 0:
                self._held[host] = left
            else:
                self._held.pop(host, None)
            self._slots.release()

    def process_request(self, request: socket.socket, client_address: object) -> None:
        if not self._take(client_address):
            # Answered on the accepting thread without blocking: a flood of connections costs no thread.
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give(client_address)
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give(client_address)

    def handle_error(self, request: socket.socket, client_address: object) -> None:
        # A client that vanished mid-request is not worth a traceback on the bridge's console.
        log.debug("preview: request from %s failed", client_address, exc_info=True)
