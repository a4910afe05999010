"""Trace/retrace error on the real test scans before and after the registration of warp, lag and slow axis.

Before: the retrace moved by one shift per band of 64 lines (the whole scan's shift, then each
band's within 3 pixels of it, interpolated between bands), as ``maed eval --real`` did until
``maed.registration`` replaced it. After: ``maed.registration.register`` (a smooth x-warp per band,
the feedback lag and, since 2026-12-05, the slow axis's motion during the lines). Both registrations
are estimated on the raw passes and applied alike to every method's output; each pass is denoised alone as ``maed eval --real`` does it
(``evaluate_real.denoise_pass``: raw, plane+rows+Gaussian, and the model with its trust guard).

Usage (from the repository root, the real scans in ../shared/data/real-stm):

    .venv/bin/python benchmarks/trace_retrace_registration.py [--model rt] [-o docs/results/trace_retrace.md]

A section of the page from ``## Reading`` on, written by hand, is kept when the page is written again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from maed.data import TEST_SEED_BASE, make_pair
from maed.data.real_refs import SOURCES, TEST_SOURCES, default_real_dir
from maed.data.two_pass import draw_pass_params, record_passes
from maed.engine import load_backend
from maed.passes import pick_pair
from maed.registration import BAND_ROWS, Registration, align, band_shift, lag_delay, register, speed_ratio
from maed.research.evaluate_real import CLASSICAL_LABEL, denoise_pass, scan_files
from maed.scanfiles import ScanFileError
from maed.trace_retrace import row_errors, summarise

READING = "## Reading"
"""The heading of the page's hand-written reading, which a rerun keeps."""


def per_band_shifts(trace: np.ndarray, retrace: np.ndarray) -> Registration:
    """The former registration: one shift per band of lines, interpolated between bands."""
    rows, cols = trace.shape
    whole = band_shift(trace, retrace, max(2.0, cols / 8))
    edges = np.linspace(0, rows, max(1, rows // BAND_ROWS) + 1).round().astype(int)
    centres = (edges[:-1] + edges[1:] - 1) / 2
    shifts = [band_shift(trace[a:b], retrace[a:b], 3.0, whole) for a, b in zip(edges[:-1], edges[1:])]
    return Registration.shift(np.interp(np.arange(rows), centres, shifts), cols)


def simulated(draws: int, size: int = 256) -> list[str]:
    """Registration on simulated trace/retrace pairs (``make_pair``'s surfaces and noise, ``two_pass``'s
    differences between the passes), per family: the difference left against the noise floor (the
    same noise draws recorded over a flat surface), and the warp against the true one."""
    rows = []
    for family in ("lattice", "molecular_crystal", "steps", "adsorbates"):
        ratios, raws, errors, strong, seconds, slow = [], [], [], [], [], []
        for i in range(draws):
            seed = TEST_SEED_BASE + 700_000 + i
            pair = make_pair(seed, size, families=(family,))
            q = draw_pass_params(np.random.default_rng(seed))
            t, r, geometry = record_passes(pair.clean, pair.pixel_m, pair.noise, q, np.random.default_rng(seed + 1))
            ft, fr, _ = record_passes(np.zeros_like(pair.clean), pair.pixel_m, pair.noise, q, np.random.default_rng(seed + 1))
            started = time.perf_counter()
            reg = register(t, r, speed_ratio=q.speed_ratio)
            seconds.append(time.perf_counter() - started)
            c = max(reg.crop, per_band_shifts(t, r).crop)
            compared = reg.lines(size)

            def rms(d: np.ndarray) -> float:
                d = d[compared, c:-c]
                return float((d - d.mean(axis=1, keepdims=True)).std())

            floor = rms(ft - fr)
            ratios.append(rms(t - align(r, reg)) / floor)
            raws.append(rms(t - align(r, per_band_shifts(t, r))) / floor)
            # The lag and a shift both move edges: compare the warps less their lags' delays.
            truth = geometry.displacement - lag_delay(geometry.lag_trace_px) - lag_delay(geometry.lag_retrace_px)
            error = (reg.warp - sum(map(lag_delay, reg.lag_px)) - truth)[:, c:-c]
            errors.append(float(np.sqrt(np.nanmean(error**2))))
            strong.append(pair.clean.std() > 5 * pair.noise.white_m)
            slow.append((geometry.slow_shift, reg.slow_shift))
        errors, strong = np.array(errors), np.array(strong)
        moved = [(true, found) for true, found in slow if true]
        found = [abs(f - true) for true, f in moved if f]
        still = sum(bool(f) for true, f in slow if not true)

        def spread(values: np.ndarray) -> str:
            return f"{np.median(values):.2f} ({np.percentile(values, 90):.2f})" if len(values) else "–"

        rows.append(
            f"| {family} | {draws} | {np.median(raws):.3f} | {np.median(ratios):.3f} "
            f"({np.percentile(ratios, 90):.3f}) | {strong.sum()} | {spread(errors[strong])} "
            f"| {spread(errors[~strong])} | {len(found)} of {len(moved)}{f' ({np.median(found):.2f})' if found else ''} "
            f"| {still} of {len(slow) - len(moved)} | {np.mean(seconds):.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def _unit(unit: str) -> tuple[float, str]:
    return {"m": (1e12, "pm"), "A": (1e12, "pA")}.get(unit, (1.0, unit))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rt")
    parser.add_argument("--real", type=Path, default=None, help="folder of real scans (default ../shared/data/real-stm)")
    parser.add_argument("--draws", type=int, default=16, help="simulated pairs per family")
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/results/trace_retrace.md"))
    args = parser.parse_args()
    try:
        folder = args.real or default_real_dir()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not folder.is_dir():
        print(f"{folder}: no such folder of real scans", file=sys.stderr)
        return 1
    backend = load_backend("auto", args.model)
    methods = ("raw", CLASSICAL_LABEL, args.model)
    lines = []
    for path in scan_files(folder):
        if SOURCES.get(path.name) not in TEST_SOURCES:
            continue
        try:
            trace_image, retrace_image = pick_pair(path)
        except ScanFileError as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        if retrace_image is None:
            continue
        rows = trace_image.measured_rows & retrace_image.measured_rows
        t_raw, r_raw = trace_image.data[rows], retrace_image.data[rows]
        trace = denoise_pass(t_raw, {args.model: backend}, False, r_raw)
        retrace = denoise_pass(r_raw, {args.model: backend}, False, t_raw)
        x, y = trace.levelled, retrace.levelled
        ratio = speed_ratio(trace_image.header)
        started = time.perf_counter()
        after = register(x, y, speed_ratio=ratio)
        seconds = time.perf_counter() - started
        before = per_band_shifts(x, y)
        scale, unit = _unit(trace_image.unit)
        crop = max(before.crop, after.crop)  # both on the same columns and lines
        compared_lines = after.lines(x.shape[0])
        cells = []
        for name in methods:
            out_t = x if name == "raw" else trace.outputs[name]
            out_r = y if name == "raw" else retrace.outputs[name]
            for registration in (before, after):
                e = summarise(row_errors(out_t, out_r, x, y, registration, crop, compared_lines))
                cells.append(f"{e.value * scale:.3g} ({e.low * scale:.3g}–{e.high * scale:.3g})")
        lines.append(
            f"| {path.name} | {trace_image.name} ({unit}) | {x.shape[0]}x{x.shape[1]} | {ratio:.2g} "
            f"| {after.warp.min():+.1f} to {after.warp.max():+.1f} | {np.median(after.band_sigma):.2f} "
            f"| {after.lag_px[0]:.2f} | {after.slow_shift:+.2f} | {' | '.join(cells)} | {seconds:.1f} |"
        )
        print(lines[-1], flush=True)
    head = [
        "# Trace/retrace error: one shift per band vs the registration of warp, lag and slow axis",
        "",
        "The real test scans with both passes (test sources of the trust issue, never trained on), each pass "
        f"denoised alone as `maed eval --real` does it, by raw (nothing), {CLASSICAL_LABEL} and `{args.model}` "
        "(with its trust guard). Trace/retrace error E = sqrt(0.5 (|f(trace) - retrace|^2 + |f(retrace) - "
        "trace|^2)) with its 95 % interval (block bootstrap over rows), after registering the retrace onto "
        "the trace **before**: by one shift per band of 64 lines (the former `maed.trace_retrace.register`), "
        "and **after**: by `maed.registration.register` (a smooth x-warp per band, the feedback lag's all-pass, "
        "and the slow axis's motion during the lines: up to a line at the left end, none at the turnaround). "
        "Lower is better for every method; what registration cannot match (a smear, creep) counts as error "
        "for all of them, raw included, so a better registration lowers raw's E most and lets a denoiser's "
        "gain show. Warp: range of the displacement (pixels); sigma: its median standard error; lag: "
        "the trace's feedback time constant in pixels (0: none clearly better than the warp alone); "
        "speed: retrace over trace speed from the header; slow: the lines the retrace's first column lies further "
        "along the slow axis than the trace's (0: none clearly better).",
        "",
        "| scan | channel | lines x columns | speed | warp, px | sigma, px | lag, px | slow, lines "
        + "".join(f"| {m} before | {m} after " for m in methods)
        + "| registration, s |",
        "|---|---|---|---|---|---|---|---|" + "---|" * (2 * len(methods)) + "---|",
    ]
    sim = [
        "",
        "## Simulated pairs",
        "",
        f"{args.draws} pairs per family (256x256, evaluation seeds from {TEST_SEED_BASE + 700_000}; the "
        "surface and scan noise of `make_pair`, the differences between the passes drawn by "
        "`two_pass.draw_pass_params`: creep and hysteresis warp, feedback lag, unequal speeds on half, "
        "feedback noise, turnaround ringing, the slow axis ramped during the lines on half). **left / floor**: rms "
        "of the difference left after registration (row means off) over that of the same noise draws recorded over "
        "a flat surface, over the lines the registration compares, the floor no registration can pass (pick-up and "
        "drift sampled at the passes' different instants are in it); median (90th percentile); **before** with one "
        "shift per band. **warp error**: rms over the compared pixels of the estimated warp less the true one, both "
        "less their lags' delays (a lag and a shift both move edges), median (90th percentile), on surfaces whose rms "
        "is above 5x the white noise and on the others (there the surface has little to register and the "
        "difference is noise whatever the warp). **slow axis found**: of the pairs recorded with the slow axis "
        "ramped (a line at the left end), on how many the registration found the motion (median distance from "
        "the truth, lines); **where none**: the motion found on pairs recorded on one line. Where the surface "
        "changes little over a line the motion is left unfound: it then changes the difference by under 2 % "
        "(`registration.SLOW_GAIN`), and the error barely.",
        "",
        "| family | pairs | left / floor before | left / floor after | surfaces > 5x noise | warp error, px "
        "| warp error, px (weak surfaces) | slow axis found | where none | registration, s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *simulated(args.draws),
    ]
    tail = [
        "",
        f"Produced by `{' '.join(['.venv/bin/python', *sys.argv])}` "
        f"on {os.cpu_count()} CPU(s), real scans from `{os.path.relpath(folder)}`.",
    ]
    # A reading written by hand below the tables stays: rewrite it where the figures it cites moved.
    earlier = args.out.read_text() if args.out.exists() else ""
    reading = earlier[earlier.index(READING) :] if READING in earlier else ""
    args.out.write_text("\n".join(head + lines + sim + tail) + "\n" + ("\n" + reading if reading else ""))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
