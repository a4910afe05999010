"""Control requests on the REP socket: one frame in, one frame out, msgpack or JSON.

A request is a map with ``cmd``; JSON is accepted (a frame starting with ``{``) so that a person
can talk to the bridge with any ZeroMQ tool, and the reply comes back in the request's encoding.
A request may carry ``v``; when it does, it must be the integer ``VERSION``. Every request gets a
reply, errors included, or the REQ peer would hang.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import msgpack

from .protocol import VERSION, version_problem

Handler = Callable[[dict], dict]

log = logging.getLogger("maed.bridge")


class ControlError(ValueError):
    """A request the bridge cannot honour; its message goes back as ``error``."""


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
    """The reply to a request the bridge failed on unexpectedly (REP must still answer), in its encoding."""
    fmt = "json" if frames and frames[0][:1] == b"{" else "msgpack"
    return encode_reply({"ok": False, "v": VERSION, "error": "the bridge failed on this request (see its log)"}, fmt)


def respond(frames: list[bytes], handlers: dict[str, Handler]) -> bytes:
    """The reply frame to one request (a multipart message, which must have one frame)."""
    fmt = "json" if frames[0][:1] == b"{" else "msgpack"
    reply: dict[str, Any]
    try:
        if len(frames) != 1:
            raise ControlError(f"a request is one frame, got {len(frames)}")
        request, fmt = decode_request(frames[0])
        handler = handlers.get(request["cmd"])
        if handler is None:
            raise ControlError(f"unknown cmd {request['cmd']!r}; known: {', '.join(sorted(handlers))}")
        reply = {"ok": True, "v": VERSION, **handler(request)}
    except ValueError as exc:  # ControlError, and ValueErrors of load_backend (unknown model or back end)
        reply = {"ok": False, "v": VERSION, "error": str(exc)}
    except Exception as exc:  # e.g. a checkpoint that fails to load: still a reply, or REQ hangs
        log.exception("control request failed")
        reply = {"ok": False, "v": VERSION, "error": f"{type(exc).__name__}: {exc}"}
    try:
        return encode_reply(reply, fmt)
    except Exception as exc:  # a reply that cannot be encoded must not end the control loop: REQ would hang
        log.exception("control reply could not be encoded")
        return encode_reply({"ok": False, "v": VERSION, "error": f"the reply could not be encoded ({type(exc).__name__})"}, fmt)
