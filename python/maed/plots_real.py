"""The figure of one real scan for ``maed eval --real``: before, after, removed, and their spectra.

With no clean surface to compare with, the input and every output share the input's height
scale (its 1st to 99th percentile), and what was removed (input - output) is shown on a
symmetric scale of its own. Below each image is its log Fourier power on one common scale,
with the input's spectral peaks circled: a denoiser that keeps a lattice shows the circled
peaks in its output and not in what it removed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the back end must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from .lattice import power_spectrum  # noqa: E402
from .plots import CMAP  # noqa: E402

INPUT = "input, plane and line offsets off"


def figure_real_scan(title: str, levelled_input: np.ndarray, outputs: dict[str, np.ndarray],
                     peaks: np.ndarray, path: Path) -> None:
    """Input, each model's output and residual (levelled alike), with their log power spectra."""
    panels = {INPUT: levelled_input}
    for name, output in outputs.items():
        panels[name] = output
        panels[f"removed by {name}"] = levelled_input - output
    low, high = np.percentile(levelled_input, [1, 99])
    spectra = {label: np.log10(power_spectrum(image) + 1e-300) for label, image in panels.items()}
    top = spectra[INPUT].max()
    fig, axes = plt.subplots(2, len(panels), figsize=(3 * len(panels), 6.2), squeeze=False)
    for j, (label, image) in enumerate(panels.items()):
        if label.startswith("removed"):
            image = image - np.median(image)  # an offset removed is no information; show the rest
            bound = np.percentile(np.abs(image), 99)
            axes[0, j].imshow(image, cmap="RdBu_r", vmin=-bound, vmax=bound)
        else:
            axes[0, j].imshow(image, cmap=CMAP, vmin=low, vmax=high)
        axes[0, j].set_title(f"{title}\n{label}" if j == 0 else label, fontsize=8)
        axes[1, j].imshow(spectra[label], cmap="magma", vmin=top - 7, vmax=top)
        for r, c in peaks:
            axes[1, j].add_patch(Circle((c, r), 4, fill=False, edgecolor="cyan", lw=0.7))
        axes[1, j].set_title("log power", fontsize=7)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
