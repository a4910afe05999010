"""The adapter process of ``maed serve --adapt``: ``maed adapt``'s round between scans, in a process of its own.

The bridge (``maed.bridge.adapter``, which imports no torch) starts this module as a child process
(``python -m maed.adapt_live``) and writes one JSON line to its stdin per finished scan: the scan's saved
folder (``raw_trace.npy``, ``raw_retrace.npy``, ``meta.json``, ``bridge/store.py``) and the model the bridge
serves. Once at least ``MIN_SCANS`` scans with both passes have come, and after each further one, this
process runs ``maed.adapt.adapt_round`` (the same steps and tests as ``maed adapt``, nothing copied) on the
newest ``MAX_SCANS`` of them, the newest held out, training for ``--minutes`` (or ``--steps``). It answers
with JSON lines on stdout (``event``: ``ready``, ``scan``, ``round``, ``result``); its notes go to stderr.

Accepted weights are written into ``--models`` as ``adapted-<time>-<hash>.pt`` with its ``.json`` card and
``.onnx`` export (the bridge's back ends need no torch for it), each to a temporary name in that folder and
renamed, the ``.onnx`` last: the bridge is told its path only once it is complete. A refused round writes
nothing. The process lowers its own priority (``nice`` 10) and runs torch on ``--threads`` (1) threads, so
the live path keeps the CPU it needs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

MIN_SCANS = 3
"""Scans with both passes before a round runs: at least two to learn from and the newest held out."""
MAX_SCANS = 8
"""The newest scans a round uses (the newest held out): a round's time stays bounded however long the session."""
NICE = 10
TEST_ACCEPT = "MAED_ADAPT_TEST_ACCEPT"
"""Test hook: with this variable set to 1 in its environment, the adapter keeps a round's weights whatever the
tests say (a few steps cannot earn it), logged on every round. For the tests of the swap only."""


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout: the bridge's view of this process."""
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    print(f"maed adapter: {message}", file=sys.stderr, flush=True)


def read_saved(folder: Path):
    """A scan the bridge saved as ``maed adapt``'s ``ScanInput`` (``adapt.read_saved``), or why it cannot take part (a
    string): a scan without retrace lines has nothing to teach."""
    from .adapt import read_saved as read

    try:
        scan = read(folder)
    except ValueError as exc:
        return str(exc).removeprefix(f"{folder}: ")
    if scan.retrace is None:
        return "trace only (no retrace lines): nothing to learn from"
    return scan


def torch_weights(model: str) -> str | None:
    """The torch weights behind a model the bridge serves: a shipped name as it is, a ``.pt``, an ``.onnx`` with its
    ``.pt`` beside it (as this process writes them); None where there are none."""
    path = Path(model)
    if not path.suffix or path.suffix == ".pt":
        return model
    twin = path.with_suffix(".pt")
    return str(twin) if path.suffix == ".onnx" and twin.is_file() else None


def publish(folder: Path, result, base_sha: str) -> tuple[Path, str]:
    """Write an accepted round into ``folder``: the checkpoint and its card, then its ONNX export, each to a
    temporary name in the folder and renamed; the ``.onnx`` (what the bridge loads) and the weights' hash."""
    from .adapt import write_adapted
    from .export import export_onnx
    from .model.checkpoint import weights_sha256

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    pt = folder / f"adapted-{stamp}-{base_sha[:8]}.pt"
    n = 1
    while pt.exists() or pt.with_suffix(".onnx").exists():
        n += 1
        pt = folder / f"adapted-{stamp}-{base_sha[:8]}-{n}.pt"
    write_adapted(pt, result.model, result.config, result.levelling, result.card)
    onnx_path = pt.with_suffix(".onnx")
    export_onnx(str(pt), onnx_path)  # written as .tmp in the folder, then renamed
    return onnx_path, weights_sha256(pt)


def figures(card: dict) -> dict:
    """The round's figures as status shows them (plain numbers)."""
    paint = card["paint_check"]
    held = []
    for f in card["held_out"]["files"]:
        error = f.get("trace_retrace", {})
        held.append({"scan": Path(f["file"]).name, "unit": f["unit"], **{f"error_{name}": e["value"] for name, e in error.items()}})
    return {
        "e2_change": card["held_out"]["e2_change"],
        "held_out": held,
        "paint_invented_peaks": paint["invented_peaks"],
        "paint_psnr_change_db": paint["psnr_change"],
        "steps": card["fine_tune"]["steps"],
        "train_seconds": card["fine_tune"]["seconds"],
    }


class Feed:
    """The bridge's messages, read from stdin on a thread of their own so that none waits while a round runs."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.messages: list[dict] = []
        self.closed = False
        threading.Thread(target=self._read, name="maed-adapter-feed", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            try:
                message = json.loads(line)
            except ValueError:
                note(f"ignored a line that is not JSON: {line[:80]!r}")
                continue
            with self.cv:
                self.messages.append(message)
                self.cv.notify_all()
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def take(self) -> tuple[list[dict], bool]:
        """Every message that came (waiting for one), and whether stdin is closed (the bridge has gone)."""
        with self.cv:
            self.cv.wait_for(lambda: self.messages or self.closed)
            messages, self.messages = self.messages, []
            return messages, self.closed


def serve(models: Path, minutes: float, steps: int | None, sim_share: float) -> int:
    """Collect scans, run a round whenever one came since the last, until stdin closes."""
    from .adapt import adapt_round, pass_pairs
    from .data.real_pairs import PassPair
    from .model.checkpoint import weights_file, weights_sha256

    scans = []
    teaches: dict[Path, PassPair | str] = {}
    """Each kept scan's pass pair, or why it makes none (``adapt.pass_pairs``), figured once as it comes."""
    base = None
    fresh = False
    feed = Feed()
    emit("ready", pid=os.getpid(), needs=MIN_SCANS)
    rounds = 0
    while True:
        messages, closed = feed.take()
        for message in messages:
            folder = Path(str(message.get("scan", "")))
            base = message.get("model") or base
            scan = read_saved(folder)
            if isinstance(scan, str):
                note(f"{folder.name}: not used: {scan}")
                emit("scan", folder=str(folder), usable=False, why=scan, scans=len(scans))
                continue
            scans = (scans + [scan])[-MAX_SCANS:]
            fresh = True
            teaches[scan.path] = pass_pairs([scan])[scan.path]
            teaches = {s.path: teaches[s.path] for s in scans}  # a pair holds its scan's arrays: only the kept ones
            emit("scan", folder=str(folder), usable=True, why=None, scans=len(scans))
        if closed:
            return 0
        if not fresh or len(scans) < MIN_SCANS:
            continue
        fresh = False
        teachers = [s for s in scans[:-1] if not isinstance(teaches.get(s.path), str)]
        if not teachers:  # the round would fail for want of a pair: say so once per scan, not a page per round
            why = "; ".join(f"{s.path.name}: {teaches[s.path]}" for s in scans[:-1])
            note(f"no round yet: none of the scans before the newest makes a trace/retrace pair to learn from ({why})")
            continue
        source = torch_weights(base or "")
        if source is None:
            emit(
                "result",
                accepted=False,
                reasons=[f"the served model {base} has no torch weights to adapt from"],
                figures=None,
                model=None,
                weights_sha256=None,
                base=base,
                base_sha256=None,
                seconds=0.0,
            )
            continue
        rounds += 1
        started = time.monotonic()
        held = scans[-1]
        base_sha = weights_sha256(weights_file(source))
        emit("round", round=rounds, training=len(scans) - 1, held_out=str(held.path), base=source, base_sha256=base_sha)
        try:
            result = adapt_round(list(scans), [held.path], source, 60.0 * minutes, sim_share, steps, rounds, note, teaches)
        except ValueError as exc:  # too few pairs, a base that is no checkpoint: the round cannot run
            emit(
                "result",
                accepted=False,
                reasons=[str(exc)],
                figures=None,
                model=None,
                weights_sha256=None,
                base=source,
                base_sha256=base_sha,
                seconds=round(time.monotonic() - started, 1),
            )
            continue
        failed = list(result.failed)
        if failed and os.environ.get(TEST_ACCEPT) == "1":
            note(f"test hook {TEST_ACCEPT}=1: keeping the weights although they failed: {'; '.join(failed)}")
            failed = []
        path, sha = (None, None)
        if not failed:
            try:
                path, sha = publish(models, result, base_sha)
                note(f"kept the new weights: {path}")
            except (OSError, ValueError) as exc:  # a full disk: the round's weights are lost, the model stays
                failed = [f"the accepted weights could not be written to {models}: {exc}"]
                note(failed[0])
        if failed:
            note("kept the old model: " + "; ".join(failed))
        emit(
            "result",
            accepted=not failed,
            reasons=failed,
            figures=figures(result.card),
            model=path,
            weights_sha256=sha,
            base=source,
            base_sha256=base_sha,
            seconds=round(time.monotonic() - started, 1),
            test_hook=os.environ.get(TEST_ACCEPT) == "1",
        )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maed.adapt_live", description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder the accepted weights are written to")
    parser.add_argument("--minutes", type=float, default=2.0, help="training time per round")
    parser.add_argument("--steps", type=int, help="stop training after this many steps")
    parser.add_argument("--sim-share", type=float, default=0.5, help="share of simulated pairs in each batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args(argv)
    if hasattr(os, "nice"):  # on Windows the bridge starts it below normal priority instead (bridge/adapter.py)
        os.nice(NICE)
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in a log
    import torch

    from . import adapt  # noqa: F401  the training stack, loaded before SIGTERM is taken over (below)

    torch.set_num_threads(args.threads)
    # The bridge stops this process with SIGTERM (bridge/adapter.py): leave as from Ctrl-C, so that a file being
    # written is left as nothing but its own temporary name removed (maed.atomic), not a stray temporary file. Only
    # once the imports are done: a SystemExit raised inside one (a fresh clone's loaded CI) ended the process with
    # status 1, and before them nothing is written, so the signal's own default is right there.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args.models.mkdir(parents=True, exist_ok=True)
    return serve(args.models, args.minutes, args.steps, args.sim_share)


if __name__ == "__main__":
    raise SystemExit(main())
