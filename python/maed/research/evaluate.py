"""``maed eval``: PSNR / SSIM / UQI of the noisy input, classical pipelines and models.

Two columns: the seeded simulated test set (noise drawn from the training ranges, surfaces
and seeds never trained on) and a harder set whose noise amplitudes all lie above the
training ranges. Each model's parameter count and CPU latency per 256 x 256 frame go beside
its scores (``maed.research.compare``), and a lattice check says whether it keeps the Fourier peaks of
the test set's atomic lattices where they are and as strong as they are (``maed.lattice``).
``--models all`` is the paper's Table 1: MAED-CNN and the six baselines trained alike.

Writes ``eval.md`` (the tables), ``eval.json`` (the numbers), ``fig5.png`` (scans through every
method with zoomed insets, like the paper's Fig. 5) and ``fig6.png`` (Fourier spectra of a
lattice scan before and after each model, with the lattice check, like its Fig. 6).
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..classical import PIPELINES
from ..data import ScanPair, evaluation_set
from ..denoise import denoise_array
from ..lattice import check_peaks, find_peaks
from ..metrics import all_metrics, psnr
from .bench import cpu_model
from .compare import LATENCY_SIZE, LATENCY_THREADS, Contender, cpu_latency_ms, expand_models, load_contender
from .pages import regenerate
from .plots import figure_examples, figure_lattice, lattice_scans, pick_examples

COLUMNS = {"test": False, "hard": True}
INPUT = "noisy input"
SETTING = (
    "Our setting differs from the paper's: its references are noisy STM scans restored by hand, ours "
    "are the clean surfaces of a simulator (docs/simulator.md) under simulated scan-line, 1/f, "
    "periodic and white noise, and every model here was trained on that simulator only. Absolute "
    "numbers are therefore not comparable with the paper's Table 1; the ranking is what carries over."
)


def score_methods(pairs: list[ScanPair], methods: dict, desc: str) -> dict[str, dict[str, float]]:
    """Mean metrics of each method (name -> function of the noisy scan) over ``pairs``."""
    sums: dict[str, dict[str, float]] = {name: {} for name in methods}
    for pair in tqdm(pairs, desc=desc, unit="scan"):
        for name, method in methods.items():
            for key, value in all_metrics(method(pair.noisy), pair.clean).items():
                sums[name][key] = sums[name].get(key, 0.0) + value / len(pairs)
    return sums


def lattice_check(pairs: list[ScanPair], methods: dict) -> dict[str, dict[str, float]]:
    """Per method, the means over the lattice scans of the peak shift, the power kept and the share error."""
    checks: dict[str, list] = {name: [] for name in methods}
    for pair in tqdm(pairs, desc="lattice check", unit="scan"):
        peaks = find_peaks(pair.clean)
        if len(peaks.positions) == 0:
            continue
        for name, method in methods.items():
            checks[name].append(check_peaks(method(pair.noisy), peaks))
    return {
        name: {
            "scans": len(found),
            "shift_bins": float(np.mean([c.shift_bins for c in found])) if found else float("nan"),
            "power_kept": float(np.mean([c.power_kept for c in found])) if found else float("nan"),
            "relative_error": float(np.mean([c.relative_error for c in found])) if found else float("nan"),
        }
        for name, found in checks.items()
    }


def _score_table(results: dict, models: dict[str, dict], count: int, size: int) -> str:
    lines = [
        f"Mean over {count} simulated {size}x{size} scans per column; PSNR in dB. "
        "`test`: noise drawn from the training ranges on unseen surfaces and seeds; "
        "`hard`: every noise amplitude above the training range. Parameters: trainable weights; "
        f"CPU: median milliseconds per {LATENCY_SIZE}x{LATENCY_SIZE} frame in ONNX Runtime, "
        f"{LATENCY_THREADS} threads, on the machine named below.",
        "",
        "| method | parameters | CPU ms | PSNR test | SSIM test | UQI test | PSNR hard | SSIM hard | UQI hard |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in results["test"]:
        t, h = results["test"][name], results["hard"][name]
        size_cols = (f"{models[name]['parameters']:,}", f"{models[name]['cpu_ms']:.1f}") if name in models else ("", "")
        lines.append(
            f"| {name} | {size_cols[0]} | {size_cols[1]} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['uqi']:.4f} "
            f"| {h['psnr']:.2f} | {h['ssim']:.4f} | {h['uqi']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _lattice_table(checks: dict[str, dict[str, float]]) -> str:
    scans = max(c["scans"] for c in checks.values())
    if not scans:
        return "No test scan shows an atomic lattice on a single terrace (at this `--size` and `--count`): nothing to check.\n"
    lines = [
        f"Over the {scans} test scans showing an atomic lattice on a single terrace: the six strongest "
        "Fourier peaks of the clean surface, found again within one bin in each output. Shift: the "
        "mean displacement of a peak's power-weighted centre (bins; the noisy input shows what noise "
        "alone does); power kept: peak power of the output over the clean "
        "surface's (1 = lattice contrast kept; above 1 = noise left on the peaks); share error: the "
        "largest change of a peak's share of the total peak power (0 = relative strengths kept); "
        "all three are means over the scans.",
        "",
        "| method | shift (bins) | power kept | share error |",
        "|---|---|---|---|",
    ]
    for name, c in checks.items():
        lines.append(f"| {name} | {c['shift_bins']:.3f} | {c['power_kept']:.3f} | {c['relative_error']:.3f} |")
    return "\n".join(lines) + "\n"


def _ranking(results: dict, contenders: list[Contender]) -> str:
    order = sorted(contenders, key=lambda c: results["test"][c.label]["psnr"], reverse=True)
    return (
        "Ranking by PSNR on the test column: "
        + ", ".join(f"{i}. {c.label} ({results['test'][c.label]['psnr']:.2f} dB)" for i, c in enumerate(order, 1))
        + ".\n"
    )


def _clearest_lattice(pairs: list[ScanPair]) -> ScanPair:
    """The lattice scan whose input is least noisy (chosen by the input, not by any method's output):
    a lattice that is there to be kept. Any scan where the test set holds no lattice."""
    lattices = [p for p in lattice_scans(pairs) if len(find_peaks(p.clean).positions)] or pairs
    return max(lattices, key=lambda p: psnr(p.noisy, p.clean))


def evaluate(out_dir: Path, models: list[str], count: int = 24, size: int = 256) -> dict:
    """Score everything on both columns and write the tables and figures to ``out_dir``."""
    if count < 1:
        raise ValueError("--count must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="maed-eval-") as onnx_dir:
        contenders = [load_contender(m, Path(onnx_dir)) for m in tqdm(expand_models(models), desc="load models")]
    sizes = {
        c.label: {"model": c.name, "parameters": c.parameters, "cpu_ms": cpu_latency_ms(c.backend)}
        for c in tqdm(contenders, desc="CPU latency")
    }
    model_methods = {c.label: (lambda scan, b=c.backend: denoise_array(scan, b)) for c in contenders}
    methods = {INPUT: lambda scan: scan} | {f"classical: {name}": pipeline for name, pipeline in PIPELINES.items()} | model_methods

    sets = {column: evaluation_set(count, size, hard) for column, hard in COLUMNS.items()}
    results = {column: score_methods(pairs, methods, f"eval {column}") for column, pairs in sets.items()}
    classical = [n for n in methods if n.startswith("classical")]
    best_classical = max(classical, key=lambda n: results["test"][n]["psnr"])
    shown = {"noisy": methods[INPUT], best_classical.replace("classical: ", ""): methods[best_classical]}
    shown |= model_methods
    checks = lattice_check(lattice_scans(sets["test"]), shown)

    tables = _score_table(results, sizes, count, size)
    text = (
        "# Evaluation on simulated scans\n\n"
        + tables
        + "\n"
        + (_ranking(results, contenders) + "\n" if len(contenders) > 1 else "")
        + "## Lattice check (Fig. 6)\n\n"
        + _lattice_table(checks)
        + "\n"
        + SETTING
        + "\n\n"
        + f"Machine: {cpu_model()}, {platform.system()}; "
        + regenerate(
            f"maed eval --models {' '.join(models)}",
            out_dir,
            (f" --count {count}" if count != 24 else "") + (f" --size {size}" if size != 256 else ""),
        )
        + ". Figures: fig5.png, fig6.png.\n"
    )
    (out_dir / "eval.md").write_text(text)
    (out_dir / "eval.json").write_text(
        json.dumps({"count": count, "size": size, "models": sizes, "results": results, "lattice": checks}, indent=2)
    )
    examples = pick_examples(sets["test"], count=2 if len(contenders) > 2 else 4)
    figure_examples(examples, shown, out_dir / "fig5.png")
    figure_lattice(_clearest_lattice(sets["test"]), shown, out_dir / "fig6.png")
    print(tables)
    print(f"written to {out_dir}/")
    return {"results": results, "models": sizes, "lattice": checks}
