"""A scan's two passes, and each pass as ``maed denoise`` publishes it, levelled alike.

``maed adapt`` and ``maed eval --real`` judge a model on the same things: a file's topograph (or,
where it is flat, its first channel that varies) in trace and, where recorded, retrace, and each
pass denoised as ``maed denoise`` does it, compared with the pass in one levelled frame. The live
bridge reports a finished scan's trace/retrace error the same way (``trace_retrace_figures``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .classical import align_rows, fit_plane, run_pipeline
from .denoise import denoise_guarded
from .engine import Backend
from .normalise import ROW_ALIGNMENT
from .registration import register
from .scanfiles import ChannelImage, ScanFile, ScanFileError, read_file
from .trace_retrace import estimated_true_error, row_errors, summarise

CLASSICAL = "level+gauss"
"""The classical pipeline a model's trace/retrace error is set against: plane, median rows, Gaussian of 1 pixel."""
CLASSICAL_LABEL = "plane+rows+Gaussian"
"""``CLASSICAL`` as the evaluations' tables name it."""
MIN_PAIR_ROWS = 16
"""Rows both passes must share before their error is figured: fewer leave the bootstrap's blocks too few."""


def pick_image(path: Path, scan: ScanFile | None = None) -> ChannelImage:
    """The file's trace topograph, or its first trace channel that varies where the topograph is flat."""
    scan = scan if scan is not None else read_file(path)
    traces = [image for image in scan.images if image.pass_ == "trace"]
    ordered = sorted(traces, key=lambda image: image.name != scan.topograph)  # topograph first, then file order
    for image in ordered:
        if np.ptp(image.data[image.measured_rows]) > 0:
            return image
    raise ScanFileError(f"{path}: every forward channel is constant")


def pick_pair(path: Path) -> tuple[ChannelImage, ChannelImage | None]:
    """The image of ``pick_image`` and the same channel's retrace where one was recorded (else None)."""
    scan = read_file(path)
    trace = pick_image(path, scan)
    for image in scan.images:
        if (
            image.name == trace.name
            and image.pass_ == "retrace"
            and image.data.shape == trace.data.shape
            and np.ptp(image.data[image.measured_rows]) > 0
        ):
            return trace, image
    return trace, None


def reference_levelling(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A pass levelled as the real-scan checks compare methods on it: less its best plane, each row aligned to the one
    before by the median of their differences (``normalise.ROW_ALIGNMENT``), less its mean; with that plane and mean,
    which a method's output loses too."""
    data = np.asarray(data, dtype=np.float64)
    plane = fit_plane(data)
    levelled = align_rows(data - plane, ROW_ALIGNMENT)
    centre = float(levelled.mean())
    return levelled - centre, plane, centre


def guarded_outputs(
    data: np.ndarray,
    backends: dict[str, Backend],
    other_pass: np.ndarray | None = None,
    scanned_up: bool = False,
    retrace: bool | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
    """One pass levelled (best plane, each row aligned to the one before by the median of their differences,
    ``normalise.ROW_ALIGNMENT``: a reference that does not move with how the product aligns rows for its network, in
    the pass's units) and, per back end, its output as ``maed denoise`` publishes it (``denoise_guarded``) less the
    same plane, the rows' offsets as the back end left them, with what the guard published.
    ``noreference.match_rows`` takes the row offsets out of a comparison; ``trace_retrace.row_errors`` does so itself.
    ``scanned_up``: the pass's last row was scanned first (``scanfiles.scanned_upwards``); ``retrace``: the pass is
    the retrace (None: not known), as ``denoise_guarded`` is told."""
    data = np.asarray(data, dtype=np.float64)
    levelled, plane, centre = reference_levelling(data)
    outputs, verdicts = {}, {}
    for name, backend in backends.items():
        result = denoise_guarded(data, backend, other_pass=other_pass, scanned_up=scanned_up, retrace=retrace)
        outputs[name] = result.data.astype(np.float64) - plane - centre
        verdicts[name] = result.verdict.output
    return levelled, outputs, verdicts


def trace_retrace_figures(
    trace: np.ndarray,
    retrace: np.ndarray,
    backend: Backend,
    ratio: float = 1.0,
    scanned_up: bool = False,
    published: dict[str, np.ndarray] | None = None,
    order_known: bool = True,
) -> dict:
    """The trace/retrace error (``maed.trace_retrace``) of a scan's two passes (same shape, the retrace in the
    trace's orientation, rows not measured NaN), over the rows both measured: raw, the classical pipeline
    (``CLASSICAL``) and the back end's output as ``maed denoise`` publishes it, each pass denoised alone, with their
    95 % intervals and the estimated true error, in the scan's unit, and the slow axis's motion during the lines
    the registration found (``slow_shift``, lines). ``ratio``: the retrace's speed over the
    trace's; ``scanned_up``: the last row was scanned first (``scanfiles.scanned_upwards``), as ``maed denoise`` is
    told; ``published``: a pass (``trace``, ``retrace``) as ``maed denoise`` already published it with the other pass
    beside it, used instead of denoising it again where both passes measured every row; ``order_known``: the file says
    which way the slow axis ran (``scanfiles.scan_order_known``), so that each pass is denoised knowing its scan order.
    Lower is better; a model above the classical pipeline's does worse than a 1-pixel Gaussian there."""
    both = np.isfinite(trace).all(axis=1) & np.isfinite(retrace).all(axis=1)
    rows = int(both.sum())
    if rows < MIN_PAIR_ROWS:
        return {"rows": rows, "skipped": f"fewer than {MIN_PAIR_ROWS} rows measured in both passes"}
    t, r = trace[both], retrace[both]
    done = (published or {}) if both.all() else {}

    def output(data: np.ndarray, other: np.ndarray, pass_: str) -> tuple[np.ndarray, np.ndarray]:
        if pass_ in done:
            levelled, plane, centre = reference_levelling(data)
            return levelled, np.asarray(done[pass_], dtype=np.float64) - plane - centre
        retrace = pass_ == "retrace" if order_known else None
        levelled, outputs, _ = guarded_outputs(data, {"model": backend}, other, scanned_up, retrace)
        return levelled, outputs["model"]

    levelled_t, model_t = output(t, r, "trace")
    levelled_r, model_r = output(r, t, "retrace")
    registration = register(levelled_t, levelled_r, speed_ratio=ratio)
    raw = summarise(row_errors(levelled_t, levelled_r, levelled_t, levelled_r, registration))
    figures = {"rows": rows, "slow_shift": registration.slow_shift, "raw": {**raw.as_dict(), "true": float(raw.value / np.sqrt(2))}}
    outputs = {
        "classical": (run_pipeline(CLASSICAL, t), run_pipeline(CLASSICAL, r)),
        "model": (model_t, model_r),
    }
    for name, (out_t, out_r) in outputs.items():
        error = summarise(row_errors(out_t, out_r, levelled_t, levelled_r, registration))
        figures[name] = {**error.as_dict(), "true": estimated_true_error(error.value, raw.value)}
    return figures


def further_than_raw(figures: dict) -> bool:
    """Whether the model's output in ``figures`` (``trace_retrace_figures``) lies further from the other raw pass than
    the raw pass itself, their 95 % intervals apart: on that scan it changed more than the noise. (Noise that both
    passes share, which the model rightly removes, counts as error here: on 3 of 90 simulated pairs the published
    output was at 1.01 to 1.24 times raw's error while better than raw against the truth, ``docs/model.md``.)"""
    return "model" in figures and figures["model"]["low"] > figures["raw"]["high"]


_PREFIXES = ((1e-6, 1e6, "µ"), (1e-9, 1e9, "n"), (0.0, 1e12, "p"))
"""(least magnitude, factor, prefix) of the units metres and amperes are shown in, largest first."""


def display_unit(unit: str, magnitude: float = 0.0) -> tuple[float, str]:
    """The factor to the unit a figure of about ``magnitude`` in ``unit`` is shown in, and that unit: metres and
    amperes as pico-, from a nano- (a thousand pm) as nano-, from a micro- as micro- (a rough scan's 1.88 nm was
    shown as 1.88e+03 pm); other units as they are."""
    if unit not in ("m", "A"):
        return 1.0, unit
    return next(((factor, prefix + unit) for floor, factor, prefix in _PREFIXES if abs(magnitude) >= floor), (1e12, "p" + unit))
