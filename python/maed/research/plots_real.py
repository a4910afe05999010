"""The figure of one real scan for ``maed eval --real``: raw, every method, what the models removed, spectra.

With no clean surface to compare with, every image shares one height scale (the raw image's
1st to 99th percentile); what a model removed (input - output) is shown centred on 0 with the
same span, so a streak or an atom in it is as visible as it would be in the image. Below each
panel is its log Fourier power on one common scale, with the trace's lattice peaks circled cyan
and its moving (pick-up) peaks magenta: a denoiser that keeps a lattice shows the cyan peaks in
its output and not in what it removed. The point defects are circled on the raw image.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the back end must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from ..lattice import power_spectrum  # noqa: E402
from ..noreference import ANNULUS  # noqa: E402
from .plots import CMAP  # noqa: E402


def figure_real_scan(
    title: str, panels: dict[str, np.ndarray], lattice: np.ndarray, moving: np.ndarray, defects: list[dict], path: Path
) -> None:
    """``panels`` in order (the first is the raw levelled input; labels starting "removed" are residuals)."""
    raw = next(iter(panels.values()))
    low, high = np.percentile(raw, [1, 99])
    half = (high - low) / 2
    spectra = {label: np.log10(power_spectrum(image) + 1e-300) for label, image in panels.items()}
    top = spectra[next(iter(panels))].max()
    fig, axes = plt.subplots(2, len(panels), figsize=(3 * len(panels), 6.4), squeeze=False)
    for j, (label, image) in enumerate(panels.items()):
        if label.startswith("removed"):
            axes[0, j].imshow(image - np.median(image), cmap="RdBu_r", vmin=-half, vmax=half)
        else:
            axes[0, j].imshow(image, cmap=CMAP, vmin=low, vmax=high)
        if j == 0:
            for d in defects:
                axes[0, j].add_patch(
                    Circle(
                        (d["col"], d["row"]),
                        ANNULUS[1] * d["scale"],
                        fill=False,
                        edgecolor="lime" if d["kind"] == "bright" else "cyan",
                        lw=0.8,
                    )
                )
        axes[0, j].set_title(f"{title}\n{label}" if j == 0 else label, fontsize=8, loc="left" if j == 0 else "center")
        axes[1, j].imshow(spectra[label], cmap="magma", vmin=top - 7, vmax=top)
        for peaks, colour in ((lattice, "cyan"), (moving, "magenta")):
            for r, c in peaks:
                axes[1, j].add_patch(Circle((c, r), 4, fill=False, edgecolor=colour, lw=0.7))
        axes[1, j].set_title("log power", fontsize=7)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
