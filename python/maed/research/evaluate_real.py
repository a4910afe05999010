"""``maed eval --real``: how the denoiser does on real instrument scans, which have no clean reference.

Every Nanonis, Createc or RHK file in the folder (recognised by content) is read at its
topograph (or, where the topograph is flat as in constant-height mode, its first channel that
varies), trace and, where recorded, retrace (mirrored into the trace's orientation by the
readers), over the rows measured in both. Each pass is denoised alone by each model, by the
classical pipeline plane + median rows + Gaussian of 1 pixel (``classical.PIPELINES
["level+gauss"]``) and by BM3D where the optional ``bm3d`` package is installed
(``maed.research.bm3d_eval``). The checks (``maed.noreference``, ``maed.trace_retrace``):

- what each method removed from the trace: its rms and its whiteness across the rows;
- the power kept at the trace's lattice peaks (at the same place in the retrace's spectrum) and
  at its moving peaks (pick-up, which moved between the passes);
- the depth of the scan's point defects (the classical output's most isolated extrema) and the
  largest change beside each;
- the trace/retrace error with its 95 % interval over rows;

and the acceptance criteria of the real test scans (``data.real_refs.TEST_SOURCES``, held out of
training) as pass or fail. Writes ``real.md`` (tables and definitions), ``real.json`` (the
numbers) and ``real_<stem>.png`` (the figures; the measurements belong to the labs that
recorded them, see the folder's PROVENANCE.md, so they stay out of git; the numbers are ours).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..classical import run_pipeline
from ..data.real_refs import REPO_ROOT, SOURCES, TEST_SOURCES, default_real_dir
from ..engine import Backend, load_backend
from ..lattice import power_spectrum, significant_peaks
from ..noreference import (
    ANNULUS,
    DEFECT_RADIUS,
    DEFECTS,
    LAGS,
    MIN_ISOLATION,
    SAME_PLACE,
    SCALES,
    changes_beside,
    classify_peaks,
    defect_depth,
    find_defects,
    match_rows,
    peak_power,
    removed_rms,
    slow_axis_whiteness,
    whiteness,
)
from ..passes import CLASSICAL, CLASSICAL_LABEL, display_unit, guarded_outputs, pick_pair
from ..registration import BAND_ROWS, KNOT_PX, SLOW_GAIN, register, speed_ratio
from ..scanfiles import ScanFileError, known_retrace, scanned_upwards, sniff
from ..trace_retrace import BLOCK_ROWS, estimated_true_error, removed_noise, row_errors, summarise
from ..zoo import PRODUCT
from . import bm3d_eval
from .bench import cpu_model
from .pages import regenerate
from .plots_real import figure_real_scan

BM3D = "BM3D"
RAW = "raw"

LATTICE_KEPT = (0.8, 1.2)
LATTICE_IN_RESIDUAL = 0.1
DEPTH_TOLERANCE = 0.15
CHANGE_BESIDE = 2.0  # times the method's removed-noise rms


def scan_files(folder: Path) -> list[Path]:
    """The instrument scan files in ``folder``, by name."""
    return [path for path in sorted(Path(folder).iterdir()) if path.is_file() and sniff(path) is not None]


@dataclass
class PassResult:
    """One pass, levelled, and every method's output levelled alike: as the method publishes it, and with its row
    offsets matched to the input's (what is judged)."""

    levelled: np.ndarray
    published: dict[str, np.ndarray] = field(default_factory=dict)
    bm3d_sigma: float | None = None

    @cached_property
    def outputs(self) -> dict[str, np.ndarray]:
        """Every output with its row offsets matched to the levelled input's (``noreference.match_rows``)."""
        return {name: match_rows(self.levelled, out) for name, out in self.published.items()}


def denoise_pass(
    data: np.ndarray,
    backends: dict[str, Backend],
    with_bm3d: bool,
    other_pass: np.ndarray | None = None,
    scanned_up: bool = False,
    retrace: bool | None = None,
) -> PassResult:
    """Level one pass (best plane, medians of row differences: ``passes.guarded_outputs``) and run every method.

    Models run as ``maed denoise`` runs them (``denoise_guarded``, with the trust guard and, where
    ``other_pass`` is given, the lattice peaks both passes show given back); their outputs lose the same plane; the
    classical pipeline runs on the raw pass (it levels by itself); BM3D runs on the levelled pass.
    What is judged has each output's per-row offsets matched to the levelled input (``PassResult.outputs``).
    ``scanned_up``: the pass's last row was scanned first (``scanfiles.scanned_upwards``); ``retrace``: the pass is the
    retrace (None: not known).
    """
    levelled, published, _ = guarded_outputs(data, backends, other_pass, scanned_up, retrace)
    published[CLASSICAL_LABEL] = run_pipeline(CLASSICAL, data)
    sigma = None
    if with_bm3d:
        published[BM3D], sigma = bm3d_eval.denoise(levelled)
    return PassResult(levelled, published, sigma)


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference != 0 else None


def check_scan(trace: PassResult, retrace: PassResult | None, ratio: float = 1.0) -> dict:
    """Every check of one scan: per method (raw first), and the scan's peaks, defects and registration.

    ``ratio``: the retrace's speed over the trace's (``registration.speed_ratio``).
    """
    x = trace.levelled
    if retrace is not None:
        lattice, moving = classify_peaks(x, retrace.levelled)
        registration = register(x, retrace.levelled, speed_ratio=ratio)
        raw_rows = row_errors(x, retrace.levelled, x, retrace.levelled, registration)
    else:
        lattice, moving = significant_peaks(power_spectrum(x)), np.zeros((0, 2), dtype=int)
        registration, raw_rows = None, None
    classical = trace.outputs[CLASSICAL_LABEL]
    defects = find_defects(classical, removed_rms(x - classical))
    raw_depths = [defect_depth(x, d) for d in defects]
    methods: dict[str, dict] = {RAW: {"defects": [{"depth": d} for d in raw_depths]}}
    raw_error = None
    if raw_rows is not None:
        raw = summarise(raw_rows)
        raw_error = raw.value
        methods[RAW]["trace_retrace"] = {**raw.as_dict(), "true": raw.value / np.sqrt(2)}
    for name, out in trace.outputs.items():
        residual = x - out
        rms = removed_rms(residual)
        result = {
            "removed_rms": rms,
            "slow_axis_whiteness": slow_axis_whiteness(residual),
            "whiteness": whiteness(residual),
            "lattice": peak_power(x, out, lattice),
            "moving": peak_power(x, out, moving),
            "defects": [],
        }
        for defect, d_raw, change in zip(defects, raw_depths, changes_beside(residual, defects)):
            depth = defect_depth(out, defect)
            result["defects"].append({"depth": depth, "kept": _ratio(depth, d_raw), "change_beside": change})
        if retrace is not None:
            error = summarise(row_errors(out, retrace.outputs[name], x, retrace.levelled, registration))
            result["trace_retrace"] = {**error.as_dict(), "true": estimated_true_error(error.value, raw_error)}
            result["removed_noise"] = removed_noise(residual, retrace.levelled - retrace.outputs[name], registration)
        methods[name] = result
    scan = {
        "lattice_peaks": lattice.tolist(),
        "moving_peaks": moving.tolist(),
        "has_retrace": retrace is not None,
        "defects": [{**d, "depth_raw": depth} for d, depth in zip(defects, raw_depths)],
        "methods": methods,
    }
    if registration is not None:
        scan["registration"] = {
            "band_shifts": registration.band_warps.mean(axis=1).tolist(),
            "warp_range": [float(registration.warp.min()), float(registration.warp.max())],
            "sigma_median": float(np.median(registration.band_sigma)),
            "lag_px": list(registration.lag_px),
            "speed_ratio": ratio,
            "compared_columns": len(range(x.shape[1])[registration.columns(x.shape[1])]),
            "slow_shift_lines": registration.slow_shift,
            "compared_lines": len(range(x.shape[0])[registration.lines(x.shape[0])]),
        }
    if trace.bm3d_sigma is not None:
        scan["bm3d_sigma"] = trace.bm3d_sigma
    return scan


TIE = 1e-4
"""Relative difference within which the criteria call two figures equal: a model's output is float32, and where the
guard published the conservative result its figures match the classical pipeline's (float64) to about 1e-5, on
either side. Equal passes "no higher than" and "at least" (whiteness) and fails "below" (trace/retrace): until the
forty-fifth session the trace/retrace error was compared as it came, and `example_TOPO.sxm`, where the guard falls
back and its error equals the classical pipeline's to 2e-7, passed or failed by the rounding of the day."""


def _removed(figures: dict) -> float:
    """What the whiteness criterion counts as noise removed: the removed noise where the scan has both passes (a
    method that takes structure off removes more rms, not more noise), else the removed rms."""
    return figures.get("removed_noise", figures["removed_rms"])


def _whiteness(figures: dict, classical: dict, removed: Callable[[dict], float] = _removed) -> bool:
    """The whiteness criterion: a residual no more correlated across the rows than the classical pipeline's, while
    ``removed`` (what counts as removed) is at least its, each within ``TIE``."""
    return bool(
        figures["slow_axis_whiteness"] <= classical["slow_axis_whiteness"] * (1 + TIE)
        and removed(figures) >= removed(classical) * (1 - TIE)
    )


def criteria(scan: dict, method: str) -> dict[str, bool | None]:
    """The acceptance criteria of a real test scan for ``method``: True (pass), False (fail), None (n/a)."""
    r, cl, raw = scan["methods"][method], scan["methods"][CLASSICAL_LABEL], scan["methods"][RAW]
    out: dict[str, bool | None] = {}
    lat = r["lattice"]
    out["lattice"] = (
        None if not lat["peaks"] else bool(LATTICE_KEPT[0] <= lat["kept"] <= LATTICE_KEPT[1] and lat["in_residual"] <= LATTICE_IN_RESIDUAL)
    )
    out["whiteness"] = _whiteness(r, cl)
    defects = r["defects"]
    out["defects"] = (
        None
        if not defects
        else all(
            d["kept"] is not None and abs(d["kept"] - 1) <= DEPTH_TOLERANCE and d["change_beside"] <= CHANGE_BESIDE * r["removed_rms"]
            for d in defects
        )
    )
    if "trace_retrace" in r:
        e = r["trace_retrace"]["value"]
        out["trace_retrace"] = bool(e < raw["trace_retrace"]["value"] * (1 - TIE) and e < cl["trace_retrace"]["value"] * (1 - TIE))
    else:
        out["trace_retrace"] = None
    versus = []
    if lat["peaks"]:
        versus.append(lat["kept"] >= cl["lattice"]["kept"])
    for d, c in zip(defects, cl["defects"]):
        if d["kept"] is not None and c["kept"] is not None:
            versus.append(d["kept"] >= c["kept"])
    out["vs_classical"] = None if not versus else bool(all(versus))
    decided = [v for v in out.values() if v is not None]
    out["all"] = bool(all(decided))
    return out


# ---- the report ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mark(value: bool | None) -> str:
    return {True: "pass", False: "**fail**", None: "n/a"}[value]


def _set(scan: dict) -> str:
    return "test" if scan["test_source"] else "training"


def _scan_table(scans: list[dict]) -> str:
    lines = [
        "| scan | set (source) | channel | pixels (compared rows) | range | retrace warp, px (mean per band; "
        "range; median sigma; lag) "
        "| lattice / moving peaks | point defects (isolation) | BM3D noise sigma |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scans:
        rows, cols = s["shape"]
        size = f"{rows}x{cols}" + (f" ({s['rows_compared']})" if s["rows_compared"] < rows else "")
        if "registration" in s:
            reg = s["registration"]
            shifts = (
                ", ".join(f"{v:+.2f}" for v in reg["band_shifts"])
                + f"; {reg['warp_range'][0]:+.2f} to {reg['warp_range'][1]:+.2f}; {reg['sigma_median']:.2f}; "
                + f"{reg['lag_px'][0]:.2f}"
            )
        else:
            shifts = "no retrace"
        peaks = (
            f"{len(s['lattice_peaks'])} / {len(s['moving_peaks'])}" if s["has_retrace"] else f"{len(s['lattice_peaks'])} (unclassified) / –"
        )
        defects = ", ".join(f"{d['kind']} ({d['isolation']:.0f}, {ANNULUS[1] * d['scale']:.0f} px)" for d in s["defects"]) or "none"
        scale, unit = display_unit(s["unit"])
        sigma = f"{s['bm3d_sigma'] * scale:.3g} {unit}" if "bm3d_sigma" in s else "–"
        lines.append(
            f"| {s['file']} | {_set(s)} ({s['source']}) | {s['channel']} ({s['unit']}) | {size} "
            f"| {s['scan_range_m'][0] * 1e9:.4g} nm | {shifts} | {peaks} | {defects} | {sigma} |"
        )
    return "\n".join(lines) + "\n"


def _method_table(scans: list[dict]) -> str:
    lines = [
        "| scan | set | method | trace/retrace error (95 % CI) | est. true error | removed rms | removed noise "
        "| slow-axis whiteness | lattice kept / in residual | moving kept | defect depth kept | largest change beside / rms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scans:
        scale, unit = display_unit(s["unit"])
        for name, r in s["methods"].items():
            tr = r.get("trace_retrace")
            err = f"{tr['value'] * scale:.3g} ({tr['low'] * scale:.3g}–{tr['high'] * scale:.3g}) {unit}" if tr else "–"
            true = f"{tr['true'] * scale:.3g} {unit}" if tr else "–"
            if name == RAW:
                depths = ", ".join(f"{d['depth'] * scale:.3g}" for d in r["defects"])
                lines.append(
                    f"| {s['file']} | {_set(s)} | raw | {err} | {true} | – | – | – | – | – "
                    f"| {'depth ' + depths + ' ' + unit if depths else '–'} | – |"
                )
                continue
            lat, mov = r["lattice"], r["moving"]
            lattice = f"{_fmt(lat['kept'])} / {_fmt(lat['in_residual'])}" if lat["peaks"] else "–"
            kept = ", ".join(_fmt(d["kept"]) for d in r["defects"]) or "–"
            beside = ", ".join(_fmt(d["change_beside"] / r["removed_rms"] if r["removed_rms"] else None) for d in r["defects"]) or "–"
            noise = f"{r['removed_noise'] * scale:.3g} {unit}" if "removed_noise" in r else "–"
            lines.append(
                f"| {s['file']} | {_set(s)} | {name} | {err} | {true} | {r['removed_rms'] * scale:.3g} {unit} | {noise} "
                f"| {r['slow_axis_whiteness']:.3f} | {lattice} | {_fmt(mov['kept']) if mov['peaks'] else '–'} "
                f"| {kept} | {beside} |"
            )
    return "\n".join(lines) + "\n"


def _criteria_table(scans: list[dict], judged: list[str]) -> str:
    lines = [
        "| scan | method | lattice kept 0.8–1.2, ≤ 0.1 in residual | slow-axis whiteness ≤ classical's, removes ≥ "
        "| defect depth within 15 %, change beside ≤ 2 rms | trace/retrace < raw and < classical "
        "| keeps ≥ classical (lattice, defects) | all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scans:
        if not s["test_source"]:
            continue
        for name in judged:
            if name not in s["methods"]:
                continue
            c = s["criteria"][name]
            lines.append(
                f"| {s['file']} | {name} | {_mark(c['lattice'])} | {_mark(c['whiteness'])} "
                f"| {_mark(c['defects'])} | {_mark(c['trace_retrace'])} | {_mark(c['vs_classical'])} "
                f"| {_mark(c['all'])} |"
            )
    return "\n".join(lines) + "\n"


def _summary(scans: list[dict], judged: list[str]) -> str:
    lines = []
    test = [s for s in scans if s["test_source"]]
    for name in judged:
        rows = [s["criteria"][name] for s in test if name in s["criteria"]]
        if not rows:
            continue
        passed = sum(r["all"] for r in rows)
        parts = []
        for key, label in (
            ("lattice", "lattice"),
            ("whiteness", "whiteness"),
            ("defects", "defects"),
            ("trace_retrace", "trace/retrace"),
            ("vs_classical", "keeps ≥ classical"),
        ):
            decided = [r[key] for r in rows if r[key] is not None]
            parts.append(f"{label} {sum(decided)} of {len(decided)}")
        by_rms = sum(
            _whiteness(s["methods"][name], s["methods"][CLASSICAL_LABEL], lambda figures: figures["removed_rms"])
            for s in test
            if name in s["criteria"]
        )
        parts.append(f"whiteness judged by the removed rms instead {by_rms} of {len(rows)}")
        lines.append(
            f"- **{name}**: {passed} of {len(rows)} test scans pass every criterion that applies "
            f"(passed of applicable: {'; '.join(parts)})."
        )
    return "\n".join(lines) + "\n"


def _report(folder: str, scans: list[dict], skipped: list[str], models: list[str], bm3d_note: str, provenance: bool, again: str) -> str:
    """The page: ``folder`` as shown, ``provenance`` whether it holds a ``PROVENANCE.md``, ``again`` the command that
    writes the page again (``pages.regenerate``)."""
    lags = f"{LAGS.start} to {LAGS.stop - 1}"
    judged = models + ([BM3D] if any(BM3D in s["methods"] for s in scans) else [])
    text = [
        "# Denoising real STM scans (no clean reference)",
        "",
        f"The scans in `{folder}` were recorded on real instruments by others"
        + ("; its `PROVENANCE.md` says where each comes from. " if provenance else " (the folder says nothing of where each comes from). ")
        + "The measurements may belong to the labs that recorded them, so their figures "
        "(`real_*.png`, written beside this file by `maed eval --real`: raw | each model | its residual | "
        "plane+rows+Gaussian | BM3D on one height scale, each output as the method publishes it, the residual "
        "with its row offsets off, centred on 0 with the same span, log "
        "Fourier power below with lattice peaks circled cyan and moving peaks magenta, point defects circled "
        "on the raw image) are listed in `.gitignore` and not committed: look at them locally. The numbers "
        "below are ours.",
        "",
        "Scans are split by source (`maed.data.real_refs`): **test** scans come from the sources "
        f"{', '.join(TEST_SOURCES)}, never trained on; **training** scans come from sources whose clean scans "
        "are training references (their numbers are shown, not judged).",
        "",
        "## Method",
        "",
        "Each scan is read at its topograph (where the topograph is flat, as in constant-height mode, at its "
        "first channel that varies), trace and retrace (the retrace mirrored into the trace's orientation), "
        "over the rows measured in both. Each pass is levelled (best plane, each row aligned to the one before by "
        "the median of their differences: a reference that does not move with how the product aligns the rows it "
        "hands its network) and denoised alone by each method: the models (`--models`), the classical pipeline "
        "**plane+rows+Gaussian** (best plane, each row's median, Gaussian of 1 pixel; "
        f'`classical.PIPELINES["{CLASSICAL}"]`) and **BM3D** (the `bm3d` package, on the levelled pass). '
        f"{bm3d_note} Each output's row offsets are matched to the levelled input's (the mean of each row of "
        "input minus output is added back): line offsets are noise every method removes on purpose, and no "
        "figure below judges them. The residual is levelled input minus output, of the trace.",
        "",
        "- **removed rms**: root mean square of the residual, each row's mean off.",
        "- **removed noise**: the removed rms with the power that the other pass's residual (the same method on the "
        "retrace, registered) shares at the same place taken off: structure taken off is in both passes, noise in one "
        "(`trace_retrace.removed_noise`; scans with both passes). The whiteness criterion compares the removed noise, "
        'as the trust issue words it ("while removing at least as much noise"), where a scan has both passes, else '
        "the removed rms: where a method takes structure off (a Gaussian damping a lattice or rounding a step), its "
        "removed rms exceeds the noise it removed, and a criterion on the rms would reward that. Noise both passes "
        "share (line-locked pick-up) counts as structure there, so the removed noise errs low for every method alike.",
        f"- **slow-axis whiteness**: mean |normalised autocorrelation| of the residual, each row's mean off, at "
        f"lags {lags} rows across the rows. Raw STM noise is correlated along the rows (the fast axis) and "
        "independent from row to row, so removed noise alone scores near 0 (white noise of 256x256 pixels: "
        "about 0.003); removed structure (edges, atoms, molecules) or the rest of streaks score tenths.",
        "- **lattice / moving peaks**: the trace's significant isolated Fourier peaks outside the centre "
        "(`maed.lattice.significant_peaks`: Hann-windowed power, a local maximum log2(10 x pixels) times above "
        "its local spectral background, at least 1e-5 of the power outside the centre, 4 bins or more from "
        f"it). A peak is a **lattice** peak if the retrace holds at least {SAME_PLACE} of its 3x3-bin power at "
        "the same place (the retrace's strongest 3x3 within one bin of it), and **moving** otherwise: pick-up "
        "in time lands elsewhere in the spectrum of a pass recorded the other way, a lattice does not. "
        "Without a retrace the peaks are unclassified and all judged as lattice.",
        "- **lattice kept / in residual**: the Fourier power in the 3x3 bins of the lattice peaks, in the "
        "output and in the residual, as a share of the input's. **moving kept**: the same at the moving peaks "
        "(should be low: pick-up should go).",
        f"- **point defects**: at each scale s of {', '.join(f'{v:g}' for v in SCALES)}, the classical output's "
        f"pixels that are its maximum (bright) or minimum (dark) over the square of half-side {DEFECT_RADIUS} s "
        f"pixels, scored by their depth (value less the median of the ring {ANNULUS[0]} s to {ANNULUS[1]} s "
        "pixels around) over the larger of the ring's robust spread (1.4826 MAD) and the classical residual's "
        f"rms; the {DEFECTS} highest scores of at least {MIN_ISOLATION:g} over all scales, none within "
        "another's ring, are the scan's point defects (isolation and ring radius in brackets). A step edge "
        "(its ring spans two terraces) or an atom of a lattice (its ring holds the lattice) scores low, an "
        "isolated adsorbate or vacancy high, highest at the scale whose ring just clears it. **depth**: the mean "
        "over the 3x3 pixels at the defect less its ring's median (the same for every image; 3x3 keeps raw's "
        "pixel noise to a third); **depth kept**: the method's depth over raw's. **largest change beside**: "
        "the largest |3x3 mean of the residual| over the "
        "ring, over the method's removed rms: averaging 3x3 takes most pixel noise out, so what remains is a "
        "feature-sized change beside the defect, a new extremum (ringing, an invented pattern) or structure "
        "taken away.",
        "- **trace/retrace error** E = sqrt(0.5 (|f(trace) - retrace|^2 + |f(retrace) - trace|^2)): each pass "
        "denoised alone and compared with the other, raw pass (`maed.trace_retrace`), mean squares over the "
        "compared pixels. The retrace is registered onto the trace (`maed.registration`): the whole scan's shift "
        "from the rows' cross-correlation (searched within 1/8 of a row); then per band of "
        f"{BAND_ROWS} rows a smooth x-warp (cubic spline, knots every {KNOT_PX} pixels) by robust Gauss-Newton "
        "on the difference (lines that are outliers among their neighbours', a scar or a tip change, left "
        "out; Tukey weights per pixel), interpolated between bands; and the feedback lag, a first-order "
        "filter running in each pass's own time order (opposite in the two), turned from the retrace's into the "
        "trace's by an all-pass (kept only where it matches clearly better than the warp alone; the "
        "header's speed ratio scales the retrace's lag); per band one shift instead of the warp where that "
        "leaves the smaller difference; and, on the retrace so registered, the slow axis's motion during the "
        "lines (where a controller ramps the slow axis on while it scans a line pair, each column's retrace pixel "
        "lies further along it than its trace pixel: up to a line at the left end, none at the turnaround; read "
        f"back by one Fourier phase per column, kept where it matches {SLOW_GAIN:.0%} better, the warp then sought "
        "again; the first and last 3 rows, where the retrace would be read beyond the frame, are left out of the "
        "comparison). The all-pass and each row's "
        "mean displacement are "
        "one Fourier phase per row (which keeps the noise power), the rest of the warp windowed-sinc "
        "interpolation; only the columns both passes cover are compared. Each difference "
        "loses its per-row offsets and one common slope along the rows. **raw** is the same formula with f the "
        "identity: rms(trace - retrace). Where the passes differ by independent noise of variance s^2 only, "
        "E^2 = e^2 + s^2 for a method of true error e and raw's E^2 = 2 s^2, so raw, classical and models are "
        "ranked alike; **est. true error** = sqrt(max(E^2 - E_raw^2 / 2, 0)) takes that noise floor off "
        "(raw's is rms(trace - retrace)/sqrt(2)); everything else that differs between the passes (smear "
        "registration did not undo, pick-up that moved, tip changes) counts as noise there, so it errs low. "
        f"The 95 % interval is a bootstrap over blocks of {BLOCK_ROWS} rows (2000 resamples, percentiles).",
        "",
        "What the figures cannot see: E is a mean over the whole scan, so erasing one defect of a few hundred "
        "pixels moves it little (the defect criteria are there for that); est. true error is clamped at 0 "
        "where E falls below raw's noise floor estimate; BM3D's noise PSD is one for the whole pass, so where "
        "the noise is confined to a minority of rows (a streaky molecule in a constant-height current image) "
        "the median over rows misses it and BM3D removes little; a row-alternating pattern that both passes "
        "share counts as a lattice peak (at the top or bottom of the spectrum).",
        "",
        "## Acceptance criteria (test scans)",
        "",
        "Per test scan and method: **lattice**: lattice-peak power kept between 0.8 and 1.2 and at most 0.1 in "
        "the residual (n/a: no lattice peak). **whiteness**: slow-axis whiteness no higher than "
        "plane+rows+Gaussian's while the removed noise (without a retrace: the removed rms) is at least its. "
        "Until the twenty-first session this compared the removed rms; the summary gives both counts. "
        "**defects**: every point defect's depth "
        "kept within 15 % of raw's and its largest change beside at most 2 x the method's removed rms (n/a: no "
        "defect found). **trace/retrace**: E below raw's and below plane+rows+Gaussian's, a tie (within a relative "
        "1e-4: the guard's fallback matches the classical pipeline that closely) not below (n/a: no retrace). "
        "**keeps ≥ classical**: lattice kept and each defect's depth kept no lower than plane+rows+Gaussian's. "
        "Point estimates decide; the intervals are there to judge how close a call is. BM3D is judged by the "
        "same criteria for comparison.",
        "",
        _summary(scans, judged),
        _criteria_table(scans, judged),
        "## Scans",
        "",
        _scan_table(scans),
        "## Every method on every scan",
        "",
        "Errors and rms in the channel's unit (pm for heights, pA for currents); depth kept and change beside "
        "one value per point defect, in the order of the scan table.",
        "",
        _method_table(scans),
    ]
    if skipped:
        text += ["Not read: " + "; ".join(skipped), ""]
    text.append(f"Machine: {cpu_model()}, {platform.system()}; {again}.")
    return "\n".join(text) + "\n"


def evaluate_real(folder: Path | None, out_dir: Path, models: list[str], with_bm3d: bool | None = None) -> list[dict]:
    """Check every model on every real scan in ``folder`` (None: the default) and write the report.

    ``with_bm3d``: None runs BM3D where the ``bm3d`` package imports; False never.
    """
    given = folder is not None
    folder = Path(folder) if given else default_real_dir()
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder of real scans")
    paths = scan_files(folder)
    if not paths:
        raise ValueError(f"{folder}: no Nanonis, Createc or RHK scan files in it")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    installed = bm3d_eval.available()
    with_bm3d = installed if with_bm3d is None else (with_bm3d and installed)
    if with_bm3d:
        bm3d_note = (
            "BM3D's noise PSD is estimated from the pass itself, from its row-to-row differences "
            "(`maed.research.bm3d_eval`: per frequency along the rows, the median over rows of the "
            "differences' power / ln 2, halved; the same for every frequency across the rows), so it "
            "is told that the noise is correlated along the rows and independent between them; its "
            "sigma is in the scan table."
        )
    else:
        bm3d_note = (
            "BM3D was skipped: the optional `bm3d` package is not installed (`pip install maed[eval]`)."
            if not installed
            else "BM3D was skipped on request."
        )
        print(f"maed: note: {bm3d_note}", file=sys.stderr)
    backends = {model: load_backend("auto", model) for model in models}
    scans, skipped = [], []
    for path in tqdm(paths, desc="eval real", unit="scan"):
        try:
            trace_image, retrace_image = pick_pair(path)
        except ScanFileError as exc:
            print(f"maed: warning: {exc}", file=sys.stderr)
            skipped.append(str(exc))
            continue
        rows = trace_image.measured_rows
        if retrace_image is not None:
            rows = rows & retrace_image.measured_rows
        other = retrace_image.data[rows] if retrace_image is not None else None
        up = scanned_upwards(trace_image)
        trace = denoise_pass(trace_image.data[rows], backends, with_bm3d, other, up, known_retrace(trace_image))
        retrace = (
            denoise_pass(retrace_image.data[rows], backends, with_bm3d, trace_image.data[rows], up, known_retrace(retrace_image))
            if retrace_image is not None
            else None
        )
        source = SOURCES.get(path.name, "unknown")
        scan = {
            "file": path.name,
            "source": source,
            "test_source": source in TEST_SOURCES,
            "format": trace_image.format,
            "channel": trace_image.name,
            "unit": trace_image.unit,
            "shape": list(trace_image.data.shape),
            "rows_compared": int(rows.sum()),
            "scan_range_m": list(trace_image.scan_range),
            **check_scan(trace, retrace, speed_ratio(trace_image.header)),
        }
        scan["criteria"] = {name: criteria(scan, name) for name in scan["methods"] if name not in (RAW, CLASSICAL_LABEL)}
        scans.append(scan)
        # Outputs as each method publishes them (a matched row offset would paint a partial line's glitch across its
        # row); the residual with the row offsets off, so that line noise removed on purpose does not hide the rest.
        shown = {name: out - np.median(out - trace.levelled) for name, out in trace.published.items()}
        panels = {RAW: trace.levelled}
        for name in models:
            panels[name] = shown[name]
            panels[f"removed by {name}, row offsets off"] = trace.levelled - trace.outputs[name]
        panels[CLASSICAL_LABEL] = shown[CLASSICAL_LABEL]
        if BM3D in shown:
            panels[BM3D] = shown[BM3D]
        tag = "test" if scan["test_source"] else "training"
        figure_real_scan(
            f"{path.name} ({tag} source): {trace_image.name} trace",
            panels,
            np.array(scan["lattice_peaks"]).reshape(-1, 2),
            np.array(scan["moving_peaks"]).reshape(-1, 2),
            scan["defects"],
            out_dir / f"real_{path.stem}.png",
        )
    shown = os.path.relpath(folder, REPO_ROOT) if folder.is_relative_to(REPO_ROOT.parent) else str(folder)
    options = (f" --models {' '.join(models)}" if models != [PRODUCT] else "") + (f" --real-dir {folder}" if given else "")
    again = regenerate("maed eval --real", out_dir, options)
    (out_dir / "real.md").write_text(_report(shown, scans, skipped, models, bm3d_note, (folder / "PROVENANCE.md").is_file(), again))
    (out_dir / "real.json").write_text(
        json.dumps(
            {"folder": shown, "models": models, "classical": CLASSICAL, "bm3d": with_bm3d, "scans": scans, "skipped": skipped}, indent=1
        )
    )
    judged = models + ([BM3D] if with_bm3d else [])
    print(_summary(scans, judged))
    print(f"written to {out_dir}/")
    return scans
