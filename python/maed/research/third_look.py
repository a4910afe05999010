"""A third look at a real surface: one pass, the mean of one-pass outputs and the two-pass model on a real scan,
scored against another scan of the same area that none of them saw (issue 12's check on real scans).

Where no clean surface exists, a second recording of it is the next best reference: its noise is independent of
the scored scan's, so a method's squared error against it is its true squared error plus the look's noise, the same
for every method, and the methods rank as they would against the surface. The look is brought onto the scored scan's
grid by block means (a look at twice the pixels has half the noise there), both lose their best plane, the look is
moved by the drift between the two (``bridge.alerts.drift.frame_shift``, to a fraction of a pixel), and each
difference loses its per-row offsets (line offsets are noise every method removes on purpose) and a margin of
``MARGIN`` pixels. The error is the root mean square over the rows, with a 95 % interval over blocks of rows
(``maed.trace_retrace.summarise``). Both of the look's passes serve as references: its trace has the scored trace's
feedback lag, its retrace the opposite one, so a method that places features where one pass has them is favoured by
one reference and not by the other.

What it cannot see: structure finer than the look's registration. A drift or creep of a fraction of a period between
the two recordings puts a fine lattice out of phase, so the look counts a kept fine lattice as error, as it counts
kept pick-up: the check favours methods that smooth it away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..bridge.alerts.drift import frame_shift
from ..classical import fit_plane, run_pipeline
from ..engine import Backend
from ..passes import CLASSICAL, CLASSICAL_LABEL, pick_pair
from ..registration import speed_ratio
from ..trace_retrace import summarise
from .pass_methods import pass_outputs

THIRD_LOOKS = (("A200621.161352.dat", "A200621.160730.dat"),)
"""(scored scan, its third look): one frame recorded at 256 pixels and, six minutes before, at 512 with the same
parameters (``PROVENANCE.md``); the only pair of one area in ``shared/data/real-stm``. Both are training references of
the shipped weights (``maed.data.real_refs``): the networks have seen this surface, with simulated noise."""
MARGIN = 8
"""Pixels left out at every edge: the look's shift, and the tiles' and the registration's edges."""
COARSE_SIGMA = 1.5
"""Gaussian (pixels) over both the outputs and the look for the errors at the features' scale: what is finer than the
registration (a fine lattice's phase, pixel noise) out of the comparison, for every method alike."""
RAW = "raw trace"


def reduce_to(look: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``look`` as block means on a grid of ``shape``, which must divide it by one whole factor."""
    factor = look.shape[0] // shape[0]
    if factor < 1 or look.shape != (shape[0] * factor, shape[1] * factor):
        raise ValueError(f"a look of {look.shape} pixels does not reduce to {shape} by block means")
    return look.reshape(shape[0], factor, shape[1], factor).mean(axis=(1, 3))


def _coarse(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(image, COARSE_SIGMA, mode="nearest")


def _levelled(image: np.ndarray) -> np.ndarray:
    return image - fit_plane(image)


def look_shift(scored: np.ndarray, look: np.ndarray) -> tuple[float, float]:
    """How far ``look`` (on ``scored``'s grid) must move, rows down and columns right, to lie on ``scored``: the drift
    between the two (``frame_shift``)."""
    shift, why = frame_shift(_levelled(look), _levelled(scored))
    if shift is None:
        raise ValueError(f"the look is not the scored scan's area: {why}")
    return shift.rows, shift.cols


def errors_against(outputs: dict[str, np.ndarray], look: np.ndarray, shift: tuple[float, float]) -> dict[str, dict]:
    """Per method, its error against ``look`` (on the outputs' grid) moved by ``shift``."""
    moved = _levelled(ndimage.shift(look, shift, order=3, mode="nearest"))
    inner = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    errors = {}
    for name, out in outputs.items():
        difference = (_levelled(out) - moved)[inner]
        difference = difference - difference.mean(axis=1, keepdims=True)
        errors[name] = summarise((difference**2).mean(axis=1)).as_dict()
    return errors


def third_look(folder: Path, one_pass: Backend, two_pass: Backend) -> list[dict]:
    """Every pair of ``THIRD_LOOKS`` found in ``folder``: the methods' errors against each pass of the look."""
    results = []
    for scored_name, look_name in THIRD_LOOKS:
        if not ((folder / scored_name).is_file() and (folder / look_name).is_file()):
            continue
        trace, retrace = pick_pair(folder / scored_name)
        look_trace, look_retrace = pick_pair(folder / look_name)
        if retrace is None or look_retrace is None:
            raise ValueError(f"{scored_name} and {look_name} must both hold both passes")
        if not all(image.measured_rows.all() for image in (trace, retrace, look_trace, look_retrace)):
            raise ValueError(f"{scored_name} and {look_name} must be complete scans")
        t, r = trace.data.astype(np.float64), retrace.data.astype(np.float64)
        outputs = {RAW: t, CLASSICAL_LABEL: run_pipeline(CLASSICAL, t), **pass_outputs(t, r, speed_ratio(trace.header), one_pass, two_pass)}
        result = {"scored": scored_name, "look": look_name, "unit": trace.unit, "against": {}}
        for pass_, look in (("trace", look_trace), ("retrace", look_retrace)):
            reduced = reduce_to(look.data.astype(np.float64), t.shape)
            shift = look_shift(t, reduced)
            result["against"][pass_] = {
                "errors": errors_against(outputs, reduced, shift),
                "coarse_errors": errors_against({name: _coarse(out) for name, out in outputs.items()}, _coarse(reduced), shift),
                "shift_px": {"rows": shift[0], "cols": shift[1]},
            }
        results.append(result)
    return results


def report(results: list[dict]) -> list[str]:
    """The section of ``passes.md`` on the third looks."""
    lines = [
        "",
        "## A third look on a real scan",
        "",
        "Each method on a real scan, scored against another scan of the same area that none of them saw "
        "(`maed.research.third_look`: the look on the scan's grid by block means, planes off, moved by the drift "
        "between the two, per-row offsets and 8 pixels at the edges off; root mean square over the rows, 95 % interval "
        "over blocks of rows). The look's own noise is in every figure alike, so only the ranking and the differences "
        "count. Against the look's trace, a method placing features where the scored trace has them is favoured; "
        "against its retrace, one placing them where the retrace has them. Structure finer than the registration "
        "(a lattice whose phase drift moved between the two recordings) counts as error where a method keeps it, as "
        "pick-up does: the check favours smoothing fine periodic structure away. The last two columns compare the "
        f"outputs and the look both through a Gaussian of {COARSE_SIGMA} pixels: the features' scale, above the "
        "registration's, where what a method does to the surface's shapes shows.",
    ]
    if not results:
        return lines + ["", "Not run: the real scans (`../shared/data/real-stm`) were not found."]
    for r in results:
        unit = r["unit"]
        scale, shown = (1e12, "pm") if unit == "m" else (1.0, unit)
        lines += [
            "",
            f"`{r['scored']}` against `{r['look']}` (both training references of the shipped weights: the networks have "
            "seen this surface, under simulated noise). Error in " + shown + ":",
            "",
            "| method | against the look's trace | against the look's retrace | the same at the features' scale: trace | retrace |",
            "|---|---|---|---|---|",
        ]
        for name in r["against"]["trace"]["errors"]:
            cells = []
            for key in ("errors", "coarse_errors"):
                for pass_ in ("trace", "retrace"):
                    e = r["against"][pass_][key][name]
                    cells.append(f"{e['value'] * scale:.3f} [{e['low'] * scale:.3f}, {e['high'] * scale:.3f}]")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        shifts = ", ".join(
            f"{p} {r['against'][p]['shift_px']['rows']:+.2f} rows, {r['against'][p]['shift_px']['cols']:+.2f} columns"
            for p in ("trace", "retrace")
        )
        lines += ["", f"The look was moved by: {shifts}."]
    return lines
