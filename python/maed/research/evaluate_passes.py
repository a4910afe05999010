"""``maed eval --passes``: the two-pass model against one pass, per family, on scans recorded in both passes.

Every column of ``maed eval --families`` is drawn again with both passes (``maed.data.two_pass``: shared and
independent noise, opposite feedback lag, x-warp, unequal speeds), from the same seeds. Per scan, each as
``maed denoise`` publishes it (``denoise_guarded``), against the clean surface:

- **one pass**: the one-pass model on the trace alone (``maed denoise``, the default);
- **mean of one-pass outputs**: the one-pass model on each pass alone, the retrace's output registered onto the
  trace's (the registration estimated between the two outputs, which the network has freed of their noise and
  of most of the feedback lag) and the two averaged, the trace's output alone in the columns only one pass covers:
  what a user could do with two one-pass outputs;
- **mean of one-pass outputs, midway**: the same two outputs, both moved midway along that registration (where the
  tip really was, as the two-pass model's input is) and averaged, and by the two-pass input's rule the mean in the
  trace's frame where the registration could be a period off (``registration.period_ambiguity`` above
  ``AMBIGUOUS``): what placement alone gives, without a two-pass network;
- **two-pass**: the two-pass model on both passes, moved to where the tip really was (``maed denoise --pass both``).

The issue's bar (``docs/results/passes.md``): the two-pass model at least 1.5 dB above one pass and 1 dB above the
mean of one-pass outputs on every family, the lower end of each paired 95 % interval included.

**What averaging the passes gives where no registration is needed**, on the same seeds recorded with both passes
where the trace's command put the tip (``make_pair``'s ``aligned_passes``: no lag, no warp, equal speeds, one line): the
one-pass model on that trace, and on the mean of the two passes, both without the other pass's evidence for lattice
peaks (which ``one pass`` above has). Where what differs between the passes is normal noise of equal variance,
their mean holds all they say of the surface and of what they share, so this shows about how far a two-pass model
could go. It is a guide, not a bound: even aligned, the passes differ in more than that noise (ringing after edges
runs the other way, the turnaround's ringing sits at the other end, pick-up lands elsewhere), and scars, one pass's
only, are where a two-pass model could do better than the mean.

Writes ``passes.md`` and ``passes.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data import FAMILIES, SIMULATOR_VERSION, ScanPair
from ..data.columns import ARTEFACT_COLUMNS, COLUMN_COUNT, COLUMN_SIZE, column_pairs
from ..data.real_refs import default_real_dir
from ..denoise import denoise_guarded
from ..engine import Backend
from ..metrics import all_metrics, interval
from ..zoo import PRODUCT, TWO_PASS_PRODUCT
from . import third_look
from .bench import cpu_model
from .pages import regenerate
from .pass_methods import MEAN, MIDWAY_MEAN, ONE_PASS, TWO_PASS, pass_outputs

ALIGNED_ONE, ALIGNED_MEAN = "one pass, passes aligned", "one pass on the aligned passes' mean"
BARS = {ONE_PASS: 1.5, MEAN: 1.0}
"""The two-pass model's paired PSNR gain over each, in dB, that the issue asks of every family."""


def ceiling_outputs(aligned: ScanPair, one_pass: Backend) -> dict[str, np.ndarray]:
    """The one-pass model on a scan recorded with both passes aligned (``aligned_passes``): on its trace, and on the
    mean of its passes."""
    return {
        ALIGNED_ONE: denoise_guarded(aligned.noisy, one_pass).data.astype(np.float64),
        ALIGNED_MEAN: denoise_guarded(0.5 * (aligned.noisy + aligned.retrace), one_pass).data.astype(np.float64),
    }


def score_column(pairs: list[ScanPair], aligned: list[ScanPair], one_pass: Backend, two_pass: Backend, desc: str) -> dict[str, dict]:
    """Per method, the per-scan PSNR, SSIM and UQI; the raw trace as ``noisy input``; ``aligned``: the same seeds
    with their passes aligned (the same surfaces: ``make_pair`` draws the passes last), for the ceiling."""
    scores: dict[str, dict[str, list[float]]] = {}
    for pair, best in tqdm(list(zip(pairs, aligned)), desc=desc, unit="scan", disable=None):
        published = {"noisy input": pair.noisy, **pass_outputs(pair.noisy, pair.retrace, pair.passes.speed_ratio, one_pass, two_pass)}
        for name, out in [*published.items(), *ceiling_outputs(best, one_pass).items()]:
            for key, value in all_metrics(out, pair.clean).items():
                scores.setdefault(name, {}).setdefault(key, []).append(value)
    return scores


def summarise(scores: dict[str, dict]) -> dict:
    """Means with intervals, and the two-pass model's paired PSNR gain over each other method."""
    two = np.array(scores[TWO_PASS]["psnr"])
    summary: dict = {"methods": {name: {k: interval(np.array(v)) for k, v in metrics.items()} for name, metrics in scores.items()}}
    summary["gains"] = {name: interval(two - np.array(scores[name]["psnr"])) for name in (*BARS, MIDWAY_MEAN)}
    summary["ceiling"] = interval(np.array(scores[ALIGNED_MEAN]["psnr"]) - np.array(scores[ALIGNED_ONE]["psnr"]))
    summary["met"] = all(summary["gains"][name][1] >= bar for name, bar in BARS.items())
    return summary


def _fmt(triple: tuple[float, float, float], digits: int = 2) -> str:
    mean, low, high = triple
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _report(results: dict, names: tuple[str, str], count: int, size: int) -> str:
    one, two = names
    met = sum(r["met"] for r in results.values())
    lines = [
        "# The two-pass model against one pass, per family (`maed eval --passes`)",
        "",
        f"{count} scans of {size} x {size} per column recorded in both passes, from the seeds of `maed eval --families` "
        f"(simulator `{SIMULATOR_VERSION}`); "
        f"one-pass model `{one}`, two-pass model `{two}`, each as `maed denoise` publishes it; {cpu_model()}. "
        "PSNR in dB, mean [95 % interval]; gains are paired per scan. "
        f"Bar: two-pass at least {BARS[ONE_PASS]} dB above one pass and {BARS[MEAN]} dB above the mean of one-pass "
        f"outputs, lower ends included: met on {met} of {len(results)} columns.",
        "",
        f"| column | noisy input | {ONE_PASS} | {MEAN} | {TWO_PASS} | gain over one pass | gain over the mean | bar |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for column, r in results.items():
        m = r["methods"]
        cells = [_fmt(m[name]["psnr"]) for name in ("noisy input", ONE_PASS, MEAN, TWO_PASS)]
        gains = [_fmt(r["gains"][name]) for name in BARS]
        lines.append(f"| {column} | " + " | ".join(cells + gains) + f" | {'met' if r['met'] else 'missed'} |")
    lines += [
        "",
        "Averaging the passes where no registration is needed: the same seeds recorded with both passes aligned (no "
        "lag, no warp, equal speeds), the one-pass model on the trace and on the mean of the passes, both without the "
        "other pass's lattice evidence (a guide to how far a second pass could go, not a bound: "
        "`maed.research.evaluate_passes`). PSNR in dB; the gain is paired per scan.",
        "",
        f"| column | {ALIGNED_ONE} | {ALIGNED_MEAN} | gain | two-pass model's gain over one pass |",
        "|---|---|---|---|---|",
    ]
    for column, r in results.items():
        m = r["methods"]
        lines.append(
            f"| {column} | {_fmt(m[ALIGNED_ONE]['psnr'])} | {_fmt(m[ALIGNED_MEAN]['psnr'])} | "
            f"{_fmt(r['ceiling'])} | {_fmt(r['gains'][ONE_PASS])} |"
        )
    lines += [
        "",
        "What placing the surface where the tip really was gives without a two-pass network: the two one-pass outputs, "
        "registered between themselves, both moved midway (as the two-pass model's input is, "
        "`maed.registration.midway_mean`) and averaged; by the same rule as that input, averaged in the trace's frame "
        "where the registration could be a period off. PSNR in dB; the gain is paired per scan.",
        "",
        f"| column | {MIDWAY_MEAN} | two-pass model's gain over it |",
        "|---|---|---|",
    ]
    for column, r in results.items():
        lines.append(f"| {column} | {_fmt(r['methods'][MIDWAY_MEAN]['psnr'])} | {_fmt(r['gains'][MIDWAY_MEAN])} |")
    ssim_methods = (ONE_PASS, MEAN, MIDWAY_MEAN, TWO_PASS)
    lines += ["", "SSIM, mean [95 % interval]:", "", "| column | " + " | ".join(ssim_methods) + " |", "|---|---|---|---|---|"]
    for column, r in results.items():
        lines.append(f"| {column} | " + " | ".join(_fmt(r["methods"][n]["ssim"], 3) for n in ssim_methods) + " |")
    return "\n".join(lines) + "\n"


def evaluate_passes(
    out_dir: Path,
    one_pass: Backend,
    two_pass: Backend,
    count: int = COLUMN_COUNT,
    size: int = COLUMN_SIZE,
    columns: tuple[str, ...] = (*FAMILIES, *ARTEFACT_COLUMNS),
    real_dir: Path | None = None,
) -> dict:
    """Score the three methods per column, and on the real third looks in ``real_dir`` (None: the default folder, where
    there is one); write ``passes.md`` and ``passes.json`` into ``out_dir``."""
    if count < 2:
        raise ValueError("--count must be at least 2 for an interval")
    if getattr(two_pass, "passes", 1) != 2 or getattr(one_pass, "passes", 1) != 1:
        raise ValueError(
            f"--passes compares a one-pass model with a two-pass one; got {one_pass.model} "
            f"({getattr(one_pass, 'passes', 1)} passes) and {two_pass.model} ({getattr(two_pass, 'passes', 1)})"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for column in columns:
        pairs = column_pairs(column, count, size, both_passes=True)
        aligned = column_pairs(column, count, size, both_passes=True, aligned_passes=True)
        results[column] = summarise(score_column(pairs, aligned, one_pass, two_pass, f"passes {column}"))
    if real_dir is None:
        try:
            real_dir = default_real_dir()
        except ValueError:
            real_dir = None
    looks = third_look.third_look(Path(real_dir), one_pass, two_pass) if real_dir is not None else []
    options = f" --models {one_pass.model} {two_pass.model}" if (one_pass.model, two_pass.model) != (PRODUCT, TWO_PASS_PRODUCT) else ""
    options += (f" --count {count}" if count != COLUMN_COUNT else "") + (f" --size {size}" if size != COLUMN_SIZE else "")
    text = _report(results, (one_pass.model, two_pass.model), count, size) + "\n".join(third_look.report(looks)) + "\n"
    text += f"\n{regenerate('maed eval --passes', out_dir, options)}.\n"
    (out_dir / "passes.md").write_text(text)
    record = {"count": count, "size": size, "one_pass": one_pass.model, "two_pass": two_pass.model, "results": results, "third_look": looks}
    (out_dir / "passes.json").write_text(json.dumps(record, indent=1))
    print(text)
    return results
