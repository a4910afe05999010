"""``maed eval``: PSNR / SSIM / UQI of the noisy input, classical pipelines and models.

Two columns: the seeded simulated test set (noise drawn from the training ranges, surfaces
and seeds never trained on) and a harder set whose noise amplitudes all lie above the
training ranges. Writes ``eval.md`` (the table), ``eval.json`` (the numbers), ``fig5.png``
(inputs, outputs and zoomed insets, like the paper's Fig. 5) and ``fig6.png`` (Fourier
spectra before and after, like its Fig. 6).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from tqdm import tqdm

from .classical import PIPELINES
from .data import ScanPair, evaluation_set
from .denoise import denoise_array
from .engine import load_backend
from .metrics import all_metrics
from .plots import figure_examples, figure_spectra, pick_examples

COLUMNS = {"test": False, "hard": True}
INPUT = "noisy input"


def score_methods(pairs: list[ScanPair], methods: dict, desc: str) -> dict[str, dict[str, float]]:
    """Mean metrics of each method (name -> function of the noisy scan) over ``pairs``."""
    sums: dict[str, dict[str, float]] = {name: {} for name in methods}
    for pair in tqdm(pairs, desc=desc, unit="scan"):
        for name, method in methods.items():
            for key, value in all_metrics(method(pair.noisy), pair.clean).items():
                sums[name][key] = sums[name].get(key, 0.0) + value / len(pairs)
    return sums


def _table(results: dict[str, dict[str, dict[str, float]]], count: int, size: int) -> str:
    lines = [
        f"Mean over {count} simulated {size}x{size} scans per column; PSNR in dB. "
        "`test`: noise drawn from the training ranges on unseen surfaces and seeds; "
        "`hard`: every noise amplitude above the training range.",
        "",
        "| method | PSNR test | SSIM test | UQI test | PSNR hard | SSIM hard | UQI hard |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in results["test"]:
        t, h = results["test"][name], results["hard"][name]
        lines.append(
            f"| {name} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['uqi']:.4f} "
            f"| {h['psnr']:.2f} | {h['ssim']:.4f} | {h['uqi']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def evaluate(out_dir: Path, models: list[str], count: int = 24, size: int = 256) -> dict:
    """Score everything on both columns and write the table and figures to ``out_dir``."""
    if count < 1:
        raise ValueError("--count must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backends = {f"MAED-CNN {m}": load_backend("auto", m) for m in models}
    methods = {INPUT: lambda scan: scan} | {
        f"classical: {name}": pipeline for name, pipeline in PIPELINES.items()
    } | {name: (lambda scan, b=b: denoise_array(scan, b)) for name, b in backends.items()}

    sets = {column: evaluation_set(count, size, hard) for column, hard in COLUMNS.items()}
    results = {column: score_methods(pairs, methods, f"eval {column}") for column, pairs in sets.items()}

    table = _table(results, count, size)
    (out_dir / "eval.md").write_text(
        "# Evaluation on simulated scans\n\n" + table
        + f"\nMachine: {platform.processor() or platform.machine()}, {platform.system()}; "
        "regenerate with `maed eval`.\n"
    )
    (out_dir / "eval.json").write_text(json.dumps({"count": count, "size": size, "results": results}, indent=2))

    classical = [n for n in methods if n.startswith("classical")]
    best_classical = max(classical, key=lambda n: results["test"][n]["psnr"])
    shown = {"noisy": methods[INPUT], best_classical.replace("classical: ", ""): methods[best_classical]}
    shown |= {name: methods[name] for name in backends}
    figure_examples(pick_examples(sets["test"]), shown, out_dir / "fig5.png")
    if backends:
        first = next(iter(backends))
        figure_spectra(sets["test"], methods[first], first, out_dir / "fig6.png")
    print(table)
    print(f"written to {out_dir}/")
    return results
