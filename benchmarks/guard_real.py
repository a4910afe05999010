"""The trust guard judged on real scans by their trace/retrace error: are its fallbacks right?

The guard's thresholds are calibrated on simulated frames (``docs/results/guard.md``); real scans have no clean
reference. What they have is a second look: each pass denoised alone and compared with the other, raw pass
(``maed.trace_retrace``) estimates the true error up to the noise, so it says whether what the guard published
beat what the network made. For every scan of ``../shared/data/real-stm/`` recorded in both passes (its
topograph, as ``maed eval --real`` reads it), each pass is denoised as ``maed denoise`` publishes it and once
more with the guard told to trust the network on every frame (``TRUSTING``: nothing falls back, nothing is
blended, the give-backs before the guard are kept), and the classical pipeline runs beside them. The table is
each method's trace/retrace error over raw's (lower is better; 1 is doing nothing).

    .venv/bin/python benchmarks/guard_real.py > docs/results/guard_real.md
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maed.classical import run_pipeline
from maed.data.real_refs import SOURCES, TEST_SOURCES, default_real_dir
from maed.denoise import denoise_guarded
from maed.engine import Backend, load_backend
from maed.passes import CLASSICAL, CLASSICAL_LABEL, pick_pair, reference_levelling
from maed.registration import register, speed_ratio
from maed.research.bench import cpu_model
from maed.research.evaluate_real import scan_files
from maed.scanfiles import ScanFileError, scanned_upwards
from maed.trace_retrace import row_errors, summarise
from maed.trust import Thresholds

TRUSTING = Thresholds(
    whiteness_y=math.inf,
    structure_low=-math.inf,
    structure_high=math.inf,
    local_structure=math.inf,
    texture_added=math.inf,
    peaks_invented=math.inf,
    peaks_gained=math.inf,
    rows_invented=math.inf,
)
"""Limits no frame fails: the network's frame as the publish chain hands it to the guard, published whole."""
SAME = 0.005
"""Errors (over raw's) closer than this count as the same."""


@dataclass(frozen=True)
class ScanErrors:
    """One scan's trace/retrace errors over raw's, and what the guard did with each pass."""

    file: str
    test: bool
    rows: int
    published: float
    trusted: float
    classical: float
    verdicts: tuple[str, str]


@dataclass(frozen=True)
class PassOutputs:
    """One pass levelled as ``maed eval --real`` levels it (``reference_levelling``), its published, trusted and
    classical outputs less the same plane and centre, and what the guard did to the published one (``network``,
    ``smooth given back``, ``blend`` or ``fallback``)."""

    levelled: np.ndarray
    published: np.ndarray
    trusted: np.ndarray
    classical: np.ndarray
    guard: str

    @classmethod
    def of(cls, data: np.ndarray, other: np.ndarray, backend: Backend, scanned_up: bool) -> "PassOutputs":
        levelled, plane, centre = reference_levelling(data)
        published = denoise_guarded(data, backend, other_pass=other, scanned_up=scanned_up)
        trusted = denoise_guarded(data, backend, limits=TRUSTING, other_pass=other, scanned_up=scanned_up)
        return cls(
            levelled,
            published.data.astype(np.float64) - plane - centre,
            trusted.data.astype(np.float64) - plane - centre,
            run_pipeline(CLASSICAL, data),
            "smooth given back" if published.verdict.smooth_given_back else published.verdict.output,
        )


def scan_errors(path: Path, backend: Backend) -> ScanErrors | None:
    """The errors of one file's topograph, or None where it holds one pass only."""
    trace_image, retrace_image = pick_pair(path)
    if retrace_image is None:
        return None
    rows = trace_image.measured_rows & retrace_image.measured_rows
    trace, retrace = trace_image.data[rows], retrace_image.data[rows]
    up = scanned_upwards(trace_image)
    t = PassOutputs.of(trace, retrace, backend, up)
    r = PassOutputs.of(retrace, trace, backend, up)
    registration = register(t.levelled, r.levelled, speed_ratio=speed_ratio(trace_image.header))

    def error(out_t: np.ndarray, out_r: np.ndarray) -> float:
        return summarise(row_errors(out_t, out_r, t.levelled, r.levelled, registration)).value

    raw = error(t.levelled, r.levelled)
    source = SOURCES.get(path.name, "unknown")
    return ScanErrors(
        path.name,
        source in TEST_SOURCES,
        int(rows.sum()),
        published=error(t.published, r.published) / raw,
        trusted=error(t.trusted, r.trusted) / raw,
        classical=error(t.classical, r.classical) / raw,
        verdicts=(t.guard, r.guard),
    )


def report(scans: list[ScanErrors], model: str) -> str:
    """The page: the table, and how often the guard's decision lowered the error."""
    lines = [
        "# The trust guard on real scans, judged by the trace/retrace error",
        "",
        f"Generated by `python benchmarks/guard_real.py` (model `{model}`); do not edit by hand. "
        + " ".join(__doc__.split("\n\n")[1].split()).replace("``", "`"),
        "",
        f"| file | source | rows | guard (trace, retrace) | published | network trusted | {CLASSICAL_LABEL} |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scans:
        differ = abs(s.published - s.trusted) >= SAME
        best = min(s.published, s.trusted)
        cells = [f"**{v:.3f}**" if differ and v == best else f"{v:.3f}" for v in (s.published, s.trusted)]
        source = "test" if s.test else "training"
        lines.append(f"| {s.file} | {source} | {s.rows} | {s.verdicts[0]}, {s.verdicts[1]} | {cells[0]} | {cells[1]} | {s.classical:.3f} |")
    acted = [s for s in scans if s.verdicts != ("network", "network")]
    right = [s for s in acted if s.published <= s.trusted - SAME]
    wrong = [s for s in acted if s.published >= s.trusted + SAME]
    lines += [
        "",
        f"Of {len(scans)} scans with both passes, the guard did not publish the network's frame as it was on at least "
        f"one pass of {len(acted)} (it gave back the residual's smooth part, blended or fell back): its output had "
        f"the lower error on {len(right)}, the higher on {len(wrong)}, the same (within {SAME} of raw's) on "
        f"{len(acted) - len(right) - len(wrong)}"
        + (f" ({', '.join(f'`{s.file}` {s.trusted:.3f} -> {s.published:.3f}' for s in wrong)})" if wrong else "")
        + ". Above raw's error (worse than doing nothing): the network trusted on "
        + f"{sum(s.trusted > 1 for s in scans)}, as published on {sum(s.published > 1 for s in scans)}, "
        + f"the classical pipeline on {sum(s.classical > 1 for s in scans)}.",
        "",
        f"Machine: {cpu_model()}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-dir", type=Path, default=None, help="folder of real scans (default ../shared/data/real-stm)")
    parser.add_argument("--model", default="rt-plane", help="one-pass model (shipped name, checkpoint or .onnx)")
    args = parser.parse_args(argv)
    try:
        folder = args.real_dir or default_real_dir()
    except ValueError as exc:
        parser.error(str(exc))
    if not Path(folder).is_dir():
        parser.error(f"no folder of real scans at {folder}; give --real-dir")
    backend = load_backend("auto", args.model, threads=1)
    scans = []
    for path in tqdm(scan_files(Path(folder)), desc="scans", file=sys.stderr):
        try:
            errors = scan_errors(path, backend)
        except ScanFileError as exc:
            print(f"guard_real: skipped {exc}", file=sys.stderr)
            continue
        if errors is not None:
            scans.append(errors)
    print(report(scans, args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
