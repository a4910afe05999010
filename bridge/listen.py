"""A subscriber that prints what the bridge publishes, one line per message (``maed listen``)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from .endpoints import connect
from .keys import ClientKeys
from .protocol import Alert, FrameRows, ProtocolError, Published, ScanFinished, decode_published

REFUSALS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
"""The monitor events of a handshake the bridge refused (``refusal``)."""
RECEIVE_QUEUE = 64
"""Messages this subscriber holds unread (``zmq.RCVHWM``): a slow terminal skips to newer ones and reports the gap
in ``seq`` (bridge/PROTOCOL.md, "Slow subscribers"), instead of ZeroMQ's 1000 printed ever later."""


def _figure(value: object) -> str:
    """An evidence figure in a few characters: numbers to 3 significant figures, lists joined by slashes."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "/".join(_figure(v) for v in value)
    return f"{value:.3g}"


def _evidence(evidence: dict) -> str:
    """An alert's evidence as ``name:value`` pairs, by name (``-`` for none)."""
    return ",".join(f"{name}:{_figure(evidence[name])}" for name in sorted(evidence)) or "-"


def describe(message: Published) -> str:
    """One line about a published message."""
    if isinstance(message, ScanFinished):
        return (
            f"scan.finished {message.scan} seq={message.seq} complete={message.complete} reason={message.reason} "
            f"rows_done={message.rows_done} saved={message.saved or '-'}"
        )
    if isinstance(message, Alert):
        return (
            f"alert {message.scan} seq={message.seq} kind={message.kind} severity={message.severity} "
            f"row={message.row} columns={message.columns[0]}:{message.columns[1]} "
            f"evidence={_evidence(message.evidence)}"
        )
    if isinstance(message, FrameRows):
        return (
            f"frame.rows {message.scan} seq={message.seq} update={message.update} pass={message.pass_} "
            f"rows={message.row_start}:{message.row_stop}/{message.rows} rows_done={message.rows_done} "
            f"final={message.final} latency={message.latency_ms:.1f} ms plane={','.join(f'{p:.3g}' for p in message.plane)}"
        )
    rows, cols = message.data.shape
    scanned = message.data[np.isfinite(message.data)]
    spread = f" rms={scanned.std():.3g} {message.unit}" if scanned.size else ""
    weights = f" weights={message.weights_sha256[:12]}" if message.weights_sha256 else ""
    trust = f" {describe_trust(message.trust)}" if message.kind == "denoised" else ""
    figures = f" {describe_trace_retrace(message.trace_retrace, message.unit)}" if message.trace_retrace else ""
    return (
        f"{message.topic} {message.scan} seq={message.seq} update={message.update} pass={message.pass_} "
        f"rows_done={message.rows_done}/{rows} cols={cols} final={message.final} "
        f"latency={message.latency_ms:.1f} ms model={message.model}{weights} backend={message.backend}{spread}{trust}"
        f"{figures}"
    )


def describe_trace_retrace(figures: dict, unit: str) -> str:
    """A finished scan's trace/retrace error in a few words: the model's, the classical pipeline's and raw's, and the
    slow axis's motion during the lines where the registration found one."""
    if "skipped" in figures:
        return f"trace_retrace=- ({figures['skipped']})"
    parts = [
        f"{name}={figures[name]['value']:.3g}"
        for name in ("model", "classical", "raw")
        if isinstance(figures.get(name), dict) and isinstance(figures[name].get("value"), (int, float))
    ]
    slow = figures.get("slow_shift")
    moved = f", slow axis moved {slow:+.2f} line" if isinstance(slow, (int, float)) and slow else ""
    return f"trace_retrace[{unit}, {figures.get('rows', '?')} rows{moved}]: {' '.join(parts)}"


def describe_trust(trust: dict | None) -> str:
    """The trust guard's verdict in a few words: what was output, over how many rows, and why."""
    if not trust:
        return "trust=- (no verdict yet)"
    output = trust.get("output", "?")
    covered = f" at rows_done={trust['rows_done']}" if "rows_done" in trust else ""
    if "rows_done" in trust and trust.get("rows_judged", trust["rows_done"]) < trust["rows_done"]:
        covered += f" (the last {trust['rows_judged']} judged)"
    reasons = [str(r) for r in trust.get("reasons") or []]
    fraction = trust.get("fallback_fraction")
    share = f" {fraction:.0%} fallback" if output == "blend" and isinstance(fraction, (int, float)) else ""
    why = f": {'; '.join(reasons)}" if reasons else ""
    # The network's output kept after a figure failed and the smooth part of its residual was given back: a pass.
    passed = " (passed)" if output == "network" and reasons else ""
    return f"trust={output}{passed}{share}{covered}{why}"


WAKE_MS = 250
"""How often a quiet ``listen`` wakes, so that Ctrl-C stops it on Windows too."""


def refusal(event: int, keyed: bool) -> str | None:
    """What a failed handshake with a bridge (a ZeroMQ monitor ``event``) says of the keys, for a listener with keys
    (``keyed``) or without; None for any other event. A CURVE handshake fails without a word on the data socket: a
    subscriber without the bridge's keys, or with the wrong ones, would wait for ever."""
    if not event & REFUSALS:
        return None
    if not keyed:
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:  # a keyed bridge under load, or no bridge at all
            return (
                "the handshake failed: is that a bridge's PUB port? A bridge with keys (CURVE) needs --secret-key and "
                "--server-key (maed keys; docs/security.md)"
            )
        return "the bridge there has keys (CURVE): give --secret-key and --server-key (maed keys; docs/security.md)"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:  # the two sides speak different security mechanisms
        return "the bridge there has no keys: listen without --secret-key and --server-key"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "the bridge there does not allow this key: add its NAME.key to the bridge's --client-keys"
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return "the handshake with the bridge there failed: does it have keys, and is --server-key its NAME.key?"
    return None


def listen(
    endpoint: str,
    topic: str = "",
    count: int = 0,
    scans: int = 0,
    emit: Callable[[str], None] = print,
    context: zmq.Context | None = None,
    keys: ClientKeys | None = None,
    on_connected: Callable[[], None] | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> int:
    """Print messages from the PUB ``endpoint`` until ``count`` messages or ``scans`` finished scans (0: forever).

    Returns the number of messages printed. Gaps in ``seq`` (frames PUB dropped because this
    subscriber was slow, or that were published before it connected) are reported. A message of
    another protocol version is reported in one line, as every malformed message is. ``keys``:
    CURVE keys for a keyed bridge (without them, a keyed bridge sends nothing). ``on_connected``: called once the
    endpoint is taken (a malformed one raises ``ValueError`` first). ``on_refused``: told, once per kind, why the
    bridge refused the connection's handshake (``refusal``); listening goes on (the bridge may come back with other
    keys).
    """
    socket = (context or zmq.Context.instance()).socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
    if keys is not None:
        keys.apply(socket)
    monitor = socket.get_monitor_socket(REFUSALS)
    connect(socket, endpoint)
    socket.setsockopt_string(zmq.SUBSCRIBE, topic)
    if on_connected is not None:
        on_connected()
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    said: set[str] = set()
    printed = ended = 0
    last_seq = None
    try:
        while (count == 0 or printed < count) and (scans == 0 or ended < scans):
            ready = dict(poller.poll(WAKE_MS))  # a blocking receive cannot be interrupted by Ctrl-C on Windows
            if monitor in ready:
                why = refusal(recv_monitor_message(monitor)["event"], keys is not None)
                if why is not None and why not in said and on_refused is not None:
                    on_refused(why)
                said.add(why)
            if socket not in ready:
                continue
            try:
                message = decode_published(socket.recv_multipart())
            except ProtocolError as exc:
                emit(f"malformed message ({exc.kind}): {exc}")
                continue
            # With a topic filter, gaps are expected: the bridge numbers every message it publishes.
            if last_seq is not None and not topic and message.seq > last_seq + 1:
                emit(f"missed {message.seq - last_seq - 1} messages")
            last_seq = message.seq
            emit(describe(message))
            printed += 1
            ended += isinstance(message, ScanFinished)
    finally:
        socket.disable_monitor()
        monitor.close()
        socket.close()
    return printed
