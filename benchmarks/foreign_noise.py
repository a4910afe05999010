"""Models on noise unlike this project's simulator: how far a model's gains carry beyond its training noise.

The simulator's surfaces (every family, test seeds) under two kinds of noise it never draws:

- ``foreign``: white noise, row offsets drawn independently per row (not a random walk) and a 1/f
  component along the rows, at 0.1, 0.3 and 1.0 times the surface's rms;
- ``white``: white noise alone, at 0.05 to 1.0 times the surface's rms (a quiet instrument).

Per level: mean PSNR of the raw scan, plane + rows + Gaussian and each model as ``maed denoise`` runs
it (``denoise_guarded``: levelling, tiles, the lattice given back, the trust guard), and how many scans
each model leaves below the classical pipeline.

Usage (from the repository root):

    .venv/bin/python benchmarks/foreign_noise.py rt rt-plane --size 256
"""

from __future__ import annotations

import argparse

import numpy as np

from maed.classical import PIPELINES
from maed.data import FAMILIES, make_pair
from maed.denoise import denoise_guarded
from maed.engine import load_backend
from maed.metrics import psnr

SEED_BASE = 6_000_000


def foreign(clean: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    sd = float(np.std(clean))
    rows, cols = clean.shape
    f = np.fft.rfftfreq(cols)
    amplitude = np.where(f > 0, 1 / np.sqrt(np.maximum(f, 1e-9)), 0.0)
    pink = np.fft.irfft(np.fft.rfft(rng.normal(size=clean.shape), axis=1) * amplitude, n=cols, axis=1)
    pink *= 0.5 * level * sd / pink.std()
    return clean + rng.normal(0, level * sd, clean.shape) + rng.normal(0, 0.7 * level * sd, (rows, 1)) + pink


def white(clean: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return clean + rng.normal(0, level * float(np.std(clean)), clean.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--scans", type=int, default=32)
    parser.add_argument("--size", type=int, default=128, help="scan side in pixels (default: 128)")
    args = parser.parse_args()
    backends = {m: load_backend("auto", m, threads=1) for m in args.models}
    classical = PIPELINES["level+gauss"]
    for kind, noise, levels in (("foreign", foreign, (0.1, 0.3, 1.0)), ("white", white, (0.05, 0.15, 0.5, 1.0))):
        rng = np.random.default_rng(1)
        for level in levels:
            scores: dict[str, list[float]] = {"raw": [], "classical": [], **{m: [] for m in backends}}
            for k in range(args.scans):
                clean = make_pair(SEED_BASE + k, args.size, families=FAMILIES).clean
                noisy = noise(clean, level, rng)
                scores["raw"].append(psnr(noisy, clean))
                scores["classical"].append(psnr(classical(noisy), clean))
                for m, b in backends.items():
                    scores[m].append(psnr(denoise_guarded(noisy, b).data, clean))
            below = {m: int(np.sum(np.array(scores[m]) < np.array(scores["classical"]))) for m in backends}
            print(
                f"{kind} {level:.2f} x rms: "
                + "  ".join(f"{m} {np.mean(v):.2f}" + (f" ({below[m]} below classical)" if m in below else "") for m, v in scores.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()
