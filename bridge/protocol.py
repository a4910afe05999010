"""Wire protocol v1 of the bridge (``bridge/PROTOCOL.md``): encode and decode every message.

A message is a ZeroMQ multipart message ``[topic, msgpack header]`` or ``[topic, header,
payload]``. Decoding validates everything a message can get wrong on its own (frame count,
msgpack, fields, dtype, shape, finite values) and raises ``ProtocolError`` with a ``kind``
from ``FAULT_KINDS``; what depends on the scan in progress (row range and order, unknown scan)
is checked by ``maed.bridge.scan``. Unknown header keys are ignored, as version 1 allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

import msgpack
import numpy as np

VERSION = 1
DTYPE = "<f4"
MAX_SIDE = 4096
MAX_ID_LENGTH = 256
DIRS = ("fwd", "bwd")
DIRECTIONS = ("down", "up")
END_REASONS = ("end", "superseded", "timeout", "shutdown")

FAULT_KINDS: dict[str, str] = {
    "frames": "wrong number of frames for the topic",
    "topic": "unknown topic",
    "header": "header is not a msgpack map with string keys",
    "version": f"protocol version is not {VERSION}",
    "field": "a required header field is missing, of the wrong type or out of range",
    "dtype": f"dtype is not {DTYPE!r}",
    "shape": "shape does not match the payload or the scan",
    "non_finite": "the line holds NaN or infinity",
    "row_range": "row outside the scan",
    "row_order": "row repeats or goes back against the scan direction",
    "unknown_scan": "message for a scan that is not the current one",
    "duplicate_start": "scan.start repeating the current scan id",
    "scan_superseded": "a new scan.start ended the current scan (not dropped)",
    "controller_silent": "the current scan timed out (not dropped)",
}
"""Every fault the bridge counts, by kind, with its cause (the table of PROTOCOL.md)."""


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``kind`` is one of ``FAULT_KINDS``."""

    def __init__(self, kind: str, message: str) -> None:
        assert kind in FAULT_KINDS, kind
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ScanStart:
    scan: str
    seq: int
    rows: int
    cols: int
    channel: str
    unit: str
    range: tuple[float, float]
    direction: str
    extra: dict = field(default_factory=dict)
    """Header keys this version does not define, kept for the saved metadata."""


@dataclass(frozen=True)
class Line:
    scan: str
    seq: int
    row: int
    dir: str
    t: float
    data: np.ndarray
    """The payload as a read-only ``(cols,)`` float32 view: exactly the bytes received."""


@dataclass(frozen=True)
class ScanEnd:
    scan: str
    seq: int
    complete: bool


@dataclass(frozen=True)
class Frame:
    """``frame.raw`` or ``frame.denoised``: a whole frame, unscanned rows NaN."""

    kind: str  # "raw" or "denoised"
    scan: str
    seq: int
    rows_done: int
    final: bool
    model: str
    backend: str
    latency_ms: float
    dir: str
    update: int
    direction: str
    channel: str
    unit: str
    range: tuple[float, float]
    data: np.ndarray

    @property
    def topic(self) -> str:
        return f"frame.{self.kind}"


@dataclass(frozen=True)
class ScanEnded:
    """The bridge's ``scan.end``: the scan is finished, published and saved."""

    scan: str
    seq: int
    complete: bool
    reason: str
    rows_done: int
    saved: str


Ingest = Union[ScanStart, Line, ScanEnd]
Published = Union[Frame, ScanEnded]

_FRAME_COUNT = {"scan.start": 2, "line": 3, "scan.end": 2, "frame.raw": 3, "frame.denoised": 3}


# --- field checks ---------------------------------------------------------------------------


def _get(header: dict, key: str) -> Any:
    if key not in header:
        raise ProtocolError("field", f"header lacks {key!r}")
    return header[key]


def _int(header: dict, key: str, low: int, high: int | None = None) -> int:
    value = _get(header, key)
    # bool is an int in Python but never a count or an index on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("field", f"{key!r} must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"{low} to {high}" if high is not None else f">= {low}"
        raise ProtocolError("row_range" if key == "row" else "field", f"{key!r} = {value} outside {bounds}")
    return value


def _float(header: dict, key: str) -> float:
    value = _get(header, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ProtocolError("field", f"{key!r} must be a finite number, got {value!r}")
    return float(value)


def _str(header: dict, key: str, choices: tuple[str, ...] | None = None, max_length: int = MAX_ID_LENGTH) -> str:
    value = _get(header, key)
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise ProtocolError("field", f"{key!r} must be a string of 1 to {max_length} characters")
    if choices is not None and value not in choices:
        raise ProtocolError("field", f"{key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(header: dict, key: str) -> bool:
    value = _get(header, key)
    if not isinstance(value, bool):
        raise ProtocolError("field", f"{key!r} must be true or false, got {value!r}")
    return value


def _range(header: dict) -> tuple[float, float]:
    value = _get(header, "range")
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ProtocolError("field", "'range' must be [width, height] in metres")
    width, height = (_float({"range": v}, "range") for v in value)
    if not (width > 0 and height > 0):
        raise ProtocolError("field", f"'range' must be positive, got {list(value)}")
    return width, height


def _payload(header: dict, payload: bytes, ndim: int) -> np.ndarray:
    dtype = _get(header, "dtype")
    if dtype != DTYPE:
        raise ProtocolError("dtype", f"dtype must be {DTYPE!r}, got {dtype!r}")
    shape = _get(header, "shape")
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != ndim
        or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SIDE for n in shape)
    ):
        raise ProtocolError("shape", f"shape must be {ndim} integers of 1 to {MAX_SIDE}, got {shape!r}")
    if len(payload) != 4 * math.prod(shape):
        raise ProtocolError("shape", f"payload of {len(payload)} bytes does not hold shape {list(shape)} of {DTYPE}")
    return np.frombuffer(payload, dtype=DTYPE).reshape(shape)


def _header(frames: list[bytes]) -> tuple[str, dict]:
    if not 2 <= len(frames) <= 3:
        raise ProtocolError("frames", f"a message has 2 or 3 frames, got {len(frames)}")
    try:
        topic = bytes(frames[0]).decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("topic", "topic is not ASCII") from None
    if topic not in _FRAME_COUNT:
        raise ProtocolError("topic", f"unknown topic {topic[:40]!r}")
    expected = _FRAME_COUNT[topic]
    if len(frames) != expected:
        raise ProtocolError("frames", f"{topic} has {expected} frames, got {len(frames)}")
    try:
        header = msgpack.unpackb(bytes(frames[1]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for corrupt input
        raise ProtocolError("header", f"{topic} header is not msgpack: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header", f"{topic} header is a {type(header).__name__}, not a map")
    if header.get("v") != VERSION:
        raise ProtocolError("version", f"{topic} has protocol version {header.get('v')!r}, expected {VERSION}")
    return topic, header


def _common(header: dict) -> tuple[str, int]:
    return _str(header, "scan"), _int(header, "seq", 0)


# --- decoding -------------------------------------------------------------------------------


def decode_ingest(frames: list[bytes]) -> Ingest:
    """A controller's message, validated; raises ``ProtocolError`` for anything malformed."""
    topic, h = _header(frames)
    if topic.startswith("frame."):
        raise ProtocolError("topic", f"{topic} is published by the bridge, not sent to it")
    scan, seq = _common(h)
    if topic == "scan.start":
        known = {"v", "scan", "seq", "rows", "cols", "channel", "unit", "range", "direction"}
        return ScanStart(
            scan, seq, _int(h, "rows", 1, MAX_SIDE), _int(h, "cols", 1, MAX_SIDE),
            _str(h, "channel"), _str(h, "unit"), _range(h), _str(h, "direction", DIRECTIONS),
            {k: v for k, v in h.items() if k not in known},
        )
    if topic == "scan.end":
        return ScanEnd(scan, seq, _bool(h, "complete"))
    row, direction, t = _int(h, "row", 0, MAX_SIDE - 1), _str(h, "dir", DIRS), _float(h, "t")
    data = _payload(h, frames[2], 1)
    if not np.isfinite(data).all():
        raise ProtocolError("non_finite", f"line {row} ({direction}) holds NaN or infinity")
    return Line(scan, seq, row, direction, t, data)


def decode_published(frames: list[bytes]) -> Published:
    """A message the bridge published (for subscribers); raises ``ProtocolError`` if malformed."""
    topic, h = _header(frames)
    if topic in ("scan.start", "line"):
        raise ProtocolError("topic", f"{topic} is sent to the bridge, not published by it")
    scan, seq = _common(h)
    if topic == "scan.end":
        saved = _get(h, "saved")
        if not isinstance(saved, str):
            raise ProtocolError("field", "'saved' must be a string")
        return ScanEnded(scan, seq, _bool(h, "complete"), _str(h, "reason", END_REASONS), _int(h, "rows_done", 0), saved)
    data = _payload(h, frames[2], 2)
    if [_int(h, "rows", 1, MAX_SIDE), _int(h, "cols", 1, MAX_SIDE)] != list(data.shape):
        raise ProtocolError("shape", "frame shape differs from its rows and cols")
    return Frame(
        topic.split(".", 1)[1], scan, seq, _int(h, "rows_done", 0, data.shape[0]), _bool(h, "final"),
        _str(h, "model", max_length=4096), _str(h, "backend"), _float(h, "latency_ms"), _str(h, "dir", DIRS),
        _int(h, "update", 0), _str(h, "direction", DIRECTIONS), _str(h, "channel"), _str(h, "unit"), _range(h), data,
    )


# --- encoding -------------------------------------------------------------------------------


def _pack(topic: str, header: dict, payload: np.ndarray | None = None) -> list[bytes]:
    frames = [topic.encode("ascii"), msgpack.packb(header, use_bin_type=True)]
    if payload is not None:
        frames.append(np.ascontiguousarray(payload, dtype=DTYPE).tobytes())
    return frames


def encode(message: Ingest | Published) -> list[bytes]:
    """The multipart frames of any protocol message."""
    base = {"v": VERSION, "scan": message.scan, "seq": message.seq}
    if isinstance(message, ScanStart):
        return _pack("scan.start", {
            **message.extra, **base, "rows": message.rows, "cols": message.cols, "channel": message.channel,
            "unit": message.unit, "range": list(message.range), "direction": message.direction,
        })
    if isinstance(message, Line):
        return _pack("line", {
            **base, "row": message.row, "dir": message.dir, "t": message.t, "dtype": DTYPE, "shape": [message.data.size],
        }, message.data)
    if isinstance(message, ScanEnd):
        return _pack("scan.end", {**base, "complete": message.complete})
    if isinstance(message, ScanEnded):
        return _pack("scan.end", {
            **base, "complete": message.complete, "reason": message.reason, "rows_done": message.rows_done,
            "saved": message.saved,
        })
    if isinstance(message, Frame):
        rows, cols = message.data.shape
        return _pack(message.topic, {
            **base, "rows": rows, "cols": cols, "rows_done": message.rows_done, "dtype": DTYPE, "shape": [rows, cols],
            "final": message.final, "model": message.model, "backend": message.backend,
            "latency_ms": float(message.latency_ms), "dir": message.dir, "update": message.update,
            "direction": message.direction, "channel": message.channel, "unit": message.unit,
            "range": list(message.range),
        }, message.data)
    raise TypeError(f"not a protocol message: {type(message).__name__}")
