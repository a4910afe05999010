"""``maed denoise -r``: a scan archive (folder trees) denoised into a mirror tree, resumably, on every core.

- The tree is kept: ``DIR/2021/may/scan.sxm`` goes to ``OUTDIR/2021/may/scan.sxm.npy`` (``.json``,
  ``.gwy``), the input's whole name kept so ``scan.sxm`` and ``scan.dat`` side by side cannot collide.
  With several folders each gets its own subfolder of ``OUTDIR``, by its name.
- Files are taken by their extension (any the readers know, case-insensitive; hidden files are
  skipped), then read by content as everywhere else.
- Done is done: a file whose ``.json`` records the same key (the SHA-256 of the input and of the files
  it is read with, a MATRIX image's parameter files; the model and its weights' SHA-256; the channel
  and pass asked for) is skipped, so a rerun finishes an interrupted
  run and a new model redoes everything. The ``.json`` is written last, each file atomically
  (``maed.atomic``): a record means whole outputs.
- Processes, not threads (the guard and the readers are Python and hold the GIL): one worker per core,
  each loading the back end once, with one thread of its own.
- A bad file costs one line and the run goes on; the summary counts files, frames, failures and what
  the trust guard published.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .denoise_files import (
    OUT_OF_MEMORY,
    OUTPUT_SUFFIXES,
    check_output_folder,
    denoise_file,
    model_file_record,
    not_replaceable,
    os_problem,
    read_record,
)
from .engine import Backend, load_backend
from .file_hash import file_sha256
from .io import SUFFIXES as ARRAY_SUFFIXES
from .io import ScanError
from .passes import further_than_raw
from .progress import FileProgress
from .scanfiles import SUFFIXES as INSTRUMENT_SUFFIXES
from .scanfiles import companion_files, is_saved_scan

SCAN_SUFFIXES = tuple(dict.fromkeys(ARRAY_SUFFIXES + INSTRUMENT_SUFFIXES))
WINDOWS_MAX_WORKERS = 61
"""Windows waits on at most 63 handles at once; ``ProcessPoolExecutor`` refuses more than 61 workers there."""
"""The extensions a walk takes (lowercased): whatever ``maed denoise`` reads."""


@dataclass(frozen=True)
class Task:
    """One input and where its outputs go: ``<stem>.npy``, ``<stem>.json``, ``<stem>.gwy``."""

    path: Path
    stem: Path


@dataclass(frozen=True)
class Outcome:
    """What became of one task: ``done`` (denoised now), ``skipped`` (already done) or ``failed``."""

    path: Path
    status: str
    message: str = ""
    record: dict = field(default_factory=dict)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def is_maed_output(path: Path) -> bool:
    """Whether ``path`` is an output ``maed denoise`` wrote: a ``<stem>.npy`` or ``<stem>.gwy`` beside the
    ``<stem>.json`` that records it. An archive walked again with an earlier run's outputs inside it would otherwise
    have them denoised as new scans (``<name>.sxm.npy.npy``)."""
    if path.suffix.lower() not in (".npy", ".gwy"):
        return False
    record = read_record(path.with_suffix(""))
    return isinstance(record, dict) and "maed_version" in record and record.get("output") == path.with_suffix(".npy").name


def _walk(root: Path, skip: Path) -> Iterable[Path]:
    """Scan files under ``root`` in a stable order, leaving out hidden entries, the folder ``skip`` and earlier
    outputs of ``maed denoise`` (``is_maed_output``)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(folder) / d).resolve() != skip)
        saved = [d for d in dirs if is_saved_scan(Path(folder) / d)]  # each one scan, its passes and record together
        dirs[:] = [d for d in dirs if d not in saved]
        for name in sorted([*files, *saved]):
            path = Path(folder) / name
            if name in saved or (not name.startswith(".") and path.suffix.lower() in SCAN_SUFFIXES and not is_maed_output(path)):
                yield path


def collect(inputs: Iterable[Path], out_dir: Path) -> tuple[list[Task], list[str]]:
    """The tasks for ``inputs`` (folders walked, files taken as they are) and one line per input refused.

    Raises ``ValueError`` (a user mistake, before anything is written) where the output folder is an
    input folder or inside one's outputs' way (an input folder inside ``OUTDIR``), or two input folders
    share a name. ``OUTDIR`` inside an input folder is left out of its walk.
    """
    out = check_output_folder(Path(out_dir)).resolve()
    inputs = list({Path(p).resolve(): Path(p) for p in inputs}.values())  # one input named twice is one input
    for folder in (p for p in inputs if p.is_dir()):
        if folder.resolve() == out or out in folder.resolve().parents:
            raise ValueError(
                f"{folder}: the output folder {out_dir} is this input folder or holds it; choose an output folder outside the inputs"
            )
    folders = [p for p in inputs if p.is_dir() and not is_saved_scan(p)]  # a saved scan is one scan, not a tree
    names = [f.resolve().name for f in folders]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two input folders are named {twice!r}; their trees would mix in {out_dir}: rename one")
    refused, tasks, taken = [], [], {}
    for path in inputs:
        if is_saved_scan(path):
            found = [(path, out / path.name)]
        elif path.is_dir():
            base = out / path.resolve().name if len(folders) > 1 else out
            found = [(p, base / p.relative_to(path)) for p in _walk(path, out)]
            if not found:
                refused.append(f"{path}: no scan files under it ({', '.join(SCAN_SUFFIXES)})")
        elif path.is_file():
            found = [(path, out / path.name)]
        else:
            refused.append(f"{path}: no such file or folder")
            continue
        for source, stem in found:
            key = str(stem).casefold()  # a case-insensitive file system would merge Scan.sxm and scan.sxm
            if key in taken:
                refused.append(f"{source}: {taken[key]} would write the same {stem.name}.npy; denoise them apart")
                continue
            taken[key] = source
            tasks.append(Task(source, stem))
    sources = {t.path.resolve() for t in tasks}
    clashes = {t for t in tasks if any(Path(f"{t.stem}{s}").resolve() in sources for s in OUTPUT_SUFFIXES)}
    refused += [f"{t.path}: an output of it would overwrite an input; choose another output folder" for t in clashes]
    return [t for t in tasks if t not in clashes], refused


def _done_record(stem: Path, key: dict) -> dict | None:
    """The record of an earlier run with this key whose outputs are all there, else None. A run that also figured the
    trace/retrace error did all that one without it asks."""
    record = read_record(stem)
    if not isinstance(record, dict) or record.get("batch_key") not in (key, {**key, "trace_retrace": True}):
        return None
    outputs = [record.get("output", "")] + ([f"{stem.name}.gwy"] if record.get("channel") else [])
    return record if all((stem.parent / name).is_file() for name in outputs) else None


def process(
    task: Task,
    backend: Backend,
    channel: str | None,
    pass_: str,
    trace_retrace: bool = False,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> Outcome:
    """Denoise one task unless it is already done (with the trace/retrace error too where ``trace_retrace``); never
    raises for a bad file. ``on_stage``: as ``denoise_file``'s."""
    try:
        key = {
            "input_sha256": file_sha256(task.path),
            "model": backend.model,
            "weights_sha256": backend.weights_sha256,
            "model_file_sha256": model_file_record(backend)["model_file_sha256"],
            "channel": channel,
            "pass": pass_,
        }
        if trace_retrace:  # an earlier run without the figures is not done for this one
            key["trace_retrace"] = True
        companions = companion_files(task.path)
        if companions:  # a MATRIX image means nothing without its parameter file: a new one redoes it
            key["companions_sha256"] = {p.name: file_sha256(p) for p in companions}
    except OSError as exc:
        return Outcome(task.path, "failed", f"{task.path}: unreadable ({exc.strerror or exc})")
    record = _done_record(task.stem, key)
    if record is not None:
        return Outcome(task.path, "skipped", record=record)
    refused = not_replaceable(task.path, task.stem, channel, pass_, unrecorded_ours=True)
    if refused is not None:
        return Outcome(task.path, "failed", refused)
    try:
        task.stem.parent.mkdir(parents=True, exist_ok=True)
        _, record = denoise_file(task.path, task.stem, backend, channel, pass_, {"batch_key": key}, trace_retrace, on_stage)
    except ScanError as exc:
        return Outcome(task.path, "failed", str(exc))
    except OSError as exc:
        return Outcome(task.path, "failed", f"{task.path}: {os_problem(exc, task.path)}")
    except MemoryError:
        return Outcome(task.path, "failed", f"{task.path}: {OUT_OF_MEMORY}")
    except Exception as exc:  # one file's surprise must not stop an archive of thousands: its line, and on
        return Outcome(task.path, "failed", f"{task.path}: failed ({type(exc).__name__}: {exc})")
    return Outcome(task.path, "done", record=record)


_worker: dict = {}
"""The back end of a worker process, loaded once by ``_start_worker``."""


def _start_worker(backend: str, model: str, threads: int) -> None:
    _worker["backend"] = load_backend(backend, model, threads=threads)


def _process_in_worker(task: Task, channel: str | None, pass_: str, trace_retrace: bool) -> Outcome:
    return process(task, _worker["backend"], channel, pass_, trace_retrace)


def run(
    tasks: list[Task],
    backend: Backend,
    channel: str | None,
    pass_: str,
    jobs: int,
    backend_name: str,
    model: str,
    on_outcome: Callable[[Outcome], None],
    trace_retrace: bool = False,
) -> list[Outcome]:
    """Every task, on ``jobs`` worker processes (1: here, on ``backend``); ``on_outcome`` sees each as it ends;
    ``trace_retrace``: each with its trace/retrace error (``denoise_files.file_trace_retrace``)."""
    outcomes = []
    progress = FileProgress(len(tasks))

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        on_outcome(outcome)
        progress.done()

    with progress:
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                finish(process(task, backend, channel, pass_, trace_retrace, lambda what, name=task.path.name: progress.stage(name, what)))
            return outcomes
        # spawn, not fork: a forked child would inherit the parent's back end and runtime threads.
        context = multiprocessing.get_context("spawn")
        workers = min(jobs, len(tasks), WINDOWS_MAX_WORKERS if sys.platform == "win32" else jobs)
        with ProcessPoolExecutor(workers, context, _start_worker, (backend_name, model, 1)) as pool:
            pending: dict[Future, Task] = {pool.submit(_process_in_worker, t, channel, pass_, trace_retrace): t for t in tasks}
            try:
                while pending:
                    ended, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in ended:
                        task = pending.pop(future)
                        try:
                            finish(future.result())
                        except BrokenProcessPool as exc:  # a worker killed (out of memory): its files fail
                            finish(Outcome(task.path, "failed", f"{task.path}: worker process died ({exc})"))
            except KeyboardInterrupt:
                pool.shutdown(cancel_futures=True)
                raise
    return outcomes


def summary(outcomes: list[Outcome], refused: int) -> str:
    """The table printed at the end: files, frames, failures and what the trust guard published."""
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    published = [o.record for o in outcomes if o.status != "failed"]
    verdicts = [r.get("trust", {}) for r in published]
    by_output = {kind: sum(v.get("output") == kind for v in verdicts) for kind in ("network", "blend", "fallback")}
    fractions = [float(v.get("fallback_fraction", 0.0)) for v in verdicts]
    rows = [
        ("files found", len(outcomes) + refused),
        ("denoised now", counts["done"]),
        ("already done (skipped)", counts["skipped"]),
        ("failed", counts["failed"] + refused),
        ("frames published", len(published)),
        ("  network output trusted", by_output["network"]),
        ("  conservative in part (blend)", by_output["blend"]),
        ("  conservative whole (fallback)", by_output["fallback"]),
        ("  mean fallback fraction", f"{sum(fractions) / len(fractions):.3f}" if fractions else "-"),
        ("  the current taken, Z holding no image", sum(r.get("channel_why") is not None for r in published)),
        ("  the channel named (--channel)", sum(r.get("channel_asked") is not None for r in published)),
        ("  stripes removed, pick-up or 1-D lattice", sum(bool(r.get("lattice", {}).get("removed_unconfirmed")) for r in published)),
        ("  with a tip change taken off (line jump)", sum(bool(r.get("line_jumps")) for r in published)),
    ]
    figured = [r["trace_retrace"] for r in published if "raw" in r.get("trace_retrace", {})]
    if figured:  # asked for (--trace-retrace) and figured on files with both passes
        rows += [
            ("  trace/retrace error figured", len(figured)),
            ("    further from the other pass than raw", sum(further_than_raw(f) for f in figured)),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>7}" for name, value in rows)
