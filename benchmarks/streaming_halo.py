"""Halo study: how far the streaming denoiser's band-by-band output is from one full-frame pass.

Each simulated scan (seeds never used in training) is streamed through ``StreamingDenoiser`` the way
the bridge does it, ``--chunk`` new rows per update, and the last live frame (before the scan's
final pass) is compared with the full-frame pass of the same model: PSNR of the live frame against
the full-frame output (``maed.metrics.psnr``, full frame as the reference), and PSNR of each
against the clean surface. It also reports the rows per band (the cost of an update) and the
median time per update on this machine (only meaningful on an otherwise idle machine).

    python benchmarks/streaming_halo.py --count 8 --chunk 4 > table.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from maed.bridge.streaming import StreamingDenoiser
from maed.data import make_pair
from maed.data.pairs import TEST_SEED_BASE
from maed.denoise import denoise_array
from maed.engine import load_backend
from maed.metrics import psnr
from maed.zoo import PRODUCT

SEED_BASE = TEST_SEED_BASE + 800_000  # apart from the training seeds and the evaluation set's


def stream(raw: np.ndarray, backend, halo: int, refine: int, chunk: int) -> tuple[np.ndarray, list[float]]:
    rows, cols = raw.shape
    s = StreamingDenoiser(rows, cols, "down", halo, refine)
    frame = np.full_like(raw, np.nan)
    times = []
    for n in range(chunk, rows + chunk, chunk):
        n = min(n, rows)
        frame[n - chunk : n] = raw[n - chunk : n]
        start = time.perf_counter()
        out = s.update(frame, n, backend)
        times.append((time.perf_counter() - start) * 1e3)
    return out.copy(), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=4, help="new rows per update")
    parser.add_argument("--halos", type=int, nargs="+", default=[0, 8, 16, 32, 64])
    parser.add_argument("--refines", type=int, nargs="+", default=[0, 8, 16, 32])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", default=PRODUCT)
    args = parser.parse_args()

    backend = load_backend(args.backend, args.model)
    pairs = [make_pair(SEED_BASE + i, args.size) for i in range(args.count)]
    raws = [p.noisy.astype(np.float32) for p in pairs]
    fulls = [denoise_array(r, backend) for r in raws]
    full_clean = np.mean([psnr(f, p.clean) for f, p in zip(fulls, pairs)])
    noisy_clean = np.mean([psnr(r, p.clean) for r, p in zip(raws, pairs)])
    print(
        f"{args.count} scans {args.size}x{args.size}, {args.chunk} rows per update, model {backend.model} on "
        f"{backend.name}; noisy vs clean {noisy_clean:.2f} dB, full-frame pass vs clean {full_clean:.2f} dB\n"
    )
    print(
        "| halo | refine | live vs full-frame [dB] (worst scan) | live vs clean [dB] "
        "| rows per band (steady, padded) | ms per update (median) |"
    )
    print("|---|---|---|---|---|---|")
    for halo in args.halos:
        for refine in args.refines:
            to_full, to_clean, times = [], [], []
            for raw, full, pair in zip(raws, fulls, pairs):
                live, t = stream(raw, backend, halo, refine, args.chunk)
                to_full.append(psnr(live, full))
                to_clean.append(psnr(live, pair.clean))
                times += t
            # Steady state: once the plane is frozen a band is halo + refine + new rows, padded.
            steady = -(-(halo + refine + args.chunk) // backend.size_multiple) * backend.size_multiple
            print(
                f"| {halo} | {refine} | {np.mean(to_full):.2f} ({min(to_full):.2f}) | {np.mean(to_clean):.2f} "
                f"| {steady} | {np.median(times):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
