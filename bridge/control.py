"""Control requests on the control socket: one frame in, one frame out, msgpack or JSON.

A request is a map with ``cmd``; JSON is accepted (a frame starting with ``{``) so that a person
can talk to the bridge with any ZeroMQ tool, and the reply comes back in the request's encoding.
A request may carry ``v``; when it does, it must be the integer ``VERSION``. Every request gets a
reply, errors included, or the REQ peer would hang.

The socket is a ROUTER, which answers REQ peers as REP would but lets a reply wait: a handler may
return a ``Deferred`` (``set_model`` while its model loads), and the control thread serves other
requests (``status``) until the deferred reply is ready (``settle``).
"""

from __future__ import annotations

import json
import logging
from typing import Callable

import msgpack

from .protocol import VERSION, version_problem

log = logging.getLogger("maed.bridge")


class ControlError(ValueError):
    """A request the bridge cannot honour; its message goes back as ``error``."""


class Deferred:
    """A reply that is not ready yet: ``result`` gives the reply's fields once it is, None until then,
    and raises ``ValueError`` (a one-line error) for a failure."""

    def __init__(self, result: Callable[[], dict | None]) -> None:
        self.result = result
        self.fmt = "msgpack"
        """The request's encoding, which the reply takes; set by ``respond``."""


Handler = Callable[[dict], "dict | Deferred"]


def decode_request(frame: bytes) -> tuple[dict, str]:
    """The request map and its encoding (``"json"`` or ``"msgpack"``)."""
    fmt = "json" if frame[:1] == b"{" else "msgpack"
    try:
        request = json.loads(frame) if fmt == "json" else msgpack.unpackb(frame, raw=False)
    except Exception as exc:  # both decoders raise several unrelated types on corrupt input
        raise ControlError(f"request is not {fmt}: {type(exc).__name__}") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ControlError("request must be a map with a string 'cmd'")
    if "v" in request and version_problem(request["v"]) is not None:
        raise ControlError(f"request {request['cmd'][:40]!r}: {version_problem(request['v'])}")
    return request, fmt


def encode_reply(reply: dict, fmt: str) -> bytes:
    return json.dumps(reply).encode() if fmt == "json" else msgpack.packb(reply, use_bin_type=True)


def unanswered(frames: list[bytes]) -> bytes:
    """The reply to a request the bridge failed on unexpectedly (REQ waits for one), in its encoding."""
    fmt = "json" if frames and frames[0][:1] == b"{" else "msgpack"
    return encode_reply({"ok": False, "v": VERSION, "error": "the bridge failed on this request (see its log)"}, fmt)


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """A ROUTER message as (envelope, request frames): the envelope is the peer's identity up to and
    including the empty delimiter a REQ peer puts first (a DEALER may send none)."""
    try:
        cut = frames.index(b"", 1) + 1
    except ValueError:
        cut = 1
    return frames[:cut], frames[cut:] or [b""]


def _error(exc: Exception) -> dict:
    if isinstance(exc, ValueError):  # ControlError, and ValueErrors of load_backend (unknown model or back end)
        return {"ok": False, "v": VERSION, "error": str(exc)}
    log.exception("control request failed")  # a bug in a handler: still a reply, or REQ hangs
    return {"ok": False, "v": VERSION, "error": f"{type(exc).__name__}: {exc}"}


def _encode(reply: dict, fmt: str) -> bytes:
    try:
        return encode_reply(reply, fmt)
    except Exception as exc:  # a reply that cannot be encoded must not end the control loop: REQ would hang
        log.exception("control reply could not be encoded")
        return encode_reply({"ok": False, "v": VERSION, "error": f"the reply could not be encoded ({type(exc).__name__})"}, fmt)


def respond(frames: list[bytes], handlers: dict[str, Handler]) -> bytes | Deferred:
    """The reply frame to one request (a multipart message, which must have one frame), or the handler's
    ``Deferred``."""
    fmt = "json" if frames[0][:1] == b"{" else "msgpack"
    try:
        if len(frames) != 1:
            raise ControlError(f"a request is one frame, got {len(frames)}")
        request, fmt = decode_request(frames[0])
        handler = handlers.get(request["cmd"])
        if handler is None:
            raise ControlError(f"unknown cmd {request['cmd']!r}; known: {', '.join(sorted(handlers))}")
        answer = handler(request)
    except Exception as exc:
        return _encode(_error(exc), fmt)
    if isinstance(answer, Deferred):
        answer.fmt = fmt
        return answer
    return _encode({"ok": True, "v": VERSION, **answer}, fmt)


def settle(deferred: Deferred) -> bytes | None:
    """The reply to a deferred request once its result is in (a failure as a one-line error), else None."""
    try:
        result = deferred.result()
    except Exception as exc:
        return _encode(_error(exc), deferred.fmt)
    return None if result is None else _encode({"ok": True, "v": VERSION, **result}, deferred.fmt)
