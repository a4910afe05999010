"""Calibration of the trust guard (``maed.trust``) on simulated scans whose truth is known.

Three sets of frames, all from seeds of their own (``SEED_BASE``), every surface family
(``maed.data.surfaces.FAMILIES``, the held-out ones included):

- ordinary: the model's output as it is; the guard should let at least 95 % through;
- invention: the model's output with a pattern the surface lacks (horizontal bands, a lattice,
  a checkerboard) at 0.3 of the frame's standard deviation; the guard should catch 95 %;
- erasure: on lattice families whose lattice stands at least twice above the white noise, the
  model's output with the lattice blurred away (a Gaussian of half a period); 95 % caught.

``calibrate`` returns every frame's figures and the rates under given thresholds;
``write_report`` writes ``docs/results/guard.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from ..data import TEST_SEED_BASE, make_pair
from ..data.surfaces import FAMILIES, LATTICE_FAMILIES
from ..denoise import run_network
from ..engine import Backend
from ..normalise import levelling_of, normalise
from ..trust import Thresholds, TrustFigures, judge, trust_figures

SEED_BASE = TEST_SEED_BASE + 800_000
INVENTIONS = ("bands", "lattice", "checkerboard")


def invent(output: np.ndarray, kind: str, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    """``output`` plus a pattern the surface does not have, of amplitude ``strength`` x its std."""
    rows, cols = output.shape
    r, c = np.indices(output.shape, dtype=float)
    period = float(np.exp(rng.uniform(np.log(3.0), np.log(16.0))))
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "bands":
        pattern = np.cos(2 * np.pi * r / period + phase) * (1 + 0.3 * np.cos(2 * np.pi * c / cols))
    elif kind == "lattice":
        angle = rng.uniform(0, np.pi)
        pattern = sum(
            np.cos(2 * np.pi / period * (c * np.cos(angle + t) + r * np.sin(angle + t)) + phase)
            for t in (0, 2 * np.pi / 3, 4 * np.pi / 3)
        )
    else:
        pattern = np.cos(np.pi * r / (period / 2) + phase) * np.cos(np.pi * c / (period / 2))
    pattern = pattern / max(float(pattern.std()), 1e-30)
    return output + strength * float(output.std()) * pattern


def erase(output: np.ndarray, period_px: float) -> np.ndarray:
    """``output`` with its lattice of ``period_px`` blurred away."""
    return ndimage.gaussian_filter(output, period_px / 2, mode="reflect")


@dataclass(frozen=True, kw_only=True)
class Case:
    kind: str  # ordinary, invention:<pattern>, erasure
    family: str
    seed: int
    figures: TrustFigures


def calibrate(backend: Backend, count: int = 96, size: int = 128) -> list[Case]:
    """Figures of ``count`` ordinary frames and their forced invention and erasure variants."""
    cases = []
    for i in tqdm(range(count), desc="guard calibration", unit="scan", disable=None):
        seed = SEED_BASE + i
        family = FAMILIES[i % len(FAMILIES)]
        rng = np.random.default_rng(seed)
        pair = make_pair(seed, size, families=(family,))
        x, norm = normalise(pair.noisy, levelling_of(backend))
        y = run_network(x, norm, backend)
        cases.append(Case(kind="ordinary", family=family, seed=seed, figures=trust_figures(x, y)))
        kind = INVENTIONS[i % len(INVENTIONS)]
        cases.append(Case(kind=f"invention:{kind}", family=family, seed=seed, figures=trust_figures(x, invent(y, kind, rng))))
        info = pair.surface
        if family in LATTICE_FAMILIES and info["corrugation_m"] >= 2 * pair.noise.white_m:
            cases.append(Case(kind="erasure", family=family, seed=seed, figures=trust_figures(x, erase(y, info["period_px"]))))
    return cases


def rates(cases: list[Case], limits: Thresholds = Thresholds()) -> dict[str, tuple[int, int]]:
    """(flagged, total) per kind of case: ordinary frames flagged are false alarms."""
    out: dict[str, list[int]] = {}
    for case in cases:
        group = case.kind.split(":")[0]
        flagged = judge(case.figures, limits)[0] != "network"
        tally = out.setdefault(group, [0, 0])
        tally[0] += flagged
        tally[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def suggest_thresholds(cases: list[Case], quantile: float = 99.0) -> Thresholds:
    """Thresholds at ``quantile`` of the ordinary frames' figures (each tail of the two-sided structure
    score at half the rest), so that each figure alone flags about 1 % of ordinary frames."""
    ordinary = [c.figures for c in cases if c.kind == "ordinary"]

    def upper(name: str) -> float:
        return float(np.percentile([getattr(f, name) for f in ordinary], quantile))

    structure = [f.structure for f in ordinary]
    tail = (100.0 - quantile) / 2
    return Thresholds(
        whiteness_y=upper("whiteness_y"),
        structure_low=float(np.percentile(structure, tail)),
        structure_high=float(np.percentile(structure, 100.0 - tail)),
        local_structure=upper("local_structure"),
        peaks_invented=max(upper("peaks_invented"), 0.05),
        peaks_gained=max(upper("peaks_gained"), 0.05),
        rows_invented=max(upper("rows_invented"), 0.05),
    )


def write_report(cases: list[Case], limits: Thresholds, dest: Path, model: str) -> None:
    """``docs/results/guard.md``: rates, and the ordinary frames' figure percentiles."""
    found = rates(cases, limits)
    lines = [
        "# The trust guard on simulated frames with known truth",
        "",
        f"Model `{model}`; {found.get('ordinary', (0, 0))[1]} ordinary frames of 128 x 128 over every surface family "
        "(held-out ones included), their forced inventions (bands, a lattice, a checkerboard at 0.3 of the frame's "
        "standard deviation) and forced erasures (the lattice blurred away where it stands at least twice above the "
        "white noise). Written by `maed.research.guard_calibration`.",
        "",
        "| case | flagged | of | rate | target |",
        "|---|---|---|---|---|",
    ]
    targets = {"ordinary": "<= 5 %", "invention": ">= 95 %", "erasure": ">= 95 %"}
    for kind, (flagged, total) in found.items():
        lines.append(f"| {kind} | {flagged} | {total} | {flagged / max(total, 1):.1%} | {targets.get(kind, '')} |")
    lines += ["", "Thresholds: " + ", ".join(f"`{k}` {v}" for k, v in limits.__dict__.items()), ""]
    ordinary = [c.figures for c in cases if c.kind == "ordinary"]
    lines += ["Ordinary frames, percentiles 50 / 95 / 99 of each figure:", "", "| figure | p50 | p95 | p99 |", "|---|---|---|---|"]
    for name in ("whiteness_y", "structure", "local_structure", "peaks_kept", "peaks_invented", "peaks_gained", "rows_invented"):
        values = np.array([getattr(f, name) for f in ordinary if getattr(f, name) is not None], dtype=float)
        if name == "structure":
            values = np.abs(values)
        if len(values):
            p = np.percentile(values, [50, 95, 99])
            lines.append(f"| {name}{' (abs)' if name == 'structure' else ''} | {p[0]:.3f} | {p[1]:.3f} | {p[2]:.3f} |")
    dest.write_text("\n".join(lines) + "\n")
