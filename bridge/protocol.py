"""Wire protocol v2 of the bridge (``bridge/PROTOCOL.md``): encode and decode every message.

A message is a ZeroMQ multipart message ``[topic, msgpack header]`` or ``[topic, header,
payload]``; each topic carries exactly one message type (``TOPICS``). Decoding validates
everything a message can get wrong on its own (frame count, msgpack, version, fields, dtype,
shape, finite values) and raises ``ProtocolError`` with a ``kind`` from ``FAULT_KINDS``; what
depends on the scan in progress (row range and order, unknown scan) is checked by
``maed.bridge.scan``. Unknown header keys are ignored, as version 2 allows.

Words: ``pass`` is the fast-axis pass of a line or frame, ``trace`` or ``retrace``; ``slow_axis``
is the order the rows are scanned in, ``down`` (row 0 first) or ``up``. ``pass`` is a Python
keyword, so the records call it ``pass_``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

import msgpack
import numpy as np

VERSION = 2
DTYPE = "<f4"
MAX_SIDE = 4096
MAX_ID_LENGTH = 256
PASSES = ("trace", "retrace")
SLOW_AXES = ("down", "up")
WHY_ENDED = ("stopped", "lines_missed", "restarted", "unreadable", "source_stopped")
"""What a controller may say ended its scan early (``scan.end``'s optional ``why``): it stopped scanning mid-frame,
it ended the frame with lines the sender missed, it started a new frame (restarted, resized, turned round), the
scan could no longer be read, or the sender itself stopped (its program or the bridge it runs in shutting down,
the controller out of reach)."""
END_REASONS = ("end", "superseded", "timeout", "shutdown")
SEVERITIES = ("info", "warning", "critical")

FAULT_KINDS: dict[str, str] = {
    "frames": "wrong number of frames for the topic",
    "topic": "unknown topic",
    "header": "header is not a msgpack map with string keys",
    "version": f"protocol version is not the integer {VERSION}",
    "field": "a required header field is missing, of the wrong type or out of range",
    "dtype": f"dtype is not {DTYPE!r}",
    "shape": "shape does not match the payload or the scan",
    "non_finite": "the line holds NaN or infinity",
    "row_range": "row outside the scan",
    "row_order": "row repeats or goes back against the slow axis",
    "unknown_scan": "message for a scan that is not the current one",
    "duplicate_start": "scan.start repeating the current scan id",
    "budget": "over a budget of the bridge: pixels per scan or message size (docs/reliability.md)",
    "scan_superseded": "a new scan.start ended the current scan (not dropped)",
    "controller_silent": "the current scan timed out (not dropped)",
}
"""Every fault the bridge counts, by kind, with its cause (the table of PROTOCOL.md)."""


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``kind`` is one of ``FAULT_KINDS``. ``position``: the refused message's
    ``scan`` and ``seq`` where its header held them readable (``decode_ingest``), else None."""

    def __init__(self, kind: str, message: str) -> None:
        assert kind in FAULT_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.position: tuple[str, int] | None = None


def version_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid ``v`` of this protocol (None when it is the integer ``VERSION``).

    A bool or a float is not an integer, even where it equals one (``true == 1``, ``2.0 == 2``).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value == VERSION:
            return None
        return (
            f"protocol version {value} is not supported: MAED-RT speaks version {VERSION} "
            f"(bridge/PROTOCOL.md lists the changes from version 1)"
        )
    if value is None:
        return f"the header lacks 'v', the protocol version (the integer {VERSION})"
    return f"'v', the protocol version, must be the integer {VERSION}, got {value!r} ({type(value).__name__})"


# --- records ----------------------------------------------------------------------------------
# Keyword-only: a message has a dozen fields, several of the same type, and a positional mix-up
# would still type-check.


@dataclass(frozen=True, kw_only=True)
class ScanStart:
    """``scan.start`` (controller): a new scan begins."""

    scan: str
    seq: int
    rows: int
    cols: int
    channel: str
    unit: str
    range: tuple[float, float]
    slow_axis: str
    extra: dict = field(default_factory=dict)
    """Header keys this version does not define, kept for the saved metadata."""


@dataclass(frozen=True, kw_only=True)
class Line:
    """``line`` (controller): one scan line of one pass."""

    scan: str
    seq: int
    row: int
    pass_: str
    t: float
    data: np.ndarray
    """The payload as a read-only ``(cols,)`` float32 view: exactly the bytes received."""


@dataclass(frozen=True, kw_only=True)
class ScanEnd:
    """``scan.end`` (controller): the scan is over."""

    scan: str
    seq: int
    complete: bool
    why: str | None = None
    """Where the sender knows it, what ended the scan (``WHY_ENDED``); None: not said (a scan that ran to its end)."""


@dataclass(frozen=True, kw_only=True)
class FrameLabels:
    """What every ``frame.*`` message of one update says besides its data (``_frame_labels`` encodes it)."""

    scan: str
    seq: int
    rows_done: int
    final: bool
    model: str
    backend: str
    latency_ms: float
    pass_: str
    update: int
    slow_axis: str
    channel: str
    unit: str
    range: tuple[float, float]
    weights_sha256: str | None = None
    """SHA-256 of the weights of ``model`` (every frame the bridge publishes names it)."""


@dataclass(frozen=True, kw_only=True)
class Frame(FrameLabels):
    """``frame.raw`` or ``frame.denoised``: a whole frame, unscanned rows NaN."""

    kind: str  # "raw" or "denoised": the topic, not a header field
    data: np.ndarray
    trust: dict | None = None
    """``frame.denoised`` only: the latest verdict of the trust guard (``maed.trust.Verdict.as_dict()``,
    the ``rows_done`` it was computed at and the ``rows_judged``, the latest of those, it judged), None before
    the first; always in a denoised header."""
    trace_retrace: dict | None = None
    """``frame.denoised`` only, added by a later issue: figures comparing the trace and the retrace."""

    @property
    def topic(self) -> str:
        return f"frame.{self.kind}"


@dataclass(frozen=True, kw_only=True)
class FrameRows(FrameLabels):
    """``frame.rows``: the denoised rows one update changed, levelled, with the levelling to add back.

    Row ``r`` of the frame is ``levelled[r] + plane(r) + offsets[r]`` (``offsets`` empty: all
    zero), where the plane and the offsets are the newest received and apply to every row.
    """

    rows: int
    row_start: int
    data: np.ndarray
    """``(row_stop - row_start, cols)`` levelled rows, frame orientation; NaN where not scanned."""
    plane: tuple[float, float, float]
    """``a + b * (col - (cols - 1) / 2) + c * (row - (rows - 1) / 2)`` over frame rows and columns."""
    offsets: tuple[float, ...]
    """Per-row offsets of all ``rows`` frame rows, or empty for none."""

    @property
    def row_stop(self) -> int:
        return self.row_start + self.data.shape[0]

    def apply(self, levelled: np.ndarray) -> np.ndarray:
        """Paste these rows into ``levelled`` (a subscriber's ``(rows, cols)`` levelled frame, in place)
        and return the frame in the scan's unit: levelled rows plus plane plus offsets, float32."""
        levelled[self.row_start : self.row_stop] = self.data
        out = levelled + levelling(self.plane, self.offsets, levelled.shape[1], self.rows, 0, self.rows)
        return out.astype(np.float32)


def levelling(plane: tuple[float, float, float], offsets: tuple[float, ...], cols: int, rows: int, start: int, stop: int) -> np.ndarray:
    """``plane(r, c) + offsets[r]`` of frame rows ``[start, stop)`` (float64): what ``frame.rows`` takes off."""
    r = np.arange(start, stop, dtype=np.float64)[:, None] - (rows - 1) / 2
    c = np.arange(cols, dtype=np.float64)[None, :] - (cols - 1) / 2
    a, b, slope = plane
    out = a + b * c + slope * r
    if offsets:
        out = out + np.asarray(offsets[start:stop], dtype=np.float64)[:, None]
    return out


@dataclass(frozen=True, kw_only=True)
class ScanFinished:
    """``scan.finished`` (bridge): the scan is over, its final frames published and its files saved."""

    scan: str
    seq: int
    complete: bool
    reason: str
    rows_done: int
    saved: str


@dataclass(frozen=True, kw_only=True)
class ScanJournaled:
    """``scan.journaled`` (bridge, on the acknowledgement socket): the scan's messages are on disk up to
    the controller's ``journaled_seq``; the sender may forget every message it sent with a ``seq`` up to it."""

    scan: str
    seq: int
    journaled_seq: int


@dataclass(frozen=True, kw_only=True)
class Alert:
    """``alert`` (bridge, added by a later issue): something in the scan a person should look at."""

    scan: str
    seq: int
    kind: str
    row: int
    columns: tuple[int, int]
    """``[start, stop)`` of the frame row's columns concerned."""
    severity: str
    evidence: dict


Ingest = Union[ScanStart, Line, ScanEnd]
Published = Union[Frame, FrameRows, ScanFinished, ScanJournaled, Alert]

TOPICS: dict[str, tuple[type, int]] = {
    "scan.start": (ScanStart, 2),
    "line": (Line, 3),
    "scan.end": (ScanEnd, 2),
    "frame.raw": (Frame, 3),
    "frame.denoised": (Frame, 3),
    "frame.rows": (FrameRows, 3),
    "scan.finished": (ScanFinished, 2),
    "scan.journaled": (ScanJournaled, 2),
    "alert": (Alert, 2),
}
"""Every topic of version 2: the one message type it carries and its number of frames."""
INGEST_TOPICS = ("scan.start", "line", "scan.end")
PUBLISHED_TOPICS = ("frame.raw", "frame.denoised", "frame.rows", "scan.finished", "scan.journaled", "alert")


# --- field checks ---------------------------------------------------------------------------


def _get(header: dict, key: str) -> Any:
    if key not in header:
        raise ProtocolError("field", f"header lacks {key!r}")
    return header[key]


def _is_int(value: Any) -> bool:
    # bool is an int in Python but never a count or an index on the wire.
    return isinstance(value, int) and not isinstance(value, bool)


def _int(header: dict, key: str, low: int, high: int | None = None) -> int:
    value = _get(header, key)
    if not _is_int(value):
        raise ProtocolError("field", f"{key!r} must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"{low} to {high}" if high is not None else f">= {low}"
        raise ProtocolError("row_range" if key == "row" else "field", f"{key!r} = {value} outside {bounds}")
    return value


def _number(value: Any, key: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ProtocolError("field", f"{key!r} must be a finite number, got {value!r}")
    return float(value)


def _float(header: dict, key: str) -> float:
    return _number(_get(header, key), key)


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
    width, height = (_number(v, "range") for v in value)
    if not (width > 0 and height > 0):
        raise ProtocolError("field", f"'range' must be positive, got {list(value)}")
    return width, height


def _numbers(header: dict, key: str, lengths: tuple[int, ...]) -> tuple[float, ...]:
    value = _get(header, key)
    if not isinstance(value, (list, tuple)) or len(value) not in lengths:
        raise ProtocolError("field", f"{key!r} must be a list of {' or '.join(map(str, lengths))} numbers")
    return tuple(_number(v, key) for v in value)


def _map(header: dict, key: str, required: bool = True, nullable: bool = False) -> dict | None:
    if key not in header and not required:
        return None
    value = _get(header, key)
    if value is None and nullable:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ProtocolError("field", f"{key!r} must be a map with string keys")
    return value


def _payload(header: dict, payload: bytes, ndim: int) -> np.ndarray:
    dtype = _get(header, "dtype")
    if dtype != DTYPE:
        raise ProtocolError("dtype", f"dtype must be {DTYPE!r}, got {dtype!r}")
    shape = _get(header, "shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != ndim or not all(_is_int(n) and 1 <= n <= MAX_SIDE for n in shape):
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
    if topic not in TOPICS:
        raise ProtocolError("topic", f"unknown topic {topic[:40]!r}")
    expected = TOPICS[topic][1]
    if len(frames) != expected:
        raise ProtocolError("frames", f"{topic} has {expected} frames, got {len(frames)}")
    try:
        header = msgpack.unpackb(bytes(frames[1]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for corrupt input
        raise ProtocolError("header", f"{topic} header is not msgpack: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header", f"{topic} header is a {type(header).__name__}, not a map")
    # msgpack's strict_map_key still lets bytes keys through; a field must be found by its name.
    if not all(isinstance(key, str) for key in header):
        raise ProtocolError("header", f"{topic} header has a key that is not a string")
    problem = version_problem(header.get("v"))
    if problem is not None:
        error = ProtocolError("version", f"{topic}: {problem}")
        error.position = _position(header)
        raise error
    return topic, header


def _position(header: dict) -> tuple[str, int] | None:
    """A header's ``scan`` and ``seq`` where both are readable (a string and an integer >= 0), else None."""
    scan, seq = header.get("scan"), header.get("seq")
    return (scan, seq) if isinstance(scan, str) and _is_int(seq) and seq >= 0 else None


def _common(header: dict) -> dict:
    return {"scan": _str(header, "scan"), "seq": _int(header, "seq", 0)}


def _labels(h: dict, rows: int) -> dict:
    """The fields ``frame.*`` messages share (all but the payload's geometry)."""
    return {
        "rows_done": _int(h, "rows_done", 0, rows),
        "final": _bool(h, "final"),
        "model": _str(h, "model", max_length=4096),
        "backend": _str(h, "backend"),
        "latency_ms": _float(h, "latency_ms"),
        "pass_": _str(h, "pass", PASSES),
        "update": _int(h, "update", 0),
        "slow_axis": _str(h, "slow_axis", SLOW_AXES),
        "channel": _str(h, "channel"),
        "unit": _str(h, "unit"),
        "range": _range(h),
        "weights_sha256": _str(h, "weights_sha256", max_length=128) if "weights_sha256" in h else None,
    }


MAX_EXTRA_DEPTH = 8
MAX_EXTRA_ITEMS = 4096
"""A ``scan.start``'s keys beyond the protocol's (the controller's own: a frame's centre and angle, its bias) are kept
in the scan's ``meta.json``: lists and maps in them may nest ``MAX_EXTRA_DEPTH`` deep and hold ``MAX_EXTRA_ITEMS``
values in all. Deeper ones broke the JSON writer (its recursion) each time the scan was saved, its journal kept and
replayed at every start."""


def _extra(extra: dict) -> dict:
    """``extra`` where it nests and counts within the budget above; else a ``ProtocolError`` (``field``)."""
    count = 0
    pending = [(value, 1) for value in extra.values()]
    while pending:
        value, depth = pending.pop()
        count += 1
        if depth > MAX_EXTRA_DEPTH or count > MAX_EXTRA_ITEMS:
            raise ProtocolError(
                "field", f"scan.start's own keys nest deeper than {MAX_EXTRA_DEPTH} or hold more than {MAX_EXTRA_ITEMS} values"
            )
        if isinstance(value, (list, tuple)):
            pending += [(item, depth + 1) for item in value]
        elif isinstance(value, dict):
            pending += [(item, depth + 1) for pair in value.items() for item in pair]
    return extra


# --- decoding -------------------------------------------------------------------------------


def decode_ingest(frames: list[bytes]) -> Ingest:
    """A controller's message, validated; raises ``ProtocolError`` for anything malformed, with the message's
    ``position`` where its header was read (the bridge counts a refused message as seen, not lost)."""
    topic, h = _header(frames)
    try:
        return _ingest(topic, h, frames)
    except ProtocolError as error:
        error.position = _position(h)
        raise


def _ingest(topic: str, h: dict, frames: list[bytes]) -> Ingest:
    if topic not in INGEST_TOPICS:
        raise ProtocolError("topic", f"{topic} is published by the bridge, not sent to it")
    common = _common(h)
    if topic == "scan.start":
        known = {"v", "scan", "seq", "rows", "cols", "channel", "unit", "range", "slow_axis"}
        return ScanStart(
            **common,
            rows=_int(h, "rows", 1, MAX_SIDE),
            cols=_int(h, "cols", 1, MAX_SIDE),
            channel=_str(h, "channel"),
            unit=_str(h, "unit"),
            range=_range(h),
            slow_axis=_str(h, "slow_axis", SLOW_AXES),
            extra=_extra({k: v for k, v in h.items() if k not in known}),
        )
    if topic == "scan.end":
        return ScanEnd(**common, complete=_bool(h, "complete"), why=_str(h, "why", WHY_ENDED) if "why" in h else None)
    row, pass_, t = _int(h, "row", 0, MAX_SIDE - 1), _str(h, "pass", PASSES), _float(h, "t")
    data = _payload(h, frames[2], 1)
    if not np.isfinite(data).all():
        raise ProtocolError("non_finite", f"line {row} ({pass_}) holds NaN or infinity")
    return Line(**common, row=row, pass_=pass_, t=t, data=data)


def decode_published(frames: list[bytes]) -> Published:
    """A message the bridge published (for subscribers); raises ``ProtocolError`` if malformed."""
    topic, h = _header(frames)
    if topic not in PUBLISHED_TOPICS:
        raise ProtocolError("topic", f"{topic} is sent to the bridge, not published by it")
    common = _common(h)
    if topic == "scan.finished":
        saved = _get(h, "saved")
        if not isinstance(saved, str):
            raise ProtocolError("field", "'saved' must be a string")
        return ScanFinished(
            **common, complete=_bool(h, "complete"), reason=_str(h, "reason", END_REASONS), rows_done=_int(h, "rows_done", 0), saved=saved
        )
    if topic == "scan.journaled":
        return ScanJournaled(**common, journaled_seq=_int(h, "journaled_seq", 0))
    if topic == "alert":
        columns = _get(h, "columns")
        if (
            not isinstance(columns, (list, tuple))
            or len(columns) != 2
            or not all(map(_is_int, columns))
            or not 0 <= columns[0] < columns[1] <= MAX_SIDE
        ):
            raise ProtocolError("field", "'columns' must be [start, stop) with 0 <= start < stop")
        return Alert(
            **common,
            kind=_str(h, "kind"),
            row=_int(h, "row", 0, MAX_SIDE - 1),
            columns=(columns[0], columns[1]),
            severity=_str(h, "severity", SEVERITIES),
            evidence=_map(h, "evidence"),
        )
    data = _payload(h, frames[2], 2)
    rows, cols = _int(h, "rows", 1, MAX_SIDE), _int(h, "cols", 1, MAX_SIDE)
    if topic == "frame.rows":
        start, stop = _int(h, "row_start", 0, rows - 1), _int(h, "row_stop", 1, rows)
        if [stop - start, cols] != list(data.shape):
            raise ProtocolError("shape", "frame.rows shape differs from its row_start, row_stop and cols")
        return FrameRows(
            **common,
            rows=rows,
            row_start=start,
            data=data,
            plane=_numbers(h, "plane", (3,)),
            offsets=_numbers(h, "offsets", (0, rows)),
            **_labels(h, rows),
        )
    if [rows, cols] != list(data.shape):
        raise ProtocolError("shape", "frame shape differs from its rows and cols")
    figures = {"trust": _map(h, "trust", False, nullable=True), "trace_retrace": _map(h, "trace_retrace", False)}
    return Frame(kind=topic.split(".", 1)[1], **common, **_labels(h, rows), data=data, **figures)


# --- encoding -------------------------------------------------------------------------------


def _pack(topic: str, header: dict, payload: np.ndarray | None = None) -> list[bytes]:
    frames = [topic.encode("ascii"), msgpack.packb(header, use_bin_type=True)]
    if payload is not None:
        frames.append(np.ascontiguousarray(payload, dtype=DTYPE).tobytes())
    return frames


def _frame_labels(message: FrameLabels) -> dict:
    return {
        "rows_done": message.rows_done,
        "dtype": DTYPE,
        "final": message.final,
        "model": message.model,
        "backend": message.backend,
        "latency_ms": float(message.latency_ms),
        "pass": message.pass_,
        "update": message.update,
        "slow_axis": message.slow_axis,
        "channel": message.channel,
        "unit": message.unit,
        "range": list(message.range),
        **({"weights_sha256": message.weights_sha256} if message.weights_sha256 is not None else {}),
    }


def encode(message: Ingest | Published) -> list[bytes]:
    """The multipart frames of any protocol message."""
    base = {"v": VERSION, "scan": message.scan, "seq": message.seq}
    if isinstance(message, ScanStart):
        return _pack(
            "scan.start",
            {
                **message.extra,
                **base,
                "rows": message.rows,
                "cols": message.cols,
                "channel": message.channel,
                "unit": message.unit,
                "range": list(message.range),
                "slow_axis": message.slow_axis,
            },
        )
    if isinstance(message, Line):
        return _pack(
            "line",
            {
                **base,
                "row": message.row,
                "pass": message.pass_,
                "t": message.t,
                "dtype": DTYPE,
                "shape": [message.data.size],
            },
            message.data,
        )
    if isinstance(message, ScanEnd):
        why = {} if message.why is None else {"why": message.why}
        return _pack("scan.end", {**base, "complete": message.complete, **why})
    if isinstance(message, ScanFinished):
        return _pack(
            "scan.finished",
            {
                **base,
                "complete": message.complete,
                "reason": message.reason,
                "rows_done": message.rows_done,
                "saved": message.saved,
            },
        )
    if isinstance(message, ScanJournaled):
        return _pack("scan.journaled", {**base, "journaled_seq": message.journaled_seq})
    if isinstance(message, Alert):
        return _pack(
            "alert",
            {
                **base,
                "kind": message.kind,
                "row": message.row,
                "columns": list(message.columns),
                "severity": message.severity,
                "evidence": message.evidence,
            },
        )
    if isinstance(message, FrameRows):
        count, cols = message.data.shape
        return _pack(
            "frame.rows",
            {
                **base,
                "rows": message.rows,
                "cols": cols,
                "row_start": message.row_start,
                "row_stop": message.row_start + count,
                "shape": [count, cols],
                "plane": [float(p) for p in message.plane],
                "offsets": [float(o) for o in message.offsets],
                **_frame_labels(message),
            },
            message.data,
        )
    if isinstance(message, Frame):
        rows, cols = message.data.shape
        header = {**base, "rows": rows, "cols": cols, "shape": [rows, cols], **_frame_labels(message)}
        if message.kind == "denoised":  # null until the guard's first verdict, so every denoised header has it
            header["trust"] = message.trust
        if message.trace_retrace is not None:
            header["trace_retrace"] = message.trace_retrace
        return _pack(message.topic, header, message.data)
    raise TypeError(f"not a protocol message: {type(message).__name__}")
