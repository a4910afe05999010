"""The Nanonis source: follows the scans a Nanonis controller runs and feeds their lines to the bridge.

Nanonis does not push lines; its TCP interface answers requests. So the source polls: each poll
asks ``Scan.StatusGet`` whether a scan runs and grabs the frame (``Scan.FrameDataGrab``, retrace
first, then trace), in which the rows not scanned yet are NaN, and turns it into image order
(``scan_layout``: an up scan's rows and the retrace's pixels reversed). A row is new when all
its pixels are finite and it lies beyond the last row sent along the scan's slow axis;
new rows are sent at once, trace before retrace, in acquisition order, as ``line`` messages of
the wire protocol. How the polls map to ``scan.start`` and ``scan.end`` (``bridge/NANONIS.md``):

- a poll that finds a scan running and none followed opens one: ``Scan.BufferGet`` gives the
  acquired channels, whose names (from a grab of each) locate the configured channel;
  ``Scan.FrameGet`` the range, ``Scan.SpeedGet`` the default poll interval; the scan id is new;
- the frame is recognised by the rows already sent: when one of them differs (NaN after a
  restart, other values in a new frame), or the size or slow axis changed, the followed scan
  ends and, while the controller scans, a new one opens;
- a poll that finds the scan stopped ends it, complete when every row of each pass followed was sent;
- a controller that stops answering (timeout, refused, reset) is reconnected with back-off; the
  followed scan, and which rows were sent, survive the outage, so no line is sent twice or lost
  as long as the frame is still the same when the controller answers again;
- a bridge killed with its source (they share a process) resumes the scan it was following
  (``resume``, from its journal): the first poll re-grabs the frame the controller holds, running
  or stopped, and when it is that scan's frame (same size, slow axis and area, and every row the
  bridge has equal to the controller's) follows it on under its id, sending the rows the bridge
  lacks; otherwise it ends that scan (incomplete) and goes on as usual;
- in the last line of a frame the source polls every quarter of a line period (``_wait``): in a
  continuous scan the finished frame stays readable for one line period only before the next
  overwrites it, and with a poll interval longer than that its last rows would be lost.

Without rules (``on_alert``, ``maed serve --on-alert``) the source only reads from the controller. With
them it subscribes to the bridge's alerts (``alerts``, its PUB endpoint) and, for an alert of the
followed scan whose kind has a rule, sends the action (``Scan.Action`` pause, ``ZCtrl.Withdraw``) at its
next poll, once per scan and action; every command it sends is logged and kept in ``commands``, and in its scan's ``meta.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import zmq

from ..keys import ClientKeys
from ..nanonis.client import (
    DEFAULT_PORT,
    FrameGrab,
    NanonisClient,
    NanonisConnectionError,
    ScanBuffer,
    ScanSpeed,
)
from ..nanonis.protocol import NanonisError, NanonisProtocolError
from ..protocol import MAX_SIDE, Alert, Line, ProtocolError, ScanStart, decode_published
from .base import LinePusher

log = logging.getLogger("maed.bridge")

ACTION_COMMANDS = {"pause": "Scan.Action pause", "withdraw": "ZCtrl.Withdraw"}
"""The command each rule's action sends the controller, as logged (``--on-alert``)."""
COMMANDS_LOG = "controller-commands.log"
"""Where in ``maed serve --out`` every command an ``--on-alert`` rule sent the controller is kept, one JSON line each
(``time``, ``scan``, ``command``)."""
END_LINES = 2
"""A followed frame that another replaced with no more than this many acquisition steps unsent ended on its own (a
continuous scan's next frame overwrote its last rows before a poll read them: ``lines_missed``); with more, the
controller was restarted mid-frame (``restarted``)."""
MIN_POLL_S = 0.005
MAX_POLL_S = 1.0


def poll_interval_for(time_per_line: float) -> float:
    """Seconds between polls for a controller's time per line, within [MIN_POLL_S, MAX_POLL_S].

    The controller's value is checked before use: NaN, infinite, zero or negative (a confused or
    hostile controller) means the slowest poll, never a busy loop.
    """
    if not math.isfinite(time_per_line) or time_per_line <= 0:
        return MAX_POLL_S
    return min(max(time_per_line, MIN_POLL_S), MAX_POLL_S)


BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
_NAME = re.compile(r"\s*(.*?)\s*(?:\(([^()]*)\))?\s*", re.DOTALL)


class ChannelNotAcquired(ValueError):
    """The configured channel is not among the controller's acquired channels."""


class FrameNotFollowable(ValueError):
    """The controller reports a frame no scan can be made of (no pixels, more than the protocol's sides, a range
    that is no length): followed, each of its lines would be refused, one per poll, for ever."""


NAMES_LISTED = 16
"""Acquired channels a ``ChannelNotAcquired`` names at most (a controller may report thousands)."""


def split_channel_name(name: str) -> tuple[str, str]:
    """``"Z (m)"`` -> ``("Z", "m")``; a name without a unit gets ``"a.u."``."""
    bare, unit = _NAME.fullmatch(name).groups()  # DOTALL: every string matches, a newline in a name included
    return bare or name, unit or "a.u."


@dataclass
class _Followed:
    """The scan being followed: what ``scan.start`` announced and which rows were sent."""

    scan: str
    channel: int
    rows: int
    cols: int
    up: bool
    sent: np.ndarray
    """``(rows, cols)``: the trace rows as sent, NaN elsewhere; recognises the frame at each poll."""
    sent_rows: np.ndarray
    next_step: dict[str, int]
    """Per pass followed, the acquisition step (0 is the first line scanned) of the next line to send."""
    retrace_rows: np.ndarray | None = None
    """The retrace rows sent, where the retrace is followed."""

    def same_frame(self, trace: FrameGrab) -> bool:
        return (
            trace.data.shape == (self.rows, self.cols)
            and trace.up == self.up
            and np.array_equal(trace.image[self.sent_rows], self.sent[self.sent_rows])
        )

    def new_steps(self, pass_: str, image: np.ndarray) -> list[int]:
        """Acquisition steps of the complete rows (of an image-order frame) not sent yet, in scan order."""
        if image.shape != (self.rows, self.cols):
            return []
        complete = np.isfinite(image).all(axis=1)
        by_step = complete[::-1] if self.up else complete
        start = self.next_step[pass_]
        return (np.flatnonzero(by_step[start:]) + start).tolist()

    def row(self, step: int) -> int:
        return self.rows - 1 - step if self.up else step

    def steps_left(self) -> int:
        """Acquisition steps of the frame not sent yet, in the pass that lags."""
        return self.rows - min(self.next_step.values())

    @property
    def complete(self) -> bool:
        """Every row sent, in each pass followed: a retrace row lost at the frame's end (a continuous scan overwrites
        its frame one line period after its last row) leaves the scan incomplete."""
        return bool(self.sent_rows.all()) and (self.retrace_rows is None or bool(self.retrace_rows.all()))

    def rows_sent(self) -> str:
        """How many rows were sent, per pass where the passes differ: ``256 of 256 trace rows, 255 of 256 retrace``."""
        trace = int(self.sent_rows.sum())
        if self.retrace_rows is None or int(self.retrace_rows.sum()) == trace:
            return f"{trace} of {self.rows} rows"
        return f"{trace} of {self.rows} trace rows, {int(self.retrace_rows.sum())} of {self.rows} retrace"


class _Backoff:
    """Waits between reconnection attempts: doubling from ``BACKOFF_FIRST_S`` to ``BACKOFF_MAX_S``."""

    def __init__(self) -> None:
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(BACKOFF_FIRST_S * 2 ** (self.failures - 1), BACKOFF_MAX_S)


@dataclass
class NanonisSource:
    """Follows the scans of the Nanonis controller at ``host:port`` (``maed serve --source nanonis``)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    channel: str = "Z"
    """The channel to send, by name: ``Z`` (topography) matches the controller's ``Z (m)``."""
    poll_interval: float | None = None
    """Seconds between polls; None: the forward time per line of ``Scan.SpeedGet``, per scan."""
    retrace: bool = True
    scans: int = 0
    """Return after this many scans ended (0: follow until stopped)."""
    timeout: float = 2.0
    """Seconds to wait for an answer before the controller counts as not answering."""
    name: str = "nanonis"
    resume: tuple[ScanStart, list[Line]] | None = None
    """The scan a killed bridge was following, and its lines as journaled (``Recovered.resumed``):
    taken up at the first poll when the controller still holds its frame, else ended."""
    on_alert: dict[str, str] = field(default_factory=dict)
    """Alert kind to action (``maed.bridge.alerts.rules``); empty: read-only, as by default."""
    alerts: str | None = None
    """The bridge's PUB endpoint, where the alerts come from (needed with ``on_alert``)."""
    max_pixels: int = MAX_SIDE * MAX_SIDE
    """The largest frame the bridge opens a scan for (``maed serve --max-pixels``, which sets it): a larger one is not
    followed (``FrameNotFollowable``), as the bridge would refuse its ``scan.start`` and then every line."""
    commands_log: Path | None = None
    """A file every action command is appended to, with its scan, as it is sent (``maed serve``: ``COMMANDS_LOG`` in its
    ``--out``), so that what a killed bridge sent survives it: the restarted bridge's resumed scan names them (``meta.json``,
    ``status``) and says when the controller was left paused. None: kept in memory only."""
    keep_alive: float = 60.0
    """Seconds without a new line of the followed scan after which its last message is sent again
    (``LinePusher.keep_alive``), so that a scan paused on the controller, by a rule or by hand, is not ended by the
    bridge's idle timeout; ``maed serve`` sets a third of its ``--idle-timeout``."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"Nanonis port must be 1 to 65535, got {self.port}")
        if self.poll_interval is not None and not self.poll_interval > 0:
            raise ValueError(f"poll interval must be positive seconds, got {self.poll_interval}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {self.timeout}")
        if not self.keep_alive > 0:
            raise ValueError(f"keep-alive must be positive seconds, got {self.keep_alive}")
        self._last_sent = 0.0
        """``time.monotonic()`` of the last message sent for the followed scan."""
        self._followed: _Followed | None = None
        self._interval = self.poll_interval or MAX_POLL_S  # until Scan.SpeedGet is read
        self._line_period = 0.0
        """Seconds per acquisition step (trace and retrace) of the followed scan; 0 when not known."""
        self._ended = 0
        self._opened = 0
        self._idle_said = False
        """Whether the controller's idling was said since the last scan opened (once: the source polls on)."""
        self._answered_at: float | None = None
        """``time.monotonic()`` of the last poll the controller answered; None before the first."""
        self._problem: str | None = None
        """Why the last poll failed; None where it was answered."""
        self._commands: list[tuple[str, str]] = []
        """Every action command sent to the controller, as logged, with the scan whose alert it answered."""
        self._acted: set[tuple[str, str]] = set()
        """(scan, action) already taken up: one pause or withdraw per scan is enough."""
        self._pending: list[tuple[Alert, str]] = []
        """Actions to send, oldest first (kept through a reconnection)."""

    @property
    def commands(self) -> list[str]:
        """Every action command sent to the controller, as logged, oldest first."""
        return [text for _, text in self._commands]

    def commands_for(self, scan: str) -> list[str]:
        """The action commands sent on alerts of ``scan``, as logged, oldest first (its ``meta.json``)."""
        return [text for of, text in self._commands if of == scan]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _all_done(self) -> bool:
        return bool(self.scans) and self._ended >= self.scans

    def check(self) -> str:
        """Connect once and find the channel: a one-line ``ValueError`` when either fails; returns its name."""
        try:
            with NanonisClient(self.host, self.port, self.timeout) as client:
                return self._find_channel(client, client.scan_buffer())[1]
        except (NanonisConnectionError, NanonisProtocolError, NanonisError) as exc:
            raise ValueError(str(exc)) from None

    def status(self) -> dict:
        """The controller as the source last saw it, for the bridge's ``status`` (``bridge/PROTOCOL.md``): whether
        its last poll was answered, how long ago one was, why the last one failed, whether a scan is followed, and
        every action command a rule sent (``--on-alert``)."""
        answered = self._answered_at
        return {
            "kind": "nanonis",
            "address": self.address,
            "answering": self._problem is None and answered is not None,
            "last_answer_s": None if answered is None else round(time.monotonic() - answered, 3),
            "problem": self._problem,
            "following": None if self._followed is None else self._followed.scan,
            "commands": self.commands,  # a new list at each read
        }

    def run(self, endpoint: str, stop: threading.Event, keys: ClientKeys | None = None) -> None:
        if self.resume is not None:
            self._take_up_commands(self.resume[0].scan)
        pusher = LinePusher(endpoint, keys=keys)
        client: NanonisClient | None = None
        backoff = _Backoff()
        last_problem, lost = "", False
        alerts = self._subscribe(keys)
        try:
            while not stop.is_set() and not self._all_done:
                problem = ""
                try:
                    if client is None:
                        client = NanonisClient(self.host, self.port, self.timeout)
                    if alerts is not None:
                        self._act(client, alerts)
                    self._poll(client, pusher)
                    self._answered_at, self._problem = time.monotonic(), None
                    backoff.failures, wait = 0, self._wait()
                    if lost:  # only an answered poll counts: a frozen controller still accepts connections
                        log.info("nanonis: reconnected to %s", self.address)
                        lost = False
                except (NanonisConnectionError, NanonisProtocolError) as exc:
                    # The connection may still deliver a late answer: drop it, keep the followed scan.
                    if client is not None:
                        client.close()
                        client = None
                    problem, wait, lost = f"{exc}; reconnecting", backoff.next(), True
                except (NanonisError, ChannelNotAcquired, FrameNotFollowable) as exc:
                    # The followed scan cannot be read any more: end it, look again later.
                    self._end(pusher, complete=False, why="unreadable")
                    problem, wait = str(exc), backoff.next()
                except Exception as exc:  # a reply no check foresaw: the source must outlive it, as it outlives a lost link
                    if client is not None:
                        client.close()
                        client = None
                    self._end(pusher, complete=False, why="unreadable")
                    problem, wait, lost = f"an unexpected reply ({type(exc).__name__}: {exc}); reconnecting", backoff.next(), True
                if problem:
                    self._problem = problem
                if problem and problem != last_problem:
                    log.warning("nanonis: %s", problem)
                last_problem = problem
                stop.wait(wait)
        finally:
            self._end(pusher, complete=False, why="source_stopped")
            if client is not None:
                client.close()
            if alerts is not None:
                alerts.close()
            pusher.close()

    # --- rules on alerts ------------------------------------------------------------------------

    def _subscribe(self, keys: ClientKeys | None) -> zmq.Socket | None:
        """A SUB socket on the bridge's alerts, when there are rules; None without (read-only)."""
        if not self.on_alert:
            return None
        if self.alerts is None:
            raise ValueError("rules on alerts need the bridge's PUB endpoint (alerts)")
        socket = zmq.Context.instance().socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            keys.apply(socket)
        socket.connect(self.alerts)
        socket.setsockopt(zmq.SUBSCRIBE, b"alert")
        return socket

    def _act(self, client: NanonisClient, alerts: zmq.Socket) -> None:
        """Send the action of every rule an alert of the followed scan met since the last poll. An action the
        controller refuses is logged and dropped; one whose connection failed is sent again after the
        reconnection (``NanonisConnectionError`` goes on to ``run``)."""
        while alerts.poll(0):
            try:
                alert = decode_published(alerts.recv_multipart())
            except ProtocolError:
                continue
            followed = self._followed
            action = self.on_alert.get(alert.kind) if isinstance(alert, Alert) else None
            if action is None or followed is None or alert.scan != followed.scan:
                continue
            if alert.evidence.get("recovered") == 1:  # found again on lines a restarted bridge rebuilt: acted on before
                continue
            if (alert.scan, action) not in self._acted:
                self._acted.add((alert.scan, action))
                self._pending.append((alert, action))
        while self._pending:
            alert, action = self._pending[0]
            command = ACTION_COMMANDS[action]
            # Logged before it is sent: a command that fails must still show in the log.
            log.warning(
                "nanonis: %s at row %d of scan %s (rule %s=%s): sending %s to %s",
                alert.kind,
                alert.row,
                alert.scan,
                alert.kind,
                action,
                command,
                self.address,
            )
            self._commands.append((alert.scan, f"{command} ({alert.kind} at row {alert.row} of {alert.scan})"))
            self._record_command(*self._commands[-1])
            try:
                if action == "pause":
                    client.scan_action("pause")
                else:
                    client.z_withdraw()
            except NanonisError as exc:
                log.error("nanonis: %s refused: %s", command, exc)
            self._pending.pop(0)

    def _record_command(self, scan: str, text: str) -> None:
        """Append the command ``text`` sent on an alert of ``scan`` to ``commands_log`` and make it durable, before the
        command goes out (a bridge killed as it sends it has said it)."""
        if self.commands_log is None:
            return
        entry = json.dumps({"time": datetime.now().astimezone().isoformat(timespec="seconds"), "scan": scan, "command": text})
        try:
            fd = os.open(self.commands_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
            try:
                os.write(fd, (entry + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("nanonis: cannot record the command in %s: %s", self.commands_log, exc.strerror or exc)

    def _take_up_commands(self, scan: str) -> None:
        """The commands a killed bridge sent on alerts of ``scan`` (the scan resumed), from ``commands_log``: named
        again in its record and ``status``, not sent again, and a pause they left on the controller said."""
        if self.commands_log is None:
            return
        try:
            lines = Path(self.commands_log).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return  # no command was ever recorded there
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by the crash
            if isinstance(entry, dict) and entry.get("scan") == scan and isinstance(entry.get("command"), str):
                self._commands.append((scan, entry["command"]))
                self._acted |= {(scan, a) for a, sent in ACTION_COMMANDS.items() if entry["command"].startswith(sent)}
        taken = self.commands_for(scan)
        if taken:
            log.warning(
                "nanonis: before the bridge restarted, its rules sent %s on scan %s; %s",
                "; ".join(taken),
                scan,
                "it was left paused: unless someone resumed it since, the controller waits for you to resume the scan "
                "(Nanonis: Scan > Resume)"
                if taken[-1].startswith(ACTION_COMMANDS["pause"])
                else "the tip was withdrawn: approach it again on the controller",
            )

    # --- one poll -----------------------------------------------------------------------------

    def _wait(self) -> float:
        """Seconds to the next poll: the poll interval, but no later than the earliest end of the followed
        frame, and every quarter line period in its last line (a continuous scan's finished frame stays
        readable for one line period)."""
        followed, period = self._followed, self._line_period
        if followed is None or period <= 0:
            return self._interval
        left = followed.steps_left()
        until_end = (left - 1) * period if left > 1 else period / 4
        return min(self._interval, max(until_end, MIN_POLL_S))

    def _poll(self, client: NanonisClient, pusher: LinePusher) -> None:
        running = client.scan_status()
        if self.resume is not None:
            self._resume(client, pusher)
        followed = self._followed
        if followed is not None:
            retrace, trace = self._grab(client, followed.channel)
            if followed.same_frame(trace):
                self._send_new(pusher, followed, trace, retrace)
                if not running:  # stopped mid-frame, or at its end with a line the polls missed
                    self._end(pusher, followed.complete, why="stopped" if not followed.sent_rows.all() else "lines_missed")
                elif time.monotonic() - self._last_sent >= self.keep_alive:  # paused: the frame holds, no line comes
                    pusher.keep_alive(followed.scan)
                    self._last_sent = time.monotonic()
                return
            # Another frame: restarted, resized, turned round, or a continuous scan's next one. With at most its last
            # line or two unsent, the frame had come to its end and the polls were late for those (a busy PC).
            at_end = followed.steps_left() <= END_LINES
            if at_end and not followed.complete:
                log.warning(
                    "nanonis: scan %s: its last rows were overwritten by the controller's next frame before a poll read "
                    "them (%s); polls came late (a busy computer?)",
                    followed.scan,
                    followed.rows_sent(),
                )
            self._end(pusher, followed.complete, why="lines_missed" if at_end else "restarted")
        if running and not self._all_done:
            self._open(client, pusher)
            self._idle_said = False
        else:
            self._set_interval(client.scan_speed())
            if not running and not self._idle_said:  # a bridge that says nothing looks dead to the person at it
                log.info("nanonis: no scan running at %s: waiting for the next one", self.address)
                self._idle_said = True

    def _grab(self, client: NanonisClient, channel: int) -> tuple[FrameGrab | None, FrameGrab]:
        """Retrace (when wanted), then trace: should the frame change in between, the trace shows it."""
        retrace = client.frame_data_grab(channel, forward=False) if self.retrace else None
        return retrace, client.frame_data_grab(channel, forward=True)

    def _set_interval(self, speed: ScanSpeed) -> None:
        self._interval = self.poll_interval or poll_interval_for(speed.forward_time_per_line)
        period = speed.forward_time_per_line + speed.backward_time_per_line
        self._line_period = period if math.isfinite(period) and period > 0 else 0.0

    def _first_steps(self) -> dict[str, int]:
        return {"trace": 0, "retrace": 0} if self.retrace else {"trace": 0}

    def _resume(self, client: NanonisClient, pusher: LinePusher) -> None:
        """Take up the scan of ``resume`` if the controller still holds its frame; else end it, so that the
        bridge saves it at once. Raises what the controller's answers raise (the next poll tries again)."""
        start, lines = self.resume
        index, _ = self._find_channel(client, client.scan_buffer())
        frame, speed = client.scan_frame(), client.scan_speed()
        retrace, trace = self._grab(client, index)
        followed = _Followed(
            start.scan,
            index,
            start.rows,
            start.cols,
            start.slow_axis == "up",
            np.full((start.rows, start.cols), np.nan, np.float32),
            np.zeros(start.rows, bool),
            self._first_steps(),
        )
        had = {"trace": followed.sent, "retrace": np.full_like(followed.sent, np.nan)}
        for line in lines:
            had[line.pass_][line.row] = line.data
            if line.pass_ in followed.next_step:
                step = start.rows - 1 - line.row if followed.up else line.row
                followed.next_step[line.pass_] = max(followed.next_step[line.pass_], step + 1)
        followed.sent_rows[:] = np.isfinite(followed.sent).all(axis=1)
        if self.retrace:
            followed.retrace_rows = np.isfinite(had["retrace"]).all(axis=1)
        same_area = (
            tuple(start.range) == (frame.width, frame.height)
            and start.extra.get("angle") == frame.angle
            and start.extra.get("center") == [frame.center_x, frame.center_y]
        )
        retrace_rows = np.isfinite(had["retrace"]).all(axis=1)
        same_retrace = retrace is None or (
            retrace.image.shape == had["retrace"].shape and np.array_equal(retrace.image[retrace_rows], had["retrace"][retrace_rows])
        )
        self.resume = None
        if same_area and same_retrace and followed.same_frame(trace):
            self._followed = followed
            self._set_interval(speed)
            log.info(
                "nanonis: resuming scan %s after a restart: %d of %d rows were journaled",
                start.scan,
                int(followed.sent_rows.sum()),
                start.rows,
            )
        else:
            pusher.end(start.scan, complete=False, why="restarted")
            log.info("nanonis: scan %s, resumed from the journal, is no longer the controller's frame: ended", start.scan)

    def _open(self, client: NanonisClient, pusher: LinePusher) -> None:
        buffer = client.scan_buffer()
        index, name = self._find_channel(client, buffer)
        frame = client.scan_frame()
        speed = client.scan_speed()
        if not (1 <= buffer.lines <= MAX_SIDE and 1 <= buffer.pixels <= MAX_SIDE):
            raise FrameNotFollowable(f"Nanonis reports a frame of {buffer.lines} x {buffer.pixels} pixels (1 to {MAX_SIDE} a side)")
        if buffer.lines * buffer.pixels > self.max_pixels:
            raise FrameNotFollowable(
                f"Nanonis scans {buffer.lines} x {buffer.pixels} pixels, over the bridge's --max-pixels {self.max_pixels}"
            )
        if not all(math.isfinite(v) and v > 0 for v in (frame.width, frame.height)):
            raise FrameNotFollowable(f"Nanonis reports a frame of {frame.width} x {frame.height} m")
        retrace, trace = self._grab(client, index)
        if trace.data.shape != (buffer.lines, buffer.pixels):
            return  # the buffer is being changed under us: look again at the next poll
        self._set_interval(speed)
        self._opened += 1
        # Milliseconds too: a bridge restarted within the second must not reuse the id of a scan it saved.
        scan = f"nanonis-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')[:-3]}-{self._opened}"
        label, unit = split_channel_name(name)
        slow_axis = "up" if trace.up else "down"
        line_time = speed.forward_time_per_line + speed.backward_time_per_line
        extra = {"angle": frame.angle, "center": [frame.center_x, frame.center_y]}
        if line_time > 0:
            extra["line_rate"] = 1.0 / line_time
        pusher.start(scan, buffer.lines, buffer.pixels, (frame.width, frame.height), slow_axis=slow_axis, channel=label, unit=unit, **extra)
        self._last_sent = time.monotonic()
        self._followed = followed = _Followed(
            scan,
            index,
            buffer.lines,
            buffer.pixels,
            trace.up,
            np.full(trace.data.shape, np.nan, np.float32),
            np.zeros(buffer.lines, bool),
            self._first_steps(),
            np.zeros(buffer.lines, bool) if self.retrace else None,
        )
        log.info("nanonis: following scan %s: %s, %d x %d, %s", scan, name, buffer.lines, buffer.pixels, slow_axis)
        self._send_new(pusher, followed, trace, retrace)

    def _find_channel(self, client: NanonisClient, buffer: ScanBuffer) -> tuple[int, str]:
        """Index and full name of the acquired channel named ``self.channel`` (``Z`` matches ``Z (m)``).

        ``Scan.BufferGet`` gives indexes only; a grab of each channel tells its name.
        """
        names = []
        for index in buffer.channels:
            name = client.frame_data_grab(index, forward=True).channel
            if self.channel.lower() in (name.lower(), split_channel_name(name)[0].lower()):
                return index, name
            names.append(name[:64])
        listed = ", ".join(names[:NAMES_LISTED]) + (f" and {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED else "")
        raise ChannelNotAcquired(f"channel {self.channel!r} is not acquired by Nanonis at {self.address} (acquired: {listed or 'none'})")

    def _send_new(self, pusher: LinePusher, followed: _Followed, trace: FrameGrab, retrace: FrameGrab | None) -> None:
        t = time.time()
        images = {"trace": trace.image} if retrace is None else {"trace": trace.image, "retrace": retrace.image}
        new = {(step, pass_) for pass_, data in images.items() for step in followed.new_steps(pass_, data)}
        # In acquisition order: step by step, each trace before its retrace.
        for step, pass_ in sorted(new, key=lambda item: (item[0], item[1] == "retrace")):
            row = followed.row(step)
            pusher.line(followed.scan, row, images[pass_][row], pass_=pass_, t=t)
            self._last_sent = time.monotonic()
            followed.next_step[pass_] = step + 1
            if pass_ == "trace":
                followed.sent[row] = images["trace"][row]
                followed.sent_rows[row] = True
            elif followed.retrace_rows is not None:
                followed.retrace_rows[row] = True

    def _end(self, pusher: LinePusher, complete: bool, why: str) -> None:
        """End the followed scan; ``why``: what ended it (``protocol.WHY_ENDED``), said where it ended early."""
        if self._followed is None:
            return
        pusher.end(self._followed.scan, complete, why=None if complete else why)
        log.info(
            "nanonis: scan %s ended (%s, %s)",
            self._followed.scan,
            "complete" if complete else f"incomplete: {why.replace('_', ' ')}",
            self._followed.rows_sent(),
        )
        self._followed = None
        self._ended += 1
