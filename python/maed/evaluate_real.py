"""``maed eval --real``: how the denoiser does on real instrument scans, which have no clean reference.

Every Nanonis, Createc or RHK file in the folder (recognised by content) is read at its
topograph, forward (or, where the topograph is flat as in constant-height mode, its first
channel that varies), denoised over its measured rows by each model, and checked without a
reference (``maed.noreference``): the whiteness of what was removed and the share of the
input's Fourier peak power kept. Writes ``real.md`` (the table and the definitions),
``real.json`` (the numbers) and ``real_<stem>.png`` (before, after, removed, spectra). The
figures show measurements that belong to the labs that recorded them (see the folder's
PROVENANCE.md), so they stay out of git; the numbers are ours.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .denoise import denoise_measured
from .data.real_refs import REPO_ROOT, default_real_dir
from .engine import Backend, load_backend
from .lattice import power_spectrum, significant_peaks
from .noreference import LAGS, lattice_power, whiteness
from .normalise import normalise
from .plots_real import figure_real_scan
from .scanfiles import ChannelImage, ScanFileError, read_file, sniff



def scan_files(folder: Path) -> list[Path]:
    """The instrument scan files in ``folder``, by name."""
    return [path for path in sorted(Path(folder).iterdir()) if path.is_file() and sniff(path) is not None]


def pick_image(path: Path) -> ChannelImage:
    """The file's forward topograph, or its first forward channel that varies where the topograph is flat."""
    scan = read_file(path)
    forward = [image for image in scan.images if image.direction == "forward"]
    ordered = sorted(forward, key=lambda image: image.name != scan.topograph)  # topograph first, then file order
    for image in ordered:
        if np.ptp(image.data[image.measured_rows]) > 0:
            return image
    raise ScanFileError(f"{path}: every forward channel is constant")


def check_image(image: ChannelImage, backends: dict[str, Backend]) -> tuple[np.ndarray, dict, dict]:
    """The levelled input, each model's levelled output, and each model's no-reference checks.

    Input and outputs are levelled alike: the input's plane and line offsets, as the denoiser
    takes them off, come off the input; its plane (the denoiser keeps line offsets removed)
    comes off the outputs.
    """
    measured = image.measured_rows
    x, norm = normalise(image.data[measured])
    levelled = x.astype(np.float64) * norm.scale
    outputs, results = {}, {}
    for name, backend in backends.items():
        output = denoise_measured(image.data, backend)[measured] - norm.plane - norm.centre
        outputs[name] = output
        results[name] = {"backend": backend.name, "whiteness": whiteness(levelled - output), **lattice_power(levelled, output)}
    return levelled, outputs, results


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(scans: list[dict]) -> str:
    lines = [
        "| scan | channel | pixels (measured rows) | range | model | residual ACF x | residual ACF y | peaks | peak power kept | peak power in residual |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scan in scans:
        rows, cols = scan["shape"]
        size = f"{rows}x{cols}" + (f" ({scan['measured_rows']})" if scan["measured_rows"] < rows else "")
        extent = f"{scan['scan_range_m'][0] * 1e9:.4g} nm"
        for model, r in scan["models"].items():
            lines.append(
                f"| {scan['file']} | {scan['channel']} ({scan['unit']}) | {size} | {extent} | {model} "
                f"| {_fmt(r['whiteness']['x'])} | {_fmt(r['whiteness']['y'])} | {r['peaks']} "
                f"| {_fmt(r['kept'])} | {_fmt(r['in_residual'])} |"
            )
    return "\n".join(lines) + "\n"


def _report(folder: str, scans: list[dict], skipped: list[str]) -> str:
    lags = f"{LAGS.start} to {LAGS.stop - 1}"
    text = [
        "# Denoising real STM scans (no clean reference)",
        "",
        f"The scans in `{folder}` were recorded on real instruments by others; its `PROVENANCE.md` says where "
        "each comes from. The measurements may belong to the labs that recorded them, so their figures "
        "(`real_*.png`, written beside this file by `maed eval --real`) are listed in `.gitignore` and not "
        "committed: look at them locally. The numbers below are ours.",
        "",
        "Each scan is read at its topograph, forward (where the topograph is flat, as in constant-height "
        "mode, at its first channel that varies), denoised over its measured rows, and checked without a "
        "reference. Input and output are levelled alike (the input's best plane and line offsets, which the "
        "denoiser removes on purpose, come off), and the residual is input minus output.",
        "",
        f"- **residual ACF x / y**: mean |normalised autocorrelation| of the residual at lags {lags} pixels "
        "along the rows (x, the fast scan axis) and across them (y). Removed noise is white beyond a pixel: "
        "near 0 (white noise of 256x256 pixels gives about 0.003). Removed structure (edges, atoms, "
        "molecules) or streaks left half-removed correlate over several pixels: tenths.",
        "- **peaks**: the input's significant isolated Fourier peaks outside the centre (Hann-windowed power "
        "spectrum; a local maximum standing log2(10 x pixels) times above the largest of the median powers "
        "in the 15x15 square and the 15-bin row and column around it, and carrying at least 1e-5 of the "
        "power outside the centre; lines in the spectrum and the 4 bins round the centre are excluded). "
        "They are lattices and superstructures, and periodic noise alike: "
        "a peak at the same spatial frequency in scans of different size is interference, not a lattice.",
        "- **peak power kept / in residual**: the Fourier power in the 3x3 bins around those peaks, in the "
        "output and in the residual, as a share of the input's. Kept near 1 and in residual near 0: the "
        "lattice survives; the reverse: it was smoothed away (right for periodic noise, wrong for a lattice).",
        "",
        _table(scans),
    ]
    if skipped:
        text += ["Not read: " + "; ".join(skipped), ""]
    text.append(f"Machine: {platform.processor() or platform.machine()}, {platform.system()}; "
                "regenerate with `maed eval --real`.")
    return "\n".join(text) + "\n"


def evaluate_real(folder: Path | None, out_dir: Path, models: list[str]) -> list[dict]:
    """Check every model on every real scan in ``folder`` (None: the default) and write the report."""
    folder = Path(folder) if folder is not None else default_real_dir()
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder of real scans")
    paths = scan_files(folder)
    if not paths:
        raise ValueError(f"{folder}: no Nanonis, Createc or RHK scan files in it")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backends = {model: load_backend("auto", model) for model in models}
    scans, skipped = [], []
    for path in tqdm(paths, desc="eval real", unit="scan"):
        try:
            image = pick_image(path)
        except ScanFileError as exc:
            print(f"maed: warning: {exc}", file=sys.stderr)
            skipped.append(str(exc))
            continue
        levelled, outputs, results = check_image(image, backends)
        scans.append({
            "file": path.name, "format": image.format, "channel": image.name, "direction": image.direction,
            "unit": image.unit, "shape": list(image.data.shape), "measured_rows": int(image.measured_rows.sum()),
            "scan_range_m": list(image.scan_range), "models": results,
        })
        peaks = significant_peaks(power_spectrum(levelled))
        figure_real_scan(f"{path.name}: {image.name} {image.direction}", levelled, outputs, peaks,
                         out_dir / f"real_{path.stem}.png")
    shown = os.path.relpath(folder, REPO_ROOT) if folder.is_relative_to(REPO_ROOT.parent) else str(folder)
    (out_dir / "real.md").write_text(_report(shown, scans, skipped))
    (out_dir / "real.json").write_text(json.dumps({"folder": shown, "models": models, "scans": scans, "skipped": skipped}, indent=2))
    print(_table(scans))
    print(f"written to {out_dir}/")
    return scans
