"""Calibration of the trust guard (``maed.trust``) on simulated scans whose truth is known.

Three sets of frames, all from seeds of their own (``SEED_BASE``), every surface family
(``maed.data.surfaces.FAMILIES``, the held-out ones included):

- ordinary: the model's output as it is; the guard should let at least 95 % through;
- invention: the model's output with a pattern the surface lacks (horizontal bands, a lattice,
  a checkerboard) at 0.3 of the frame's standard deviation; the guard should catch 95 %;
- erasure: on lattice families whose lattice stands at least twice above the white noise, the
  model's output with the lattice blurred away (a Gaussian of half a period); 95 % caught.

The guard alone sees one frame. ``maed denoise`` first gives back lattice peaks the network removed
(``maed.lattice_keep``: both passes where a scan has them, else a 2-D lattice in one pass), so
``product_erasures`` also runs a network forced to erase through ``denoise_guarded``, with one pass
and with both: an erasure is caught there when the lattice comes back (at the clean surface's peaks, 0.8 of the
power the scan holds there or more, both with their rows aligned: feedback lag and the x-warp damp a recorded lattice
below the surface's, and line offsets are no lattice) or the guard flags the frame.

``calibrate`` returns every frame's figures and the rates under given thresholds;
``write_report`` writes ``docs/results/guard.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from ..classical import align_rows, level_plane
from ..data import TEST_SEED_BASE, make_pair
from ..data.surfaces import FAMILIES, LATTICE_FAMILIES
from ..denoise import denoise_guarded, run_network
from ..engine import Backend
from ..lattice import check_peaks, find_peaks, power_spectrum, significant_peaks
from ..normalise import ROW_ALIGNMENT, levelling_of, normalise
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
            np.cos(2 * np.pi / period * (c * np.cos(angle + t) + r * np.sin(angle + t)) + phase) for t in (0, 2 * np.pi / 3, 4 * np.pi / 3)
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
    pattern_share: float | None = None
    """An invention's power over the input's, summed over the bins that hold the pattern (``pattern_share``)."""


SHOWN = 0.5
"""An invented pattern holding at least this share of the input's power at its place would show in the input, were
it real; a weaker one the input's noise could hide, and nothing in the scan can tell it from weak real structure
the network brought out."""


def pattern_share(pattern: np.ndarray, levelled_input: np.ndarray) -> float:
    """The pattern's power over the input's, summed over the Fourier bins holding the pattern (a tenth of its
    strongest bin's power or more; the input's over them and their 3x3 neighbours, as a peak spreads)."""
    window = np.outer(np.hanning(pattern.shape[0]), np.hanning(pattern.shape[1]))
    spectrum = lambda a: np.abs(np.fft.fft2((a - a.mean()) * window)) ** 2  # noqa: E731
    p_pattern, p_input = spectrum(pattern), spectrum(levelled_input)
    held = p_pattern > 0.1 * p_pattern.max()
    return float(p_pattern[held].sum() / max(p_input[ndimage.binary_dilation(held, np.ones((3, 3), bool))].sum(), 1e-300))


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
        invented = invent(y, kind, rng)
        cases.append(
            Case(
                kind=f"invention:{kind}",
                family=family,
                seed=seed,
                figures=trust_figures(x, invented),
                pattern_share=pattern_share(invented - y, x),
            )
        )
        info = pair.surface
        if family in LATTICE_FAMILIES and info["corrugation_m"] >= 2 * pair.noise.white_m:
            cases.append(Case(kind="erasure", family=family, seed=seed, figures=trust_figures(x, erase(y, info["period_px"]))))
    return cases


class ErasingBackend:
    """A back end, then the lattice blurred away on every tile it denoises: a network that erases a lattice."""

    def __init__(self, backend: Backend, period_px: float) -> None:
        self.backend, self.period_px = backend, period_px
        self.name, self.model, self.size_multiple = backend.name, backend.model, backend.size_multiple
        self.levelling = levelling_of(backend)
        self.weights_sha256 = getattr(backend, "weights_sha256", None)
        self.adapted_from = getattr(backend, "adapted_from", None)

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([[erase(image, self.period_px) for image in item] for item in self.backend.denoise(batch)])


KEPT = 0.8
"""Lattice-peak power an erased lattice given back keeps at least (of the scan's own there): caught."""


def _lattice_power(image: np.ndarray, peaks) -> float:
    """The power of ``image`` at the clean surface's ``peaks`` (3x3 bins each, as a share of the surface's own), its
    rows aligned first: the line offsets' power lies in the spectrum's column of zero frequency along x, which the 3x3
    bins of a lattice peak near it take in (a lattice whose rows run nearly along the fast axis), and it is no
    lattice's."""
    return check_peaks(align_rows(level_plane(np.asarray(image, dtype=np.float64)), ROW_ALIGNMENT), peaks).power_kept


def _shows_lattice(scan: np.ndarray, peaks, levelling: str) -> bool:
    """Whether the scan shows the lattice at all: a significant peak of its spectrum (rows aligned) within a bin of
    one of the clean surface's two strongest. Drift and line offsets far above the white noise can bury a lattice
    whose corrugation is twice that noise; what a scan does not show, nothing can keep."""
    spectrum = power_spectrum(align_rows(normalise(scan, levelling)[0], ROW_ALIGNMENT))
    found = significant_peaks(spectrum)
    if not len(found):
        return False
    return bool((np.abs(peaks.positions[:2, None, :] - found[None, :, :]).max(axis=2) <= 1).any())


def product_erasures(backend: Backend, count: int = 96, size: int = 128) -> dict[str, tuple[int, int]]:
    """(caught, total) of forced erasures as ``maed denoise`` runs them, with one pass and with both (the same
    surfaces as ``calibrate``'s erasure cases, where the scan shows the lattice): caught where the lattice is given
    back or the guard flags; and how many lattices the scans did not show."""
    tally = {"not shown by the scan": [0, 0], "one pass": [0, 0], "both passes": [0, 0]}
    for i in tqdm(range(count), desc="erasures as maed denoise runs them", unit="scan", disable=None):
        seed = SEED_BASE + i
        family = FAMILIES[i % len(FAMILIES)]
        pair = make_pair(seed, size, families=(family,), both_passes=True)
        info = pair.surface
        if family not in LATTICE_FAMILIES or info["corrugation_m"] < 2 * pair.noise.white_m:
            continue
        peaks = find_peaks(pair.clean)
        if not len(peaks.positions):
            continue
        tally["not shown by the scan"][1] += 1
        if not _shows_lattice(pair.noisy, peaks, levelling_of(backend)):
            tally["not shown by the scan"][0] += 1
            continue
        eraser = ErasingBackend(backend, info["period_px"])
        for label, other in (("one pass", None), ("both passes", pair.retrace)):
            result = denoise_guarded(pair.noisy, eraser, other_pass=other)
            given_back = _lattice_power(result.data, peaks) >= KEPT * _lattice_power(pair.noisy, peaks)
            tally[label][0] += given_back or result.verdict.output != "network"
            tally[label][1] += 1
    return {k: (v[0], v[1]) for k, v in tally.items()}


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
        texture_added=max(upper("texture_added"), TEXTURE_ADDED_LEAST),
        peaks_invented=max(upper("peaks_invented"), 0.05),
        peaks_gained=max(upper("peaks_gained"), 0.05),
        rows_invented=max(upper("rows_invented"), 0.05),
    )


TEXTURE_ADDED_LEAST = 6.0
"""The least ``texture_added`` threshold suggested: an honest output has less fine structure than its input nearly
everywhere, and more only where it sharpens what the feedback loop smoothed (at most 3.9 on the first blind simulator's
576 scans, draws 1 to 4 at 128 and 256 pixels), far above the ordinary frames' 99th percentile here."""

PERCENTILES = "Ordinary frames, percentiles 50 / 95 / 99 of each figure:"


def write_report(cases: list[Case], limits: Thresholds, dest: Path, model: str, product: dict[str, tuple[int, int]] | None = None) -> None:
    """``docs/results/guard.md``: rates (with ``product_erasures``' where given), and the ordinary frames' figure
    percentiles."""
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
        if kind == "invention":
            shown = [c for c in cases if c.pattern_share is not None and c.pattern_share >= SHOWN]
            caught = sum(judge(c.figures, limits)[0] != "network" for c in shown)
            lines.append(
                f"| invention the input would show, were it real (pattern >= {SHOWN} of the input's power "
                f"at its place) | {caught} | {len(shown)} | {caught / max(len(shown), 1):.1%} | >= 95 % |"
            )
    for label, (caught, total) in (product or {}).items():
        if label == "not shown by the scan":
            lines.append(
                f"| erasure of a lattice the scan does not show (left out of the two rows below) | {caught} | {total} | "
                f"{caught / max(total, 1):.1%} | |"
            )
        else:
            lines.append(
                f"| erasure as `maed denoise` runs it, {label}: given back or flagged | {caught} | {total} | "
                f"{caught / max(total, 1):.1%} | >= 95 % |"
            )
    lines += ["", "Thresholds: " + ", ".join(f"`{k}` {v}" for k, v in limits.__dict__.items()), ""]
    ordinary = [c.figures for c in cases if c.kind == "ordinary"]
    lines += [PERCENTILES, "", "| figure | p50 | p95 | p99 |", "|---|---|---|---|"]
    for name in (
        "whiteness_y",
        "structure",
        "local_structure",
        "texture_added",
        "peaks_kept",
        "peaks_invented",
        "peaks_gained",
        "rows_invented",
    ):
        values = np.array([getattr(f, name) for f in ordinary if getattr(f, name) is not None], dtype=float)
        if name == "structure":
            values = np.abs(values)
        if len(values):
            p = np.percentile(values, [50, 95, 99])
            lines.append(f"| {name}{' (abs)' if name == 'structure' else ''} | {p[0]:.3f} | {p[1]:.3f} | {p[2]:.3f} |")
    by_hand = kept_by_hand(dest.read_text()) if dest.exists() else ""
    dest.write_text("\n".join(lines) + "\n" + by_hand)


def kept_by_hand(page: str) -> str:
    """What follows the generated tables of a ``guard.md`` (from the first blank line after its percentiles table on):
    the history written by hand below them, which a regeneration keeps."""
    lines = page.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(PERCENTILES)]
    if not starts:
        return ""
    end = starts[0] + 1
    while end < len(lines) and not lines[end].startswith("|"):  # the blank line before the table
        end += 1
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join(lines[end:])


def main() -> None:
    """``python -m maed.research.guard_calibration``: the guard's rates with today's thresholds, into guard.md."""
    import argparse

    from ..engine import load_backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rt-plane")
    parser.add_argument("--count", type=int, default=120, help="ordinary frames (default: 120)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/guard.md"))
    args = parser.parse_args()
    backend = load_backend("onnx", args.model)
    cases = calibrate(backend, args.count)
    product = product_erasures(backend, args.count)
    write_report(cases, Thresholds(), args.out, args.model, product)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
