"""The bridge's subcommands of ``maed``: ``serve``, ``listen``, ``control``, ``keys``, ``push-sim`` and ``sim-nanonis``.

Registered by ``maed.cli``; everything heavy is imported when a command runs, so ``maed --help``
stays fast. User mistakes raise ``ValueError`` (one-line error from ``maed.cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from functools import partial
from pathlib import Path

SLOW_AXES = ("down", "up", "alternate")
ADAPT_MINUTES = 2.0
TOKEN_VARIABLE = "MAED_PREVIEW_TOKEN"


SOURCE_STOP_S = 10.0
"""Seconds a stopping bridge waits for its source to end the scan it follows (a Nanonis reply it is still reading)."""
SIM_SIZE, SIM_LINE_RATE = 256, 20.0
SIM_ONLY = {
    "size": "--size",
    "line_rate": "--line-rate",
    "seed": "--seed",
    "slow_axis": "--slow-axis",
    "deprecated_direction": "--direction",
}
"""``maed serve``'s options of the simulated controller alone (None where not given), each to its flag."""


def _add_sim_options(p: argparse.ArgumentParser, scans: int, retrace: bool = True, scans_help: str = "scans to send") -> None:
    p.add_argument("--size", type=int, help=f"scan size in pixels (default: {SIM_SIZE})")
    p.add_argument(
        "--line-rate", type=float, help=f"lines per second, a line being one row's trace and retrace (default: {SIM_LINE_RATE:g})"
    )
    p.add_argument("--scans", type=int, default=scans, help=f"{scans_help}, 0 for no end (default: {scans})")
    p.add_argument("--seed", type=int, help="seed of the first simulated surface (default: unseen in training)")
    p.add_argument(
        "--slow-axis",
        choices=SLOW_AXES,
        help="order of the rows: down (row 0 first), up, or alternate (down, up, down, ...) (default: down)",
    )
    p.add_argument("--direction", dest="deprecated_direction", choices=SLOW_AXES, help="deprecated: --slow-axis")
    if retrace:
        p.add_argument("--no-retrace", dest="retrace", action="store_false", help="send trace lines only")


def slow_axis(args: argparse.Namespace) -> str:
    """``--slow-axis``, or the deprecated ``--direction`` with a deprecation line on stderr."""
    old = args.deprecated_direction
    if old is not None:
        print(f"maed: warning: --direction is deprecated; use --slow-axis {old}", file=sys.stderr)
        if args.slow_axis is not None and args.slow_axis != old:
            raise ValueError(f"--slow-axis {args.slow_axis} and --direction {old} disagree; give --slow-axis only")
    return args.slow_axis or old or "down"


def _sim_defaults(args: argparse.Namespace) -> None:
    """The simulated controller's size and line rate where not given (left None so that a source that has no use for
    them can tell they were given)."""
    args.size = SIM_SIZE if args.size is None else args.size
    args.line_rate = SIM_LINE_RATE if args.line_rate is None else args.line_rate


def _simulator(args: argparse.Namespace, axis: str):
    from .simulated import SIM_SEED_BASE, SimulatedController

    _sim_defaults(args)
    seed = SIM_SEED_BASE if args.seed is None else args.seed
    return SimulatedController(size=args.size, line_rate=args.line_rate, scans=args.scans, seed=seed, slow_axis=axis, retrace=args.retrace)


NANONIS_OPTIONS = {"nanonis_host": "host", "nanonis_port": "port", "nanonis_channel": "channel", "poll_interval": "poll_interval"}
"""``maed serve``'s options of the Nanonis source, each to its ``NanonisSource`` field (None: the field's default)."""


def _source(args: argparse.Namespace, axis: str):
    if args.source == "sim":
        return _simulator(args, axis)
    if args.source == "nanonis":
        from .sources import NanonisSource

        given = {field: getattr(args, name) for name, field in NANONIS_OPTIONS.items() if getattr(args, name) is not None}
        # A scan paused on the controller sends no line; a third of the idle timeout keeps it open through the pause.
        keep_alive = {"keep_alive": args.idle_timeout / 3} if args.idle_timeout > 0 else {}
        return NanonisSource(**given, retrace=args.retrace, scans=args.scans, max_pixels=args.max_pixels, **keep_alive)
    return None


def _check_endpoint(flag: str, text: str) -> None:
    """A client's endpoint of the bridge as the bridge binds its sockets: ``tcp://HOST:PORT``, the port 1 to 65535
    (ZeroMQ takes any port in a connect and then waits for ever, saying nothing)."""
    scheme, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{flag} {text!r} is no bridge endpoint: give tcp://HOST:PORT, the port 1 to 65535")


def _add_client_key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--secret-key", type=Path, metavar="FILE", help="your NAME.key_secret (maed keys), for a bridge that has keys; needs --server-key"
    )
    p.add_argument("--server-key", type=Path, metavar="FILE", help="the bridge's public key file (its NAME.key)")


def _client_keys(args: argparse.Namespace):
    from .keys import ClientKeys

    return ClientKeys.load(args.secret_key, args.server_key)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="maed: %(message)s", stream=sys.stderr)


STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGBREAK")  # SIGBREAK: Windows, Ctrl-Break and closing the console window


def _stop_once(still: str, signum: int, frame: object) -> None:
    """The first stopping signal: SIGINT leaves as Ctrl-C does, the others as a normal exit; every later one is
    ignored, saying ``still`` (``_still_stopping``): raised while the bridge saves the open scan, it cut the save short,
    and a second SIGTERM (``timeout`` sends one to the process and one to its group) aborted the process inside the
    network."""
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), partial(_still_stopping, still))
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    # Said at once, as Ctrl-C says "stopped": a service manager's stop left no word on the terminal or in the log.
    print(f"maed: stopping ({signal.Signals(signum).name}): saving the open scan, if any", file=sys.stderr)
    raise SystemExit(0)


SAVING = "maed: still stopping: saving the open scan (kill -9 leaves its journal, which the next start recovers)"
"""What a bridge says to a stopping signal while it stops (``_stop_on_signals``)."""


def _still_stopping(message: str, signum: int, frame: object) -> None:
    print(message, file=sys.stderr)


WAKE_S = 0.5
"""The main thread wakes this often while it waits: an untimed wait cannot be interrupted on Windows (CPython 3.11),
so Ctrl-C would not reach it."""


def _wait_for_ctrl_c() -> None:
    """Wait until Ctrl-C or a stopping signal (``_stop_on_signals``) raises."""
    forever = threading.Event()
    while not forever.wait(WAKE_S):
        pass


def _stop_on_signals(still: str = SAVING) -> None:
    """SIGTERM (a service manager) and SIGINT (Ctrl-C, ``kill -INT``) both leave through the Ctrl-C path, so the
    open scan is saved, once (``_stop_once``; a later signal says ``still``). SIGINT is bound even where the process
    started with it ignored: a shell starts a background job so (``maed serve &``, a CI runner's job), and Python then
    installs no handler of its own, so ``kill -INT`` left such a bridge running for good."""
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), partial(_stop_once, still))


def _freeze_startup_objects() -> None:
    """Leave what start-up made (modules, the model, sockets: some 66,000 objects) out of Python's cyclic garbage
    collection: a full collection over them took 80 ms, all of it holding the interpreter lock, so `status` and the
    sockets' threads waited that long (docs/reliability.md). What is made later is collected as before."""
    gc.collect()
    gc.freeze()


def _cmd_serve(args: argparse.Namespace) -> int:
    from maed.zoo import default_model

    from .alerts.rules import parse_rules
    from .keys import ServerKeys, is_loopback
    from .preview import Preview
    from .server import Bridge, BridgeConfig

    if args.scans < 0:
        raise ValueError("--scans must be 0 (no end) or more")
    if not 0 <= args.http_port <= 65535:
        raise ValueError(f"--http-port must be 0 to 65535, got {args.http_port}")
    if args.models is not None and not args.models.is_dir():
        raise ValueError(f"--models {args.models} is not a folder")
    rules = parse_rules(args.on_alert) if args.on_alert is not None else {}
    if rules and args.source != "nanonis":
        raise ValueError("--on-alert acts on a Nanonis controller; it needs --source nanonis")
    stray = [f"--{name.replace('_', '-')}" for name in NANONIS_OPTIONS if getattr(args, name) is not None]
    if stray and args.source != "nanonis":  # else the bridge waits for ever on the zmq source, saying nothing
        raise ValueError(f"{', '.join(stray)} set{'s' if len(stray) == 1 else ''} up the Nanonis source: it needs --source nanonis")
    stray = [flag for name, flag in SIM_ONLY.items() if getattr(args, name) is not None]
    if stray and args.source != "sim":  # else a Nanonis or zmq source runs without them, saying nothing
        raise ValueError(f"{', '.join(stray)} set{'s' if len(stray) == 1 else ''} up the simulated controller: it needs --source sim")
    token = os.environ.get(TOKEN_VARIABLE) or None
    if args.preview and token is not None and len(token) < 16:
        raise ValueError(f"{TOKEN_VARIABLE} holds {len(token)} characters: the preview's token needs at least 16 (unset, one is made)")
    _log_to_stderr()
    keys = ServerKeys.load(args.secret_key, args.client_keys)
    models, adapt = args.models, None
    if args.adapt:
        from importlib.util import find_spec

        from .adapter import AdaptConfig

        if find_spec("torch") is None:  # looked up, not imported: the bridge imports no torch
            raise ValueError("--adapt trains in a process of its own, which needs torch: pip install maed[torch]")

        if models is None:  # the adapted weights' folder is where set_model may load them from
            models = Path(args.out) / "models"
            models.mkdir(parents=True, exist_ok=True)
        adapt = AdaptConfig(models=models, minutes=args.adapt_minutes, steps=args.adapt_steps)
    elif args.adapt_steps is not None or args.adapt_minutes != ADAPT_MINUTES:
        raise ValueError("--adapt-minutes and --adapt-steps need --adapt")
    config = BridgeConfig(
        host=args.host,
        pull_port=args.pull_port,
        pub_port=args.pub_port,
        control_port=args.control_port,
        ack_port=args.ack_port,
        out=Path(args.out),
        backend=args.backend,
        share_cpu=args.share_cpu,
        model=args.model or default_model(args.pass_),
        pass_=args.pass_,
        halo=args.halo,
        refine=args.refine,
        idle_timeout=args.idle_timeout,
        guard_interval=args.guard_interval,
        frame_interval=args.frame_interval,
        trace_retrace=args.trace_retrace,
        drift_alert=args.drift_alert,
        judge_every_line=bool(rules),
        keys=keys,
        insecure=args.insecure,
        models=models,
        max_pixels=args.max_pixels,
        model_timeout=args.model_timeout,
        adapt=adapt,
    )
    if keys is None and not is_loopback(args.host):
        print(
            f"maed: warning: --insecure: anyone who reaches {args.host} may push lines, read frames and control the bridge", file=sys.stderr
        )
    source = _source(args, slow_axis(args))
    if args.source == "nanonis":  # an unreachable controller or a missing channel: one line, at once
        channel = source.check()
        print(f"maed: following the scans of Nanonis at {source.address}, channel {channel}", file=sys.stderr)
        source.on_alert = rules
        from .sources.nanonis import COMMANDS_LOG

        source.commands_log = Path(args.out) / COMMANDS_LOG  # read on a resumed scan, appended to by the rules
        if rules:
            print(
                "maed: on alerts, commands to Nanonis (each logged): "
                + ", ".join(
                    f"{kind} -> {'Scan.Action pause' if action == 'pause' else 'ZCtrl.Withdraw'}" for kind, action in rules.items()
                ),
                file=sys.stderr,
            )
    stop = threading.Event()
    _stop_on_signals()
    with Bridge(config) as bridge, contextlib.ExitStack() as stack:
        _freeze_startup_objects()
        backend = bridge.worker.backend
        preview = None
        if args.preview:  # before "bridge up": a port in use is the start's one line, not a line after it
            preview = stack.enter_context(
                Preview(bridge.endpoints["pub"], args.host, args.http_port, bridge.status, token=token, keys=bridge.client_keys)
            )
        print(
            f"maed: bridge up: lines in {bridge.endpoints['pull']}, frames out {bridge.endpoints['pub']}, "
            f"control {bridge.endpoints['control']}, acks {bridge.endpoints['ack']}; "
            f"model {backend.model} on {backend.name}; scans saved to {args.out}",
            file=sys.stderr,
        )
        if bridge.adapter is not None:
            print(
                f"maed: adapting between scans in process {bridge.adapter.pid} (nice 10): a round on the newest "
                "scans with both passes once 3 have come and one before the newest can teach (at least 96 x 96 pixels, "
                f"passes that differ by noise alone), accepted weights written to {adapt.models} and loaded between frames "
                "(status: adapter)",
                file=sys.stderr,
            )
        if keys is not None:
            print(f"maed: CURVE on every socket; {len(keys.clients)} client key(s) allowed", file=sys.stderr)
        if preview is not None:
            print(f"maed: live preview at {preview.url}", file=sys.stderr)
        thread = None
        if args.source == "nanonis":  # it died with a killed bridge: it re-grabs the frame of the scan resumed
            source.resume = bridge.recovered.resumed
            source.alerts = bridge.endpoints["pub"]
            bridge.follow_controller(source.status, source.commands_for)
        if source is not None:
            thread = threading.Thread(target=source.run, args=(bridge.endpoints["pull"], stop, bridge.client_keys), daemon=True)
            thread.start()
        try:
            if source is not None and source.scans:
                while not bridge.wait_finished(source.scans, timeout=WAKE_S):
                    pass
            else:
                _wait_for_ctrl_c()
        finally:
            stop.set()
            if thread is not None:
                thread.join(SOURCE_STOP_S)
                if thread.is_alive():  # a controller's reply still trickling in: the bridge saves the open scan itself
                    print(f"maed: the source did not stop within {SOURCE_STOP_S:g} s; stopping without it", file=sys.stderr)
    return 0


def _cmd_listen(args: argparse.Namespace) -> int:
    from .listen import listen
    from .protocol import PUBLISHED_TOPICS

    if args.count < 0 or args.scans < 0:
        raise ValueError("--count and --scans must be 0 (no end) or more")
    _check_endpoint("--connect", args.connect)
    if not any(topic.startswith(args.topic) for topic in PUBLISHED_TOPICS):  # a prefix no message ever has
        raise ValueError(f"--topic {args.topic!r} begins no topic a bridge publishes: {', '.join(PUBLISHED_TOPICS)}")
    keys = _client_keys(args)
    topic = f" (topic {args.topic}*)" if args.topic else ""

    def waiting() -> None:  # said at once: a subscriber hears nothing from a wrong port or a bridge not yet up alike
        print(f"maed: listening to {args.connect}{topic}; nothing shows until a bridge there publishes; Ctrl-C to stop", file=sys.stderr)

    def refused(why: str) -> None:
        print(f"maed: {args.connect}: {why}", file=sys.stderr)

    listen(args.connect, args.topic, args.count, args.scans, keys=keys, on_connected=waiting, on_refused=refused)
    return 0


def _cmd_control(args: argparse.Namespace) -> int:
    import json

    from .control_client import request

    _check_endpoint("--connect", args.connect)
    if args.cmd == "set_model" and args.model is None:
        raise ValueError("set_model needs --model NAME_OR_PATH (a shipped name, or a file in the bridge's --models folder)")
    if args.cmd != "set_model" and (args.model is not None or args.backend is not None):
        raise ValueError(f"--model and --backend go with set_model, not {args.cmd}")
    message = {"cmd": args.cmd}
    if args.model is not None:
        message["model"] = args.model
    if args.backend is not None:
        message["backend"] = args.backend
    reply = request(args.connect, message, _client_keys(args), args.timeout)
    print(json.dumps(reply, indent=1))
    return 0 if reply.get("ok") else 1


def _cmd_keys(args: argparse.Namespace) -> int:
    from .keys import write_key_pair

    public, secret = write_key_pair(Path(args.out), args.name)
    print(f"maed: public key {public} (give it to the other side), secret key {secret} (keep it; mode 0600)", file=sys.stderr)
    return 0


def _cmd_push_sim(args: argparse.Namespace) -> int:
    if args.scans < 0:
        raise ValueError("--scans must be 0 (no end) or more")
    _check_endpoint("--connect", args.connect)
    if args.acks is not None:
        _check_endpoint("--acks", args.acks)
    source = _simulator(args, slow_axis(args))
    source.acks = args.acks
    keys = _client_keys(args)
    print(
        f"maed: pushing {args.scans or 'endless'} simulated {args.size}x{args.size} scan(s) at {args.line_rate:g} lines/s "
        f"to {args.connect}",
        file=sys.stderr,
    )
    try:
        source.run(args.connect, threading.Event(), keys)
    except ConnectionError as exc:  # a bridge that refuses our keys: the user's to fix, in one line
        raise ValueError(str(exc)) from None
    for scan in source.scanned:
        print(scan.scan)
    return 0


def _cmd_sim_nanonis(args: argparse.Namespace) -> int:
    from .simulated import SIM_SEED_BASE, Scanner, SimulatedNanonis, simulated_frames
    from .simulated.replay import replay_frames

    axis = slow_axis(args) if args.slow_axis or args.deprecated_direction else None
    if args.replay and (args.size is not None or args.seed is not None):
        raise ValueError("--size and --seed choose simulated surfaces; --replay scans its file at the file's size instead")
    _sim_defaults(args)
    if args.replay:
        frames, frame, recorded = replay_frames(args.replay, args.replay_channel)
        size = frame.shape[0]
        axis = axis or recorded  # the file's own time order (drift, creep) unless told otherwise
        what = f"{args.replay} ({frame.channels[0].name}, {frame.shape[0]}x{frame.shape[1]}, slow axis {axis}"
        what += ", as recorded)" if axis == recorded else f", recorded {recorded})"
    else:
        if args.replay_channel is not None:
            raise ValueError("--replay-channel names a channel of the --replay file; give --replay FILE too")
        frames, size = simulated_frames(SIM_SEED_BASE if args.seed is None else args.seed), args.size
        axis = axis or "down"
        what = f"simulated {size}x{size} surfaces"
    scanner = Scanner(frames, size, args.line_rate, axis, args.scans)
    _log_to_stderr()  # what clients do to the simulated controller that a person watching must know (a withdrawn tip)
    _stop_on_signals("maed: still stopping")
    with SimulatedNanonis(scanner, args.host, args.port) as server:
        scans = f"{args.scans} frame(s) per start" if args.scans else "continuously"
        print(
            f"maed: simulated Nanonis controller on {args.host}:{server.port}: scanning {what} at "
            f"{args.line_rate:g} lines/s, {scans}; Ctrl-C to stop",
            file=sys.stderr,
        )
        _wait_for_ctrl_c()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``listen``, ``control``, ``keys``, ``push-sim`` and ``sim-nanonis`` to the ``maed`` subcommands."""
    from maed.zoo import PRODUCT, TWO_PASS_PRODUCT

    from .alerts.drift import ALERT_SHARE as DRIFT_ALERT_SHARE
    from .ingest import MAX_PIXELS
    from .model_loader import MODEL_LOAD_TIMEOUT_S
    from .streaming import GUARD_INTERVAL_S, HALO, REFINE
    from .worker import FRAME_INTERVAL_S

    p = sub.add_parser("serve", help="run the bridge: scan lines in, raw and denoised frames out")
    p.add_argument(
        "--source",
        choices=("sim", "nanonis", "zmq"),
        default="zmq",
        help="sim: a built-in simulated STM; nanonis: follow a Nanonis controller's scans over its TCP "
        "interface; zmq: external controllers push lines (default)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only; any other needs keys or --insecure)"
    )
    p.add_argument(
        "--secret-key",
        type=Path,
        metavar="FILE",
        help="the bridge's NAME.key_secret (maed keys): CURVE on every socket; needs --client-keys",
    )
    p.add_argument("--client-keys", type=Path, metavar="PATH", help="the clients allowed in: a folder of NAME.key files, or one NAME.key")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a --host beyond this machine without keys (anyone who reaches it may push, read, control)",
    )
    p.add_argument(
        "--models", type=Path, metavar="DIR", help="folder whose model files a remote set_model may load (default: shipped names only)"
    )
    p.add_argument(
        "--model-timeout",
        type=float,
        default=MODEL_LOAD_TIMEOUT_S,
        metavar="S",
        help=f"seconds a set_model may take to load its model before it is abandoned with an error (default: {MODEL_LOAD_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--adapt",
        action="store_true",
        help="adapt the model to this instrument between scans (off by default): a separate, niced process "
        "fine-tunes it on the finished scans' trace/retrace pairs once 3 with both passes have come "
        "(the newest held out), with maed adapt's checks; accepted weights are written to the --models "
        "folder (default: OUT/models) and loaded between frames as set_model does; refused rounds "
        "change nothing. status shows it under 'adapter' (docs/adapt.md). Needs torch",
    )
    p.add_argument(
        "--adapt-minutes",
        type=float,
        default=ADAPT_MINUTES,
        metavar="M",
        help=f"--adapt: training time of each round (default: {ADAPT_MINUTES:g}; the checks after it take a bounded time more)",
    )
    p.add_argument("--adapt-steps", type=int, metavar="N", help="--adapt: stop each round's training after N steps")
    p.add_argument("--pull-port", type=int, default=5570, help="lines in, PULL (default: 5570)")
    p.add_argument("--pub-port", type=int, default=5571, help="frames out, PUB (default: 5571)")
    p.add_argument("--control-port", type=int, default=5572, help="control, ROUTER answering REQ (default: 5572)")
    p.add_argument(
        "--ack-port", type=int, default=5573, help="acknowledgements of journaled lines, PUB (default: 5573; docs/reliability.md)"
    )
    p.add_argument("--out", default="maed-scans", help="folder for finished scans (default: maed-scans)")
    p.add_argument("--backend", default="auto", help="inference back end (default: auto)")
    p.add_argument(
        "--share-cpu",
        action="store_true",
        help="leave the CPU to other software on this machine (the controller's): ONNX Runtime's threads sleep "
        "between band updates instead of spin-waiting; about half the bridge's CPU time, each band update a few ms "
        "slower (docs/nanonis.md)",
    )
    p.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help=f"shipped model name or checkpoint (default: {PRODUCT}, the product weights; with --pass both "
        f"the two-pass model, default {TWO_PASS_PRODUCT})",
    )
    p.add_argument(
        "--pass",
        dest="pass_",
        choices=("trace", "both"),
        default="trace",
        help="trace: denoise the trace (default); both: each finished scan whose every row came in both "
        "passes is denoised by the two-pass model (both passes, moved midway, into one frame, as "
        f"maed denoise --pass both), its live frames by the one-pass {PRODUCT}",
    )
    p.add_argument("--halo", type=int, default=HALO, help=f"context rows above each band (default: {HALO})")
    p.add_argument("--refine", type=int, default=REFINE, help=f"rows of the last band denoised again (default: {REFINE})")
    p.add_argument(
        "--guard-interval",
        type=float,
        default=GUARD_INTERVAL_S,
        metavar="S",
        help=f"seconds between the trust guard's live evaluations of a scan, at least (default: "
        f"{GUARD_INTERVAL_S}; stretched to 20 times the guard's cost; the final frame is always guarded)",
    )
    p.add_argument(
        "--drift-alert",
        type=float,
        default=DRIFT_ALERT_SHARE,
        metavar="SHARE",
        help=f"a drift alert when features moved this share of the frame's side or more between two complete scans "
        f"of one area (default: {DRIFT_ALERT_SHARE}; each scan's drift is in its meta.json either way)",
    )
    p.add_argument(
        "--trace-retrace",
        action="store_true",
        help="figure each finished scan's trace/retrace error (each pass denoised alone against the other, "
        "raw pass) into its final frame and meta.json: 1 to 2 seconds of the bridge's time per "
        "256 x 256 scan with retrace lines, during which the next scan's updates wait",
    )
    p.add_argument(
        "--frame-interval",
        type=float,
        default=FRAME_INTERVAL_S,
        metavar="S",
        help=f"seconds between a running scan's whole frames, frame.raw and frame.denoised, at least "
        f"(default: {FRAME_INTERVAL_S}; 0: with every update); frame.rows goes out with every update "
        f"and the final frames always",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=5580,
        help=f"port of the live preview page (default: 5580); its token is {TOKEN_VARIABLE} when set, else a new one, printed with the URL",
    )
    p.add_argument("--no-preview", dest="preview", action="store_false", help="do not serve the live preview")
    p.add_argument(
        "--idle-timeout", type=float, default=300.0, help="seconds of controller silence that end the scan, 0 for never (default: 300)"
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"largest scan (rows times columns) a scan.start may open; larger ones are refused and "
        f"counted (default: {MAX_PIXELS}, 2048x2048)",
    )
    _add_sim_options(p, scans=0, scans_help="scans to simulate (--source sim) or to follow (--source nanonis) before the bridge stops")
    p.add_argument("--nanonis-host", help="address of the Nanonis TCP interface (default: 127.0.0.1)")
    p.add_argument("--nanonis-port", type=int, help="port of the Nanonis TCP interface (default: 6501)")
    p.add_argument("--nanonis-channel", help="channel to follow, by name (default: Z, the topograph)")
    p.add_argument(
        "--poll-interval", type=float, metavar="S", help="seconds between polls of Nanonis (default: the time per line of Scan.SpeedGet)"
    )
    p.add_argument(
        "--on-alert",
        metavar="RULES",
        help="opt-in: act on the controller when an alert comes, e.g. tip_change=pause,crash=withdraw "
        "(pause: Scan.Action pause; withdraw: ZCtrl.Withdraw; --source nanonis only; every command "
        "sent is logged). Default: none, the controller is only read",
    )
    p.set_defaults(run=_cmd_serve)

    p = sub.add_parser("listen", help="print the frames a bridge publishes")
    p.add_argument("--connect", default="tcp://127.0.0.1:5571", help="the bridge's PUB endpoint")
    p.add_argument("--topic", default="", help="topic prefix, e.g. frame.denoised (default: everything)")
    p.add_argument("--count", type=int, default=0, help="stop after this many messages (default: never)")
    p.add_argument("--scans", type=int, default=0, help="stop after this many finished scans (default: never)")
    _add_client_key_options(p)
    p.set_defaults(run=_cmd_listen)

    p = sub.add_parser("control", help="send one control request to a bridge and print the reply")
    p.add_argument(
        "cmd",
        choices=("status", "info", "pause", "resume", "set_model"),
        help="pause / resume: the bridge's denoising only (lines are still received, journaled and saved; the scan goes on: "
        "to pause a Nanonis scan, maed serve --on-alert); set_model: load --model and serve it",
    )
    p.add_argument("--connect", default="tcp://127.0.0.1:5572", help="the bridge's control endpoint")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="set_model: a shipped name, or a file in the bridge's --models folder")
    p.add_argument("--backend", help="set_model: the back end (default: the bridge's)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="seconds to wait for the reply (default: 5)")
    _add_client_key_options(p)
    p.set_defaults(run=_cmd_control)

    p = sub.add_parser("keys", help="write a CURVE key pair: NAME.key (public) and NAME.key_secret")
    p.add_argument("name", metavar="NAME", help="file name of the pair, e.g. bridge or the client's name")
    p.add_argument("--out", default=".", metavar="DIR", help="folder to write to (default: here)")
    p.set_defaults(run=_cmd_keys)

    p = sub.add_parser("push-sim", help="a simulated STM controller pushing lines to a bridge")
    p.add_argument("--connect", default="tcp://127.0.0.1:5570", help="the bridge's PULL endpoint")
    p.add_argument(
        "--acks",
        default="tcp://127.0.0.1:5573",
        metavar="ENDPOINT",
        help="the bridge's ack endpoint: lines are kept until journaled and resent after a bridge restart (default: tcp://127.0.0.1:5573)",
    )
    p.add_argument(
        "--no-acks",
        dest="acks",
        action="store_const",
        const=None,
        help="send without acknowledgements (lines in flight when the bridge dies are lost)",
    )
    _add_sim_options(p, scans=1)
    _add_client_key_options(p)
    p.set_defaults(run=_cmd_push_sim)

    p = sub.add_parser("sim-nanonis", help="a simulated Nanonis controller answering on its TCP interface")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=6501, help="TCP port (default: 6501, as Nanonis; 0: any free)")
    _add_sim_options(p, scans=0, retrace=False, scans_help="frames to scan after each start")
    p.add_argument("--replay", metavar="FILE", help="scan this file (.sxm, or any file maed.scanfiles reads) instead of simulated surfaces")
    p.add_argument("--replay-channel", metavar="NAME", help="channel of the replayed file (default: its topograph)")
    p.set_defaults(run=_cmd_sim_nanonis)
