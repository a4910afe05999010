"""``maed denoise`` on files: each scan read, denoised as ``denoise_guarded`` publishes it, and written atomically
beside its record (``<stem>.npy``, ``<stem>.gwy`` for instrument files, ``<stem>.json`` last: what was published,
why, with which model and weights); with ``trace_retrace``, the scan's trace/retrace error
(``maed.passes.trace_retrace_figures``) figured where the file holds both passes, so that a user sees on their own
scan whether the model took off more than the noise.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import __version__
from .atomic import atomic_path, write_bytes_atomic
from .denoise import BOTH, GuardedResult, check_pass, denoise_guarded
from .engine import Backend
from .file_hash import file_sha256, model_file_sha256
from .io import MIN_SIZE, Scan, ScanError, read_scan
from .passes import display_unit, further_than_raw, trace_retrace_figures
from .progress import FileProgress
from .registration import speed_ratio
from .scanfiles import is_saved_scan, known_retrace, scan_order_known, scanned_upwards, write_gwy
from .trust import Verdict


def result_record(
    source: Path,
    dest: Path,
    pass_: str,
    channel: str | None,
    backend: Backend,
    result: GuardedResult,
    channel_why: str | None = None,
    channel_asked: str | None = None,
    input_sha256: str | None = None,
) -> dict:
    """The ``<stem>.json`` written beside a denoised scan: input (its absolute path and its bytes' SHA-256, as read by
    ``denoise_file``), output,
    channel (and why, where it is not the topograph; and the one asked for, None for the scan's signal), model,
    weights, the model file that ran (``model_file_record``), trust."""
    return {
        "input": str(Path(source).resolve()),
        "input_sha256": input_sha256,
        "output": dest.name,
        "channel": channel,
        "channel_why": channel_why,
        "channel_asked": channel_asked,
        "pass": pass_,
        "model": backend.model,
        "weights_sha256": backend.weights_sha256,
        "adapted_from": backend.adapted_from,
        **model_file_record(backend),
        "backend": backend.name,
        "maed_version": __version__,
        "trust": result.verdict.as_dict(),
        "lattice": result.lattice_record(),
        "features": result.features_record(),
        "z_creep": result.creep_record(),
        "line_jumps": result.line_jumps_record(),
        "passes_frame": result.passes_frame,
        "rows_aligned": result.rows_aligned,
    }


def model_file_record(backend: Backend) -> dict:
    """The file the back end loaded (its ``path``: an ``.onnx``, a ``.pt``, a TensorRT engine; None for one without a
    file) and its bytes' SHA-256. ``weights_sha256`` names the weights a model was built from, which an ONNX file or
    an engine carries in its metadata and cannot vouch for: an ONNX file edited after export still named the shipped
    weights; this hash is of what ran."""
    path = getattr(backend, "path", None)
    if path is None:
        return {"model_file": None, "model_file_sha256": None}
    return {"model_file": str(Path(path).resolve()), "model_file_sha256": model_file_sha256(path)}


def output_stem(path: Path) -> str:
    """The name ``maed denoise`` writes an input's outputs under: a file's stem, a saved scan's whole folder name (a
    scan id may hold dots)."""
    return path.name if is_saved_scan(path) else path.stem


OUTPUT_SUFFIXES = (".npy", ".json", ".gwy")
"""What ``maed denoise`` writes for each input: ``<stem>`` with each of these."""


def check_output_folder(out_dir: Path, option: str = "-o") -> Path:
    """``out_dir`` where it is a folder or can become one, else a one-line error (a user mistake) that names the
    ``option`` it came from."""
    blocked = next((p for p in (out_dir, *out_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ValueError(f"output folder {out_dir}: {blocked} is a file, not a folder; give another {option}")
    return out_dir


def read_record(stem: Path) -> object:
    """What ``<stem>.json`` holds, as JSON reads it (a run's record is a map; the caller checks); None where there is
    no such file or it cannot be read as JSON."""
    try:
        return json.loads(Path(f"{stem}.json").read_text())
    except (OSError, ValueError):
        return None


def replaced_note(path: Path, earlier: dict, record: dict) -> str:
    """The line that says a run replaced an earlier one's outputs, and what differed: the file's bytes (a new scan
    saved under the old name), the model, or nothing (a rerun)."""
    if earlier.get("incomplete"):
        why = "that did not finish"
    elif earlier.get("input_sha256") not in (None, record["input_sha256"]):
        why = "of other bytes: the file changed since"
    elif (earlier.get("model"), earlier.get("weights_sha256")) != (record["model"], record["weights_sha256"]):
        why = f"of model {earlier.get('model')}"
    else:
        why = "of the same file and model"
    return f"{path}: replaced the outputs of an earlier run {why}"


def check_writable(out_dir: Path, option: str = "-o") -> None:
    """Make ``out_dir`` (and the folders above it) and make sure files can be written in it, else a one-line error
    naming ``option`` before any scan is read (a read-only folder gave a traceback at the first output)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ValueError(f"output folder {out_dir}: cannot write there ({exc.strerror or exc}); give another {option}") from None


def os_problem(exc: OSError, path: Path) -> str:
    """One line on an ``OSError`` met denoising the input ``path``: reading it, or writing an output."""
    what = exc.strerror or type(exc).__name__
    if exc.filename is None or Path(exc.filename).resolve() == Path(path).resolve():
        return f"unreadable ({what})"
    return f"cannot write {exc.filename} ({what})"


def not_replaceable(source: Path, stem: Path, channel: str | None, pass_: str, unrecorded_ours: bool = False) -> str | None:
    """Why the outputs of ``source`` (read at ``channel``, None for its signal, and ``pass_``) must not be written at
    ``stem``, else None. A file already there is replaced only where it is maed's output of that very input with
    those options (its ``<stem>.json`` says so): a rerun, perhaps with another model. Anything else there (the user's
    own export, another file's or another channel's or pass's result) is never overwritten. ``unrecorded_ours``:
    outputs without a record are an interrupted run's (``maed denoise -r`` names them ``<name>.<ext>.npy``, which no
    export is called, and writes the record last), so they are replaced too."""
    existing = next((Path(f"{stem}{suffix}") for suffix in OUTPUT_SUFFIXES if Path(f"{stem}{suffix}").exists()), None)
    if existing is None:
        return None
    record = read_record(stem)
    if record is None and unrecorded_ours:
        return None
    ours = isinstance(record, dict) and "maed_version" in record and isinstance(record.get("input"), str)
    if not (ours and Path(record["input"]).resolve() == Path(source).resolve()):
        return f"{source}: {existing} exists and is not maed's output of this file; it is never overwritten: choose another output folder"
    try:
        same = record.get("pass") == pass_ and (record.get("channel_asked") == channel or _same_channel(source, channel, pass_, record))
    except ScanError as exc:  # the file cannot be read at what was asked (an unknown channel): that is the problem
        return str(exc)
    if not same:
        # The channel asked for is the one the earlier run chose where neither named one: both take the file's signal.
        asked_channel = channel or (record.get("channel") if record.get("channel_asked") is None else "its signal")
        held, asked = f"{record.get('channel')} {record.get('pass')}", f"{asked_channel} {pass_}"
        return f"{source}: {existing} holds its {held}; this run ({asked}) would overwrite it: choose another output folder"
    return None


def _same_channel(source: Path, channel: str | None, pass_: str, record: dict) -> bool:
    """Whether ``source`` read at ``channel`` (None: its signal) is the channel an earlier run's ``record`` holds,
    asked for by another name (``--channel Z`` and the signal of a topograph): a rerun. Read to tell (``ScanError``
    where it cannot be read so)."""
    scan = read_scan(source, channel, pass_ if pass_ != BOTH else "trace")
    return scan.source is not None and scan.source.name == record.get("channel")


def output_conflicts(inputs: list[Path], out_dir: Path, channel: str | None = None, pass_: str = "trace") -> dict[Path, str]:
    """Inputs that must not be denoised, each with its one-line reason, decided before anything is written.

    An input is refused when one of its outputs would be an input file (any of them: ``scan.png``
    must not overwrite ``scan.npy`` beside it), when two inputs would write the same outputs
    (``a/s.npy`` and ``b/s.npy`` into one folder), or when a file its outputs would replace is not an
    earlier run's output of it with the same ``channel`` and ``pass_`` (``not_replaceable``): raw data and
    earlier results are never overwritten, and no output silently replaces another.
    """
    inputs_resolved = {p.resolve() for p in inputs}
    by_stem: dict[str, list[Path]] = {}
    for path in inputs:
        by_stem.setdefault(output_stem(path), []).append(path)
    refused = {}
    for path in inputs:
        stem = output_stem(path)
        outputs = [Path(f"{out_dir / stem}{suffix}").resolve() for suffix in OUTPUT_SUFFIXES]
        clash = next((o for o in outputs if o in inputs_resolved), None)
        others = [p for p in by_stem[stem] if p.resolve() != path.resolve()]
        if clash is not None:
            refused[path] = f"{path}: its output {clash.name} would overwrite an input; choose another output folder"
        elif others:
            refused[path] = f"{path}: {others[0]} would write the same {stem}.npy; denoise them into separate output folders"
        elif (reason := not_replaceable(path, out_dir / stem, channel, pass_)) is not None:
            refused[path] = reason
    return refused


def file_trace_retrace(scan: Scan, backend: Backend, pass_: str, scanned_up: bool = False, published: np.ndarray | None = None) -> dict:
    """The trace/retrace error of a scan file's two passes (``passes.trace_retrace_figures``: each pass denoised alone
    by ``backend`` as ``maed denoise`` publishes it and compared with the other raw pass), in the scan's unit
    (``unit``); ``skipped`` says why where there is none: one pass in the file, a two-pass model (its one frame has no
    pass to hold against the other), passes too small or too unlike to register. ``published``: the pass ``pass_``
    as denoised for the file, not denoised again. Never raises for the scan."""
    if pass_ == BOTH:
        return {"skipped": "the two-pass model publishes one frame of both passes: no pass is left to compare it with"}
    if scan.other_pass is None:  # read_scan gives the other pass of instrument files only, with their source
        return {"skipped": "the file holds one pass only"}
    if scan.other_pass.shape != scan.data.shape:
        return {"skipped": f"the passes differ in shape ({scan.data.shape} and {scan.other_pass.shape})"}
    trace, retrace = (scan.data, scan.other_pass) if pass_ == "trace" else (scan.other_pass, scan.data)
    done = {} if published is None else {pass_: published}
    try:
        ratio = speed_ratio(scan.source.header)
        figures = trace_retrace_figures(trace, retrace, backend, ratio, scanned_up, done, scan_order_known(scan.source))
    except ValueError as exc:  # registration refuses passes it cannot compare (too few columns left)
        return {"skipped": f"the passes cannot be compared: {exc}"}
    return {"unit": scan.source.unit, **figures}


def denoise_file(
    path: Path,
    stem: Path,
    backend: Backend,
    channel: str | None = None,
    pass_: str = "trace",
    extra: dict | None = None,
    trace_retrace: bool = False,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> tuple[list[Path], dict]:
    """Denoise the scan at ``path`` into ``<stem>.npy``, ``<stem>.json`` and, for an instrument file,
    ``<stem>.gwy``; returns the paths written and the ``.json`` record (with ``extra`` in it).

    ``trace_retrace``: the record's ``trace_retrace`` holds the scan's trace/retrace error (``file_trace_retrace``).
    ``on_stage`` is told each stage as it starts (``reading``, ``denoising``, ``trace/retrace error``, ``writing``).
    Each file is written atomically (``maed.atomic``), the record last: where it exists, the rest is whole.
    Raises ``ScanError`` for a file that cannot be denoised, before anything is written.
    """
    on_stage("reading")
    scan = read_scan(path, channel, "trace" if pass_ == BOTH else pass_)
    ratio = 1.0
    if pass_ == BOTH:
        if scan.other_pass is None:
            raise ScanError(f"{path}: one pass only; --pass both needs the trace and the retrace")
        if scan.other_pass.shape != scan.data.shape:
            raise ScanError(f"{path}: the retrace {scan.other_pass.shape} and the trace {scan.data.shape} differ in shape")
        ratio = speed_ratio(scan.source.header)
        both = int((np.isfinite(scan.data).all(axis=1) & np.isfinite(scan.other_pass).all(axis=1)).sum())
        if both < MIN_SIZE:
            raise ScanError(f"{path}: only {both} rows were measured in both passes; at least {MIN_SIZE} are needed")
    scanned_up = scan.source is not None and scanned_upwards(scan.source)
    retrace = known_retrace(scan.source) if scan.source is not None else None  # an array file does not say
    on_stage("denoising")
    result = denoise_guarded(scan.data, backend, other_pass=scan.other_pass, ratio=ratio, scanned_up=scanned_up, retrace=retrace)
    dest, record_path, gwy = (Path(f"{stem}{suffix}") for suffix in OUTPUT_SUFFIXES)
    on_stage("writing")
    # The record marks outputs as finished (a rerun skips them). Before any output is replaced it says only whose
    # outputs these are and that they are being written, so that outputs a failure left half replaced are never taken
    # for done (nor named after a model that did not make them), and a rerun still may replace them.
    provisional = {"maed_version": __version__, "input": str(path), "pass": pass_, "channel_asked": channel, "incomplete": True}
    write_bytes_atomic(record_path, json.dumps(provisional, indent=1).encode())
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, result.data)  # through a file object: np.save would add .npy to the temporary name
    written = [dest, record_path]
    if scan.source is not None:
        image = scan.source
        label, title = f"{image.name} {pass_}", published_title(backend.model, result.verdict)
        fields = {f"{label} (raw)": image.data, f"{label} ({title})": result.data}
        if pass_ == BOTH:
            label = f"{image.name} trace and retrace"
            fields = {
                f"{image.name} trace (raw)": image.data,
                f"{image.name} retrace (raw)": scan.other_pass,
                f"{label} ({title})": result.data,
            }
        fallback_title = f"{label} (guard fallback weight)"
        if result.verdict.output != "network":
            fields[fallback_title] = np.where(np.isfinite(result.data), result.fallback, np.nan)
        with atomic_path(gwy) as tmp:
            write_gwy(tmp, image, fields, units={fallback_title: ""})
        written.append(gwy)
    name = scan.source.name if scan.source else None
    record = result_record(path, dest, pass_, name, backend, result, scan.channel_why, channel, file_sha256(path)) | (extra or {})
    # Rows never measured (a scan stopped early) stay NaN in every output; the record and the terminal say how many.
    record["rows"], record["rows_measured"] = int(scan.data.shape[0]), int(np.isfinite(result.data).all(axis=1).sum())
    record["unit"] = scan.source.unit if scan.source is not None else None  # the file's; an array's is not known
    if trace_retrace:
        on_stage("trace/retrace error")
        record["trace_retrace"] = file_trace_retrace(scan, backend, pass_, scanned_up, result.data)
    write_bytes_atomic(record_path, json.dumps(record, indent=1).encode())
    return written, record


def published_title(model: str, verdict: Verdict) -> str:
    """What a ``.gwy`` channel of the published frame is called after: the model where its output stands, the
    conservative result where the trust guard published that instead, over the whole frame or part of it."""
    if verdict.output == "fallback":
        return f"conservative result: the guard did not trust {model}"
    if verdict.output == "blend":
        return f"denoised, {model}; conservative result over {verdict.fallback_fraction:.0%}"
    return f"denoised, {model}"


OUT_OF_MEMORY = "out of memory: the scan is too large to denoise in this machine's memory"
"""What a file that exhausted the memory is told, where a ``MemoryError`` stopped its denoising."""

ONE_PASS_JUMP_HINT = (
    " A step edge lying exactly along a scan line looks alike in one pass: the other pass over these rows tells them apart."
)


def _figure(value: float) -> str:
    """Three significant figures, trailing zeros kept (1.30) but no bare point (135, not 135.)."""
    return f"{value:#.3g}".rstrip(".")


def trace_retrace_note(figures: dict) -> str:
    """``file_trace_retrace`` in a sentence: the model's, the classical pipeline's and raw's trace/retrace error with
    their 95 % intervals, and a plain warning where the model's output lies further from the other pass than raw's,
    the two intervals apart (``passes.further_than_raw``)."""
    if "skipped" in figures:
        return f"no trace/retrace error: {figures['skipped']}"
    scale, unit = display_unit(figures["unit"], figures["raw"]["value"])

    def told(name: str) -> str:
        f = figures[name]
        return f"{_figure(f['value'] * scale)} ({_figure(f['low'] * scale)} to {_figure(f['high'] * scale)})"

    slow = figures["slow_shift"]
    moved = f"; the slow axis moved on while scanning (the passes {slow:+.2f} line apart at the left end)" if slow else ""
    text = (
        f"trace/retrace error over {figures['rows']} rows, {unit} (95 % interval): model {told('model')}, "
        f"plane + rows + Gaussian {told('classical')}, raw {told('raw')}{moved}"
    )
    if further_than_raw(figures):
        text += (
            ". The denoised pass lies further from the other raw pass than the raw pass does: on this scan the model "
            "changed more than the noise. Compare it with the raw image before trusting its fine detail"
        )
    return text


def _in_unit(value: float, unit: str | None) -> str:
    """``value`` (signed) in the unit it is best read in (``display_unit``: -4.2e-10 m as -416 pm); an array's, whose
    unit is not known, as it is."""
    if unit is None:
        return f"{value:+.4g} (the scan's unit)"
    scale, shown = display_unit(unit, value)
    return f"{value * scale:+.3g} {shown}".rstrip()


def record_notes(path: Path, record: dict, pass_: str) -> list[str]:
    """What a user is told of a file's ``<stem>.json`` beyond its path: the channel, where not the topograph, the
    periodic stripes the network removed that one pass could not confirm (``LatticePeaks.unconfirmed``), the
    trace/retrace error where it was asked for (``trace_retrace_note``) and the jumps of whole lines taken off
    (``maed.line_jumps``), and the pixels taken for spikes (``maed.spikes``)."""
    notes = []
    if record.get("rows_measured", record.get("rows")) != record.get("rows"):
        notes.append(f"{path}: {record['rows_measured']} of {record['rows']} rows measured; the rest stay empty (NaN) in every output")
    trust = record["trust"]
    if trust["output"] != "network":
        share = f"over {trust['fallback_fraction']:.0%} of the frame" if trust["output"] == "blend" else "over the whole frame"
        notes.append(
            f"{path}: the trust guard did not publish the network's output {share}: the conservative result (rows "
            f"aligned only where line offsets show, at most a 1-pixel Gaussian) stands there, because {'; '.join(trust['reasons'])}"
        )
    if record.get("passes_frame") == "trace":
        notes.append(
            f"{path}: the passes could match a lattice period apart, so the frame is the trace's as recorded, not midway "
            "between the passes (`passes_frame` in the record; docs/files.md)"
        )
    if record["channel_why"] is not None:
        notes.append(f"{path}: channel {record['channel']} {pass_}: {record['channel_why']}")
    stripes = record["lattice"].get("removed_unconfirmed")
    if stripes:
        named = ", ".join(f"{p['period_px']:g} px at {p['angle_deg']:g} deg" for p in stripes)
        notes.append(
            f"{path}: the network removed periodic stripes that the {pass_} alone cannot tell from pick-up: {named} "
            "(period; angle counter-clockwise from the fast-scan axis). If they are a 1-D lattice (atomic or molecular "
            "rows), denoise a file that holds both passes: trace and retrace tell them apart."
        )
    figures = record.get("trace_retrace")
    if figures is not None:
        notes.append(f"{path}: {trace_retrace_note(figures)}")
    creep = record.get("z_creep", {})
    if creep.get("taken_off"):
        notes.append(
            f"{path}: the z piezo's creep taken off, from the {creep['from_row']} row scanned: "
            f"{_in_unit(creep['amplitude'], record.get('unit'))} there, relaxing over {creep['tau_rows']:g} rows "
            "(`z_creep` in the record)."
        )
    for jump in record.get("line_jumps", []):
        start, stop = jump["rows_moved"]
        hint = "" if jump["both_passes"] else ONE_PASS_JUMP_HINT
        notes.append(
            f"{path}: a jump of whole lines (a tip change) taken off: rows {start} to {stop - 1} moved by "
            f"{_in_unit(-jump['height'], record.get('unit'))}.{hint}"
        )
    spikes = record["features"]["spike_pixels"]
    if spikes:
        notes.append(
            f"{path}: {spikes} pixel{'s' if spikes > 1 else ''} on single lines taken for spikes (read wrong: no tip images "
            "a feature one line tall): what the network took off there is not given back, and a fallback takes the mean of "
            "the lines above and below there."
        )
    return notes


def denoise_files(
    inputs: Iterable[Path],
    out_dir: Path,
    backend: Backend,
    on_error: Callable[[str], None],
    channel: str | None = None,
    pass_: str = "trace",
    on_note: Callable[[str], None] = lambda message: None,
    trace_retrace: bool = False,
) -> list[Path]:
    """Denoise each input into ``out_dir/<stem>.npy``; bad inputs are reported and skipped.

    Instrument files are read at ``channel`` (None: the scan's signal, the topograph or, at constant
    height, the current; ``on_note`` is told which, where it is not the topograph) of pass ``pass_`` (``trace``
    or ``retrace``; ``forward`` and ``backward`` are accepted; ``both`` for a two-pass model, ``check_pass``), and also
    written as ``out_dir/<stem>.gwy`` with the raw and the denoised image to scale, so the
    scan range, the units and the raw data travel with the result. ``trace_retrace``: each record holds the scan's
    trace/retrace error (``file_trace_retrace``), and ``on_note`` is told it.
    """
    pass_ = check_pass(backend, pass_)
    out_dir = check_output_folder(Path(out_dir))
    paths = [Path(p) for p in inputs]
    refused = output_conflicts(paths, out_dir, channel, pass_)
    made = not out_dir.exists()
    check_writable(out_dir)
    written = []
    try:
        with FileProgress(len(paths)) as progress:
            for path in paths:
                written += _denoise_one(path, out_dir, backend, refused, on_error, on_note, channel, pass_, trace_retrace, progress)
                progress.done()
    finally:
        if made and not any(out_dir.iterdir()):  # every input failed: no empty folder of ours left behind
            out_dir.rmdir()
    return written


def _denoise_one(
    path: Path,
    out_dir: Path,
    backend: Backend,
    refused: dict[Path, str],
    on_error: Callable[[str], None],
    on_note: Callable[[str], None],
    channel: str | None,
    pass_: str,
    trace_retrace: bool,
    progress: FileProgress,
) -> list[Path]:
    """``denoise_files`` on one of its inputs: the paths written (none where it was refused or failed)."""
    if path in refused:
        on_error(refused[path])
        return []
    stem = out_dir / output_stem(path)
    earlier = read_record(stem)  # not_replaceable allowed replacing it
    try:
        outputs, record = denoise_file(
            path,
            stem,
            backend,
            channel,
            pass_,
            trace_retrace=trace_retrace,
            on_stage=lambda what: progress.stage(path.name, what),
        )
    except ScanError as exc:
        on_error(str(exc))
        return []
    except OSError as exc:  # an input that cannot be read, an earlier output that cannot be replaced
        on_error(f"{path}: {os_problem(exc, path)}")
        return []
    except MemoryError:  # one scan too large for this machine: its line, and the next file is denoised
        on_error(f"{path}: {OUT_OF_MEMORY}")
        return []
    for message in record_notes(path, record, pass_):
        on_note(message)
    if isinstance(earlier, dict):
        on_note(replaced_note(path, earlier, record))
    return outputs
