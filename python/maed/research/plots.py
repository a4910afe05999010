"""Figures that people look at rather than read: before/after panels and Fourier spectra.

Every panel of one scan is shown on the clean surface's height scale (after the best-fit
plane of its difference to the clean surface is removed, as the metrics do), so brightness
means the same height in every column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the back end must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, Rectangle  # noqa: E402

from ..data import ScanPair  # noqa: E402
from ..lattice import PeakCheck, check_peaks, find_peaks, measure_peaks, power_spectrum  # noqa: E402
from ..metrics import align_to_reference, psnr  # noqa: E402

CMAP = "afmhot"


def _lattice_only(p: ScanPair) -> bool:
    return "lattice" in p.surface and "steps" not in p.surface


def lattice_scans(pairs: list[ScanPair]) -> list[ScanPair]:
    """The scans that show an atomic lattice on a single terrace, in seed order."""
    return [p for p in pairs if _lattice_only(p)]


def pick_examples(pairs: list[ScanPair], count: int = 4) -> list[ScanPair]:
    """The first two atomic lattices on a single terrace, a stepped surface and molecules, where present.

    Taken in seed order, not by how well any method does on them, so hard cases show too.
    """
    lattices = lattice_scans(pairs)[:2]
    chosen = list(lattices)
    for want in (lambda p: "steps" in p.surface, lambda p: "molecules" in p.surface):
        match = next((p for p in pairs if want(p) and p not in chosen), None)
        if match is not None:
            chosen.append(match)
    chosen += [p for p in pairs if p not in chosen][: count - len(chosen)]
    return chosen[:count]


def _scale_bar(ax, size_px: int, pixel_m: float) -> None:
    """A white bar of a round length in nm in the lower left corner."""
    width_nm = size_px * pixel_m * 1e9
    bar_nm = next(v for v in (50, 20, 10, 5, 2, 1, 0.5, 0.2) if v <= width_nm / 4)
    px = bar_nm / (pixel_m * 1e9)
    y = size_px * 0.93
    ax.plot([size_px * 0.05, size_px * 0.05 + px], [y, y], color="white", lw=3)
    ax.text(size_px * 0.05, y - size_px * 0.03, f"{bar_nm:g} nm", color="white", fontsize=7)


def zoom_window(size: int) -> tuple[slice, slice]:
    """The centre square of a quarter of the side that ``figure_panels`` shows enlarged."""
    zoom = size // 4
    start = size // 2 - zoom // 2
    return slice(start, start + zoom), slice(start, start + zoom)


def figure_panels(rows: list[tuple[dict[str, np.ndarray], np.ndarray, float]], path: Path) -> None:
    """Each row's images beside the clean surface, with a zoomed inset below.

    A row is (images by name, clean surface, pixel size in metres).
    """
    columns = list(rows[0][0]) + ["clean"]
    fig, axes = plt.subplots(2 * len(rows), len(columns), figsize=(2.4 * len(columns), 4.8 * len(rows)), squeeze=False)
    for i, (images, clean, pixel_m) in enumerate(rows):
        size = clean.shape[0]
        window = zoom_window(size)
        r0, c0, zoom = window[0].start, window[1].start, size // 4
        # The inset gets the colour scale of the clean surface's own window there: atoms of a few pm beside
        # a step of hundreds would otherwise be one flat colour. Each window loses its own plane against the
        # clean window's (as the metrics do the frame's), or an offset of a few pm there, nothing beside a
        # step, would push the whole inset off that scale.
        clean_window, _ = align_to_reference(clean[window], clean[window])
        low, high = np.percentile(clean_window, [1, 99])
        low, high = (low, high) if high > low else (0, 1)
        for j, name in enumerate(columns):
            out = clean if name == "clean" else images[name]
            shown, _ = align_to_reference(out, clean)
            top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
            top.imshow(shown, cmap=CMAP, vmin=0, vmax=1)
            top.add_patch(Rectangle((c0, r0), zoom, zoom, fill=False, edgecolor="red", lw=1.2))
            bottom.imshow(align_to_reference(out[window], clean[window])[0], cmap=CMAP, vmin=low, vmax=high)
            top.set_title(name if name == "clean" else f"{name}\n{psnr(out, clean):.1f} dB", fontsize=8)
            if j == 0:
                _scale_bar(top, size, pixel_m)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_examples(examples: list[ScanPair], methods: dict[str, Callable], path: Path) -> None:
    """Fig. 5: each example scan through each method, with a zoomed inset below."""
    rows = [({name: method(p.noisy) for name, method in methods.items()}, p.clean, p.pixel_m) for p in examples]
    figure_panels(rows, path)


def figure_latency(latencies_ms: list[float], path: Path) -> None:
    """Histogram of the live update latency (newest line's arrival to publish), with p50 and p95."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(latencies_ms, bins=40, color="tab:blue")
    for q, style in ((50, "-"), (95, "--")):
        v = float(np.percentile(latencies_ms, q))
        ax.axvline(v, color="black", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
    ax.set_xlabel("latency, line arrival to denoised frame published (ms)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_lattice(pair: ScanPair, methods: dict[str, Callable], path: Path) -> None:
    """Fig. 6: the Fourier spectrum of one lattice scan before and after each method, and the lattice check.

    Top row: log power spectra (centre crop) of the clean surface, the input and every output, with
    the clean surface's lattice peaks circled; middle row: the spectra of what each method removed
    (input - output), where lattice peaks should be absent; bottom: each peak's share of the total
    peak power, per method beside the clean surface's, so moved or reshaped peaks stand out.
    """
    peaks = find_peaks(pair.clean)
    outputs = {"clean": pair.clean} | {name: method(pair.noisy) for name, method in methods.items()}
    size = pair.clean.shape[0]
    half = max(16, int(np.abs(peaks.positions - size // 2).max()) + 8) if len(peaks.positions) else size // 4
    crop = slice(size // 2 - half, size // 2 + half)
    spectra = {name: np.log10(power_spectrum(image) + 1e-40)[crop, crop] for name, image in outputs.items()}
    top = spectra["clean"].max()
    columns = len(outputs)
    fig = plt.figure(figsize=(2.2 * columns, 7.2))
    grid = fig.add_gridspec(3, columns, height_ratios=[1, 1, 1.1])
    for j, (name, image) in enumerate(outputs.items()):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(spectra[name], cmap="magma", vmin=top - 6, vmax=top)
        for r, c in peaks.positions:
            ax.add_patch(Circle((c - crop.start, r - crop.start), 2.5, fill=False, edgecolor="cyan", lw=0.8))
        check = "" if name == "clean" else _check_label(check_peaks(image, peaks)) if len(peaks.positions) else ""
        ax.set_title(f"{name}{check}", fontsize=7)
        residual_ax = fig.add_subplot(grid[1, j])
        if name in ("clean", "noisy"):
            residual_ax.axis("off")
        else:
            removed = np.log10(power_spectrum(pair.noisy - image) + 1e-40)[crop, crop]
            residual_ax.imshow(removed, cmap="magma", vmin=top - 6, vmax=top)
            residual_ax.set_title("removed", fontsize=7)
        for a in (ax, residual_ax):
            a.set_xticks([])
            a.set_yticks([])
    bars = fig.add_subplot(grid[2, :])
    if len(peaks.positions):
        width = 0.8 / columns
        for j, (name, image) in enumerate(outputs.items()):
            share = peaks.relative if name == "clean" else measure_peaks(image, peaks).relative
            bars.bar(np.arange(len(share)) + j * width, share, width, label=name)
        bars.set_xticks(np.arange(len(peaks.positions)) + 0.4, [f"peak {k + 1}" for k in range(len(peaks.positions))])
        bars.set_ylabel("share of peak power")
        bars.legend(fontsize=6, ncol=min(columns, 6))
    bars.set_title(f"lattice peaks of seed {pair.seed} ({pair.surface.get('lattice', 'no')} lattice)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _check_label(check: PeakCheck) -> str:
    return f"\nshift {check.shift_bins:.2f}, power {check.power_kept:.2f}"
