"""Wire protocol v2: every message round-trips, one message type per topic, version 1 refused, every
malformed kind is named, and a fuzzer finds no crash."""

import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maed.bridge.protocol import (
    FAULT_KINDS,
    INGEST_TOPICS,
    PUBLISHED_TOPICS,
    TOPICS,
    VERSION,
    Alert,
    Frame,
    FrameRows,
    Line,
    ProtocolError,
    ScanEnd,
    ScanFinished,
    ScanJournaled,
    ScanStart,
    decode_ingest,
    decode_published,
    encode,
    levelling,
)

LABELS = dict(
    rows_done=2,
    final=False,
    model="rt",
    backend="onnx",
    latency_ms=12.5,
    pass_="trace",
    update=1,
    slow_axis="down",
    channel="Z",
    unit="m",
    range=(1e-8, 2e-8),
)


def start(**changes):
    header = {"v": 2, "scan": "s1", "seq": 0, "rows": 4, "cols": 3, "channel": "Z", "unit": "m", "range": [1e-8, 1e-8], "slow_axis": "down"}
    header.update(changes)
    return [b"scan.start", msgpack.packb({k: v for k, v in header.items() if v is not ...})]


def line(payload=None, **changes):
    header = {"v": 2, "scan": "s1", "seq": 1, "row": 0, "pass": "trace", "t": 1.5, "dtype": "<f4", "shape": [3]}
    header.update(changes)
    data = np.array([1e-10, 2e-10, 3e-10], "<f4").tobytes() if payload is None else payload
    return [b"line", msgpack.packb({k: v for k, v in header.items() if v is not ...}), data]


def frame(kind="denoised", **changes):
    data = np.full((4, 3), np.nan, np.float32)
    data[:2] = np.arange(6).reshape(2, 3)
    return Frame(kind=kind, scan="s", seq=3, data=data, **{**LABELS, **changes})


def rows_message(**changes):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    fields = dict(scan="s", seq=5, rows=4, row_start=1, data=data, plane=(1.0, 0.5, -0.25), offsets=(), **LABELS)
    return FrameRows(**{**fields, **changes})


def test_ingest_messages_round_trip():
    s = ScanStart(
        scan="scan-α", seq=7, rows=512, cols=256, channel="Z", unit="m", range=(2e-8, 1e-8), slow_axis="up", extra={"line_rate": 4.0}
    )
    assert decode_ingest(encode(s)) == s
    data = np.linspace(-1e-9, 1e-9, 256, dtype="<f4")
    decoded = decode_ingest(encode(Line(scan="scan-α", seq=8, row=511, pass_="retrace", t=123.25, data=data)))
    assert (decoded.scan, decoded.seq, decoded.row, decoded.pass_, decoded.t) == ("scan-α", 8, 511, "retrace", 123.25)
    assert decoded.data.tobytes() == data.tobytes()
    assert decode_ingest(encode(ScanEnd(scan="scan-α", seq=9, complete=False))) == ScanEnd(scan="scan-α", seq=9, complete=False)
    stopped = ScanEnd(scan="s", seq=9, complete=False, why="stopped")
    assert decode_ingest(encode(stopped)) == stopped  # what ended it, where the controller knows
    frames = encode(stopped)
    header = msgpack.unpackb(frames[1], raw=False)
    with pytest.raises(ProtocolError, match="'why' must be one of"):
        decode_ingest([frames[0], msgpack.packb({**header, "why": "bored"}, use_bin_type=True)])


def test_published_messages_round_trip():
    f = frame()
    decoded = decode_published(encode(f))
    assert decoded.topic == "frame.denoised" and decoded.rows_done == 2 and decoded.latency_ms == 12.5
    assert decoded.pass_ == "trace" and decoded.slow_axis == "down" and decoded.trust is None
    assert decoded.data.tobytes() == f.data.tobytes()  # NaN rows too, bit for bit
    ended = ScanFinished(scan="s", seq=4, complete=True, reason="end", rows_done=4, saved="/tmp/x")
    assert decode_published(encode(ended)) == ended
    alert = Alert(scan="s", seq=6, kind="tip_change", row=17, columns=(0, 64), severity="warning", evidence={"step_m": 2e-10})
    assert decode_published(encode(alert)) == alert


def test_records_are_keyword_only():
    with pytest.raises(TypeError):
        ScanEnd("s", 0, True)
    with pytest.raises(TypeError):
        Frame("raw", "s", 0, 1, False, "m", "b", 0.0, "trace", 0, "down", "Z", "m", (1.0, 1.0), np.zeros((1, 1)))


def test_header_words_are_pass_and_slow_axis():
    header = msgpack.unpackb(encode(frame())[1])
    assert header["pass"] == "trace" and header["slow_axis"] == "down" and header["v"] == 2
    assert not {"dir", "direction", "pass_"} & set(header)
    assert msgpack.unpackb(line()[1])["pass"] == "trace"


def test_frame_rows_round_trip_and_rebuild_the_frame():
    m = rows_message()
    header = msgpack.unpackb(encode(m)[1])
    assert (header["row_start"], header["row_stop"], header["shape"], header["plane"], header["offsets"]) == (
        1,
        3,
        [2, 3],
        [1.0, 0.5, -0.25],
        [],
    )
    decoded = decode_published(encode(m))
    assert isinstance(decoded, FrameRows) and decoded.row_stop == 3 and decoded.plane == (1.0, 0.5, -0.25)
    levelled = np.zeros((4, 3), np.float32)
    out = decoded.apply(levelled)
    expected = levelled + levelling((1.0, 0.5, -0.25), (), 3, 4, 0, 4)
    np.testing.assert_allclose(out, expected.astype(np.float32))
    np.testing.assert_array_equal(levelled[1:3], m.data)  # pasted in place
    # Per-row offsets apply to every row, not only to those sent.
    with_offsets = decode_published(encode(rows_message(offsets=(0.0, 1.0, 2.0, 3.0), plane=(0.0, 0.0, 0.0))))
    np.testing.assert_allclose(with_offsets.apply(np.zeros((4, 3), np.float32))[[0, 3], 0], [0.0, 3.0])


def test_trust_and_trace_retrace_figures_ride_on_denoised_frames():
    trust = {
        "output": "blend",
        "reasons": ["residual follows the image locally (0.91)"],
        "fallback_fraction": 0.12,
        "figures": {"whiteness_x": 0.02, "whiteness_y": 0.03, "peaks_kept": None},
        "rows_done": 2,
    }
    f = frame(trust=trust, trace_retrace={"rms_m": 1e-11})
    decoded = decode_published(encode(f))
    assert decoded.trust == trust and decoded.trace_retrace == {"rms_m": 1e-11}


def test_every_denoised_header_has_trust_and_every_frame_may_name_its_weights():
    header = msgpack.unpackb(encode(frame())[1])
    assert "trust" in header and header["trust"] is None  # null before the guard's first verdict
    assert "trust" not in msgpack.unpackb(encode(frame("raw", trust={"output": "network"}))[1])
    sha = "ab" * 32
    for message in (frame(weights_sha256=sha), frame("raw", weights_sha256=sha), rows_message(weights_sha256=sha)):
        assert msgpack.unpackb(encode(message)[1])["weights_sha256"] == sha
        assert decode_published(encode(message)).weights_sha256 == sha
    assert decode_published(encode(frame())).weights_sha256 is None  # a header without it still reads
    frames = encode(frame())
    header = msgpack.unpackb(frames[1], raw=False)
    for bad in ({"trust": [1, 2]}, {"trust": "network"}, {"weights_sha256": 12}):
        with pytest.raises(ProtocolError) as info:
            decode_published([frames[0], msgpack.packb({**header, **bad}), frames[2]])
        assert info.value.kind == "field"


# --- one message type per topic, and the version ---------------------------------------------


def test_each_topic_carries_one_message_type():
    messages = [
        ScanStart(scan="s", seq=0, rows=4, cols=3, channel="Z", unit="m", range=(1.0, 1.0), slow_axis="down"),
        Line(scan="s", seq=1, row=0, pass_="trace", t=0.0, data=np.zeros(3, "<f4")),
        ScanEnd(scan="s", seq=2, complete=True),
        frame("raw"),
        frame("denoised"),
        rows_message(),
        ScanFinished(scan="s", seq=4, complete=True, reason="end", rows_done=4, saved=""),
        ScanJournaled(scan="s", seq=5, journaled_seq=2),
        Alert(scan="s", seq=6, kind="k", row=0, columns=(0, 1), severity="info", evidence={}),
    ]
    seen = {}
    for message in messages:
        frames = encode(message)
        topic = frames[0].decode()
        decoded = (decode_ingest if topic in INGEST_TOPICS else decode_published)(frames)
        assert type(decoded) is TOPICS[topic][0] and len(frames) == TOPICS[topic][1]
        seen.setdefault(topic, set()).add(type(decoded))
    assert set(seen) == set(TOPICS) == set(INGEST_TOPICS) | set(PUBLISHED_TOPICS)
    assert all(len(types) == 1 for types in seen.values())
    assert not set(INGEST_TOPICS) & set(PUBLISHED_TOPICS)  # the bridge's scan.end of version 1 is gone
    # ZeroMQ subscriptions match prefixes: subscribing to one topic must never bring in another.
    assert not [(a, b) for a in TOPICS for b in TOPICS if a != b and b.startswith(a)]


def test_a_version_1_message_is_refused_with_a_clear_reason():
    with pytest.raises(ProtocolError) as info:
        decode_ingest(line(v=1, dir="fwd", **{"pass": ...}))
    assert info.value.kind == "version"
    assert "version 1 is not supported" in str(info.value) and f"version {VERSION}" in str(info.value)
    v1_end = [b"scan.end", msgpack.packb({"v": 1, "scan": "s", "seq": 3, "complete": True, "reason": "end", "rows_done": 4, "saved": ""})]
    with pytest.raises(ProtocolError) as info:
        decode_published(v1_end)
    assert info.value.kind in ("version", "topic")


@pytest.mark.parametrize("v", [True, 2.0, 1, 3, "2", None, [2]])
def test_v_must_be_the_integer_2(v):
    with pytest.raises(ProtocolError) as info:
        decode_ingest(start(v=v))
    assert info.value.kind == "version"
    with pytest.raises(ProtocolError) as info:
        decode_published(
            [
                b"scan.finished",
                msgpack.packb({"v": v, "scan": "s", "seq": 0, "complete": True, "reason": "end", "rows_done": 1, "saved": ""}),
            ]
        )
    assert info.value.kind == "version"


def test_unknown_header_keys_are_kept_or_ignored():
    header = msgpack.unpackb(start()[1])
    header["angle"] = 30.0
    header["tip"] = {"history": [[1, 2], [3, [4, [5]]]]}  # nested within the budget
    message = decode_ingest([b"scan.start", msgpack.packb(header)])
    assert message.extra == {"angle": 30.0, "tip": {"history": [[1, 2], [3, [4, [5]]]]}}


@pytest.mark.parametrize(
    "frames, kind",
    [
        ([b"line", b"x"], "frames"),
        ([b"scan.start"], "frames"),
        (start() + [b"extra"], "frames"),
        ([b"scan.stop", b"\x80"], "topic"),
        ([b"\xff\xfe", b"\x80"], "topic"),
        ([b"frame.raw", b"\x80", b""], "version"),  # published topics are refused after their header is read
        ([b"scan.finished", msgpack.packb({"v": 2})], "topic"),
        ([b"scan.start", b"\xc1"], "header"),
        ([b"scan.start", msgpack.packb([1, 2])], "header"),
        (start(v=1), "version"),
        (start(v=...), "version"),
        (start(v=True), "version"),
        (start(v=2.0), "version"),
        (start(rows=...), "field"),
        (start(rows=0), "field"),
        (start(rows=5000), "field"),
        (start(cols=True), "field"),
        (start(range=[1e-8]), "field"),
        (start(range=[-1.0, 1.0]), "field"),
        (start(range=[math.inf, 1.0]), "field"),
        (start(slow_axis="left"), "field"),
        # The controller's own keys, nested past the budget (1000 deep broke saving the scan, at every restart) or too many.
        (start(deep=[[[[[[[[[0]]]]]]]]]), "field"),
        (start(many=list(range(5000))), "field"),
        (start(slow_axis=...), "field"),
        (start(slow_axis=..., direction="down"), "field"),  # the version 1 word is not read
        (start(scan=""), "field"),
        (start(seq=-1), "field"),
        (line(**{"pass": "up"}), "field"),
        (line(**{"pass": "fwd"}), "field"),
        (line(**{"pass": "forward"}), "field"),  # aliases are for people, the wire has one word
        (line(**{"pass": ...}, dir="fwd"), "field"),
        (line(t="now"), "field"),
        (line(row=-1), "row_range"),
        (line(dtype="<f8"), "dtype"),
        (line(dtype=...), "field"),
        (line(shape=[4]), "shape"),
        (line(shape=[1, 3]), "shape"),
        (line(payload=b"\x00" * 11), "shape"),
        (line(payload=np.array([0, np.nan, 0], "<f4").tobytes()), "non_finite"),
        (line(payload=np.array([0, -np.inf, 0], "<f4").tobytes()), "non_finite"),
    ],
)
def test_malformed_messages_name_their_kind(frames, kind):
    with pytest.raises(ProtocolError) as info:
        decode_ingest(frames)
    assert info.value.kind == kind


def test_published_topics_are_not_ingest():
    with pytest.raises(ProtocolError) as info:
        decode_ingest(encode(frame("raw")))
    assert info.value.kind == "topic"


@pytest.mark.parametrize(
    "changes",
    [
        {"row_start": 3},  # two rows from row 3 run past the frame
        {"plane": (1.0, 2.0)},
        {"plane": (1.0, math.nan, 0.0)},
        {"offsets": (0.0, 1.0)},  # neither none nor one per frame row
    ],
)
def test_malformed_frame_rows_are_refused(changes):
    m = rows_message()
    frames = encode(m)
    header = msgpack.unpackb(frames[1], raw=False)
    for key, value in changes.items():
        header[key] = list(value) if isinstance(value, tuple) else value
        if key == "row_start":
            header["row_stop"] = value + 2
    with pytest.raises(ProtocolError):
        decode_published([frames[0], msgpack.packb(header), frames[2]])


# --- fuzzing ----------------------------------------------------------------------------------

FUZZ_TOPICS = [t.encode() for t in TOPICS] + [b"", b"x" * 50]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
KEYS = [
    "v",
    "scan",
    "seq",
    "rows",
    "cols",
    "channel",
    "unit",
    "range",
    "slow_axis",
    "row",
    "pass",
    "t",
    "dtype",
    "shape",
    "complete",
    "rows_done",
    "final",
    "model",
    "backend",
    "latency_ms",
    "update",
    "saved",
    "reason",
    "row_start",
    "row_stop",
    "plane",
    "offsets",
    "trust",
    "trace_retrace",
    "kind",
    "columns",
    "severity",
    "evidence",
    "weights_sha256",
]


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
    topic=st.sampled_from(FUZZ_TOPICS),
    header=st.dictionaries(st.sampled_from(KEYS), values, max_size=len(KEYS)),
    payload=st.none() | st.binary(max_size=64),
)
def test_fuzz_headers_only_raise_protocol_errors(topic, header, payload):
    frames = [topic, msgpack.packb(header, use_bin_type=True)] + ([payload] if payload is not None else [])
    _check(frames)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["v", "scan", "seq", "row", "pass", "t", "dtype", "shape"]),
    value=values,
    data=st.lists(st.floats(width=32), min_size=1, max_size=16),
)
def test_fuzz_one_bad_field_in_a_line(field, value, data):
    payload = np.array(data, "<f4")
    header = {"v": 2, "scan": "s", "seq": 0, "row": 0, "pass": "trace", "t": 0.0, "dtype": "<f4", "shape": [payload.size]}
    header[field] = value
    frames = [b"line", msgpack.packb(header, use_bin_type=True), payload.tobytes()]
    try:
        message = decode_ingest(frames)
    except ProtocolError as exc:
        assert exc.kind in FAULT_KINDS
    else:  # what the decoder accepts is well formed
        assert isinstance(message, Line) and np.isfinite(message.data).all()
        assert message.data.tobytes() == payload.tobytes()
        assert message.pass_ in ("trace", "retrace")


@settings(max_examples=200, deadline=None)
@given(
    scan=st.text(min_size=1, max_size=40),
    seq=st.integers(0, 2**63),
    rows=st.integers(1, 4096),
    cols=st.integers(1, 64),
    slow_axis=st.sampled_from(["down", "up"]),
    pass_=st.sampled_from(["trace", "retrace"]),
    t=st.floats(allow_nan=False, allow_infinity=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_valid_messages_round_trip(scan, seq, rows, cols, slow_axis, pass_, t, seed):
    s = ScanStart(scan=scan, seq=seq, rows=rows, cols=cols, channel="Z", unit="m", range=(1e-9, 2e-9), slow_axis=slow_axis)
    assert decode_ingest(encode(s)) == s
    data = np.random.default_rng(seed).standard_normal(cols).astype("<f4")
    decoded = decode_ingest(encode(Line(scan=scan, seq=seq, row=rows - 1, pass_=pass_, t=t, data=data)))
    assert decoded.row == rows - 1 and decoded.pass_ == pass_ and decoded.t == t
    assert decoded.data.tobytes() == data.tobytes()


START_HEADER = {
    "v": 2,
    "scan": "s",
    "seq": 0,
    "rows": 8,
    "cols": 8,
    "channel": "Z",
    "unit": "m",
    "range": [1e-8, 1e-8],
    "slow_axis": "down",
}


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.text(max_size=6) | st.binary(max_size=6), values, max_size=4))
def test_fuzz_scan_start_keys_of_any_msgpack_type(extra):
    # A key that is not a string is refused at once (issue 13: a bytes key was accepted, then never saved).
    frames = [b"scan.start", msgpack.packb({**START_HEADER, **extra}, use_bin_type=True)]
    try:
        message = decode_ingest(frames)
    except ProtocolError as exc:
        assert exc.kind in FAULT_KINDS
        assert exc.kind != "header" or any(not isinstance(k, str) for k in extra)
    else:
        assert all(isinstance(k, str) for k in extra) and set(message.extra) <= set(extra)


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3), payload=st.binary(max_size=64))
def test_fuzz_declared_shapes_never_allocate_more_than_the_payload(shape, payload):
    header = {"v": 2, "scan": "s", "seq": 0, "row": 0, "pass": "trace", "t": 0.0, "dtype": "<f4", "shape": shape}
    try:
        message = decode_ingest([b"line", msgpack.packb(header), payload])
    except ProtocolError as exc:
        assert exc.kind in ("shape", "non_finite")
    else:  # a view of the payload received, never an array of the declared size
        assert message.data.base is not None and message.data.nbytes == len(payload)
