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
from matplotlib.patches import Rectangle  # noqa: E402

from .classical import level_plane  # noqa: E402
from .data import ScanPair  # noqa: E402
from .metrics import align_to_reference, psnr  # noqa: E402

CMAP = "afmhot"


def _lattice_only(p: ScanPair) -> bool:
    return "lattice" in p.surface and "steps" not in p.surface


def pick_examples(pairs: list[ScanPair], count: int = 4) -> list[ScanPair]:
    """The first two atomic lattices on a single terrace, a stepped surface and molecules, where present.

    Taken in seed order, not by how well any method does on them, so hard cases show too.
    """
    lattices = [p for p in pairs if _lattice_only(p)][:2]
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


def figure_panels(rows: list[tuple[dict[str, np.ndarray], np.ndarray, float]], path: Path) -> None:
    """Each row's images beside the clean surface, with a zoomed inset below.

    A row is (images by name, clean surface, pixel size in metres).
    """
    columns = list(rows[0][0]) + ["clean"]
    fig, axes = plt.subplots(2 * len(rows), len(columns), figsize=(2.4 * len(columns), 4.8 * len(rows)), squeeze=False)
    for i, (images, clean, pixel_m) in enumerate(rows):
        size = clean.shape[0]
        zoom = size // 4
        r0 = c0 = size // 2 - zoom // 2
        for j, name in enumerate(columns):
            out = clean if name == "clean" else images[name]
            shown, _ = align_to_reference(out, clean)
            top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
            top.imshow(shown, cmap=CMAP, vmin=0, vmax=1)
            top.add_patch(Rectangle((c0, r0), zoom, zoom, fill=False, edgecolor="red", lw=1.2))
            bottom.imshow(shown[r0:r0 + zoom, c0:c0 + zoom], cmap=CMAP, vmin=0, vmax=1)
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


def log_spectrum(image: np.ndarray) -> np.ndarray:
    """log10 of the centred Fourier magnitude of the plane-levelled image."""
    return np.log10(np.abs(np.fft.fftshift(np.fft.fft2(level_plane(image)))) + 1e-30)


def figure_spectra(pairs: list[ScanPair], method: Callable, name: str, path: Path) -> None:
    """Fig. 6: lattice scans before and after, and the Fourier spectra of input, output, clean and residual.

    Lattice peaks that the output keeps and the residual lacks are real structure kept; peaks in
    the residual are structure (or periodic noise) removed.
    """
    examples = [p for p in pairs if _lattice_only(p)][:2] or pairs[:1]
    labels = ["noisy input", name, "clean", "removed (input - output)"]
    fig, axes = plt.subplots(2 * len(examples), len(labels), figsize=(3 * len(labels), 6 * len(examples)), squeeze=False)
    for i, pair in enumerate(examples):
        out = method(pair.noisy)
        images = dict(zip(labels, (pair.noisy, out, pair.clean, pair.noisy - out)))
        spectra = {k: log_spectrum(v) for k, v in images.items()}
        top = spectra["clean"].max()
        for j, label in enumerate(labels):
            axes[2 * i, j].imshow(level_plane(images[label]), cmap=CMAP)
            axes[2 * i, j].set_title(f"{label} (seed {pair.seed})" if j == 0 else label, fontsize=9)
            axes[2 * i + 1, j].imshow(spectra[label], cmap="magma", vmin=top - 5, vmax=top)
            axes[2 * i + 1, j].set_title("log |FFT|", fontsize=8)
            for ax in axes[2 * i:2 * i + 2, j]:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
