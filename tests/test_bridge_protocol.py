"""Wire protocol v1: every message round-trips, every malformed kind is named, and a fuzzer finds no crash."""

import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maed.bridge.protocol import (
    FAULT_KINDS, Frame, Line, ProtocolError, ScanEnd, ScanEnded, ScanStart, decode_ingest, decode_published, encode,
)


def start(**changes):
    header = {"v": 1, "scan": "s1", "seq": 0, "rows": 4, "cols": 3, "channel": "Z", "unit": "m",
              "range": [1e-8, 1e-8], "direction": "down"}
    header.update(changes)
    return [b"scan.start", msgpack.packb({k: v for k, v in header.items() if v is not ...})]


def line(payload=None, **changes):
    header = {"v": 1, "scan": "s1", "seq": 1, "row": 0, "dir": "fwd", "t": 1.5, "dtype": "<f4", "shape": [3]}
    header.update(changes)
    data = np.array([1e-10, 2e-10, 3e-10], "<f4").tobytes() if payload is None else payload
    return [b"line", msgpack.packb({k: v for k, v in header.items() if v is not ...}), data]


def test_ingest_messages_round_trip():
    s = ScanStart("scan-α", 7, 512, 256, "Z", "m", (2e-8, 1e-8), "up", {"line_rate": 4.0})
    assert decode_ingest(encode(s)) == s
    data = np.linspace(-1e-9, 1e-9, 256, dtype="<f4")
    decoded = decode_ingest(encode(Line("scan-α", 8, 511, "bwd", 123.25, data)))
    assert (decoded.scan, decoded.seq, decoded.row, decoded.dir, decoded.t) == ("scan-α", 8, 511, "bwd", 123.25)
    assert decoded.data.tobytes() == data.tobytes()
    assert decode_ingest(encode(ScanEnd("scan-α", 9, False))) == ScanEnd("scan-α", 9, False)


def test_published_messages_round_trip():
    data = np.full((4, 3), np.nan, np.float32)
    data[:2] = np.arange(6).reshape(2, 3)
    frame = Frame("denoised", "s", 3, 2, False, "rt", "onnx", 12.5, "fwd", 1, "down", "Z", "m", (1e-8, 2e-8), data)
    decoded = decode_published(encode(frame))
    assert decoded.topic == "frame.denoised" and decoded.rows_done == 2 and decoded.latency_ms == 12.5
    assert decoded.data.tobytes() == data.tobytes()  # NaN rows too, bit for bit
    ended = ScanEnded("s", 4, True, "end", 4, "/tmp/x")
    assert decode_published(encode(ended)) == ended


def test_unknown_header_keys_are_kept_or_ignored():
    header = msgpack.unpackb(start()[1])
    header["angle"] = 30.0
    message = decode_ingest([b"scan.start", msgpack.packb(header)])
    assert message.extra == {"angle": 30.0}


@pytest.mark.parametrize("frames, kind", [
    ([b"line", b"x"], "frames"),
    ([b"scan.start"], "frames"),
    (start() + [b"extra"], "frames"),
    ([b"scan.stop", b"\x80"], "topic"),
    ([b"\xff\xfe", b"\x80"], "topic"),
    ([b"frame.raw", b"\x80", b""], "version"),  # published topics are refused after their header is read
    ([b"scan.start", b"\xc1"], "header"),
    ([b"scan.start", msgpack.packb([1, 2])], "header"),
    (start(v=2), "version"),
    (start(v=...), "version"),
    (start(rows=...), "field"),
    (start(rows=0), "field"),
    (start(rows=5000), "field"),
    (start(cols=True), "field"),
    (start(range=[1e-8]), "field"),
    (start(range=[-1.0, 1.0]), "field"),
    (start(range=[math.inf, 1.0]), "field"),
    (start(direction="left"), "field"),
    (start(scan=""), "field"),
    (start(seq=-1), "field"),
    (line(dir="up"), "field"),
    (line(t="now"), "field"),
    (line(row=-1), "row_range"),
    (line(dtype="<f8"), "dtype"),
    (line(dtype=...), "field"),
    (line(shape=[4]), "shape"),
    (line(shape=[1, 3]), "shape"),
    (line(payload=b"\x00" * 11), "shape"),
    (line(payload=np.array([0, np.nan, 0], "<f4").tobytes()), "non_finite"),
    (line(payload=np.array([0, -np.inf, 0], "<f4").tobytes()), "non_finite"),
])
def test_malformed_messages_name_their_kind(frames, kind):
    with pytest.raises(ProtocolError) as info:
        decode_ingest(frames)
    assert info.value.kind == kind


def test_published_topics_are_not_ingest():
    data = np.zeros((1, 1), np.float32)
    frame = Frame("raw", "s", 0, 1, False, "m", "b", 0.0, "fwd", 0, "down", "Z", "m", (1.0, 1.0), data)
    with pytest.raises(ProtocolError) as info:
        decode_ingest(encode(frame))
    assert info.value.kind == "topic"


# --- fuzzing ----------------------------------------------------------------------------------

TOPICS = [b"scan.start", b"line", b"scan.end", b"frame.raw", b"frame.denoised", b"", b"x" * 50]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
KEYS = ["v", "scan", "seq", "rows", "cols", "channel", "unit", "range", "direction", "row", "dir", "t", "dtype",
        "shape", "complete", "rows_done", "final", "model", "backend", "latency_ms", "update", "saved", "reason"]


def _check(frames):
    for decode in (decode_ingest, decode_published):
        try:
            decode(frames)
        except ProtocolError as exc:
            assert exc.kind in FAULT_KINDS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_fuzz_raw_frames_only_raise_protocol_errors(frames):
    _check(frames)


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from(TOPICS),
    header=st.dictionaries(st.sampled_from(KEYS), values, max_size=len(KEYS)),
    payload=st.none() | st.binary(max_size=64),
)
def test_fuzz_headers_only_raise_protocol_errors(topic, header, payload):
    frames = [topic, msgpack.packb(header, use_bin_type=True)] + ([payload] if payload is not None else [])
    _check(frames)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["v", "scan", "seq", "row", "dir", "t", "dtype", "shape"]),
    value=values,
    data=st.lists(st.floats(width=32), min_size=1, max_size=16),
)
def test_fuzz_one_bad_field_in_a_line(field, value, data):
    payload = np.array(data, "<f4")
    header = {"v": 1, "scan": "s", "seq": 0, "row": 0, "dir": "fwd", "t": 0.0, "dtype": "<f4", "shape": [payload.size]}
    header[field] = value
    frames = [b"line", msgpack.packb(header, use_bin_type=True), payload.tobytes()]
    try:
        message = decode_ingest(frames)
    except ProtocolError as exc:
        assert exc.kind in FAULT_KINDS
    else:  # what the decoder accepts is well formed
        assert isinstance(message, Line) and np.isfinite(message.data).all()
        assert message.data.tobytes() == payload.tobytes()


@settings(max_examples=200, deadline=None)
@given(
    scan=st.text(min_size=1, max_size=40),
    seq=st.integers(0, 2**63),
    rows=st.integers(1, 4096),
    cols=st.integers(1, 64),
    direction=st.sampled_from(["down", "up"]),
    t=st.floats(allow_nan=False, allow_infinity=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_valid_messages_round_trip(scan, seq, rows, cols, direction, t, seed):
    s = ScanStart(scan, seq, rows, cols, "Z", "m", (1e-9, 2e-9), direction)
    assert decode_ingest(encode(s)) == s
    data = np.random.default_rng(seed).standard_normal(cols).astype("<f4")
    decoded = decode_ingest(encode(Line(scan, seq, rows - 1, "fwd", t, data)))
    assert decoded.row == rows - 1 and decoded.t == t and decoded.data.tobytes() == data.tobytes()
