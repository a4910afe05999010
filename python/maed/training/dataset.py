"""Training batches: simulated pairs drawn on the fly, and optional user pairs from disk.

Each sample is a (noisy, target) pair of 1 x P x P float32 tensors in the network's
normalised frame: the noisy scan goes through ``maed.normalise.normalise`` and the clean
surface through the very same affine map, so the network learns to output the clean
surface in the units it was given.

Real references (``maed.data.real_refs``: clean real scans of the training sources) get the
simulator's scan artefacts added, the paper's recipe; a fraction of every batch comes from them.
Real pass pairs (``maed.data.real_pairs``) are a third kind: one pass of a real scan as input,
the other as target (Noise2Noise), so real noise is learnt without a clean reference; each
sample carries its kind, because their loss differs (``loss.pass_pair_l1``).

Two-pass models (``in_channels`` 2, ``rt-both``) get both passes of every simulated scan and of every real
reference (``maed.data.two_pass``: shared and independent noise, opposite lag, x-warp), made into the input's two
channels as ``maed denoise --pass both`` makes them (``maed.registration.two_pass_input``: both passes moved midway,
their mean and the retrace; or the trace and the retrace registered onto it); the target is the clean surface, where
the surface really is.

Quiet scans (``quiet_fraction`` of the simulated ones): every artefact but the line offsets scaled down by one
factor (``noise_mix.quiet_ranges``), so that surfaces whose relief stands 20 to 100 times above their noise, as clean
real scans of steps and large features do (``docs/model.md``, twenty-seventh session), are seen: the simulator's own
draws put 1 sample in 10 above 8 times, 1 in 100 above 28.

User pairs (the paper's setting: noisy scans and their manually restored references) live
in a folder with ``noisy/NAME.npy`` and ``clean/NAME.npy``; random crops are drawn from them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..data import add_scan_noise, draw_params, make_pair
from ..data.real_pairs import PassPair, pass_pair_crop
from ..data.real_refs import Reference, reference_crop, scaled_to, white_floor
from ..data.scan_noise import TRAIN_RANGES, NoiseRanges
from ..data.two_pass import draw_pass_params, record_passes
from ..normalise import PLANE_AND_ROWS, normalise, normalise_passes
from ..registration import two_pass_input
from .noise_mix import mixed_ranges, quiet_ranges


def normalised_pair(noisy: np.ndarray, clean: np.ndarray, levelling: str = PLANE_AND_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """The network's input and target for one scan, both in the noisy scan's (the trace's) frame.

    ``noisy`` is one pass (H, W), or a two-pass model's two channels and the raw trace and retrace their rows'
    levelling is judged on (4, H, W, ``_both``); the input is (H, W) or (2, H, W)."""
    if np.ndim(noisy) == 3:
        x, norm = normalise_passes(noisy[0], noisy[1], levelling, judged_on=(noisy[2], noisy[3]))
    else:
        x, norm = normalise(noisy, levelling)
    # The steps along the rows an alignment took off come back after the network (maed.normalise): not its to draw.
    y = (clean - norm.plane - norm.steps - norm.centre) / (norm.scale or 1.0)  # a flat crop goes in as zeros, as in normalise
    return x, y.astype(np.float32)


class UserPairs:
    """Noisy scans and their restored references, read once from ``folder``."""

    def __init__(self, folder: Path, patch: int = 0) -> None:
        """Every pair is checked here, before training starts: each file a 2-D array of finite numbers, the two of a
        pair of one shape, at least ``patch`` pixels each way (a pair found wanting hours into a run lost them)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"--pairs {folder}: no such folder")
        noisy_dir, clean_dir = folder / "noisy", folder / "clean"
        if not noisy_dir.is_dir() or not clean_dir.is_dir():
            raise ValueError(f"{folder}: expected sub-folders 'noisy/' and 'clean/' with matching .npy files")
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for noisy_path in sorted(noisy_dir.glob("*.npy")):
            clean_path = clean_dir / noisy_path.name
            if not clean_path.exists():
                raise ValueError(f"{noisy_path}: no reference {clean_path}")
            noisy, clean = _load_array(noisy_path), _load_array(clean_path)
            if noisy.ndim != 2 or noisy.shape != clean.shape:
                raise ValueError(f"{noisy_path}: noisy {noisy.shape} and reference {clean.shape} must be equal 2-D shapes")
            if min(noisy.shape) < patch:
                raise ValueError(f"{noisy_path}: {noisy.shape[0]}x{noisy.shape[1]} pixels, smaller than the {patch}-pixel patch (--patch)")
            if np.ptp(noisy) == 0:
                raise ValueError(f"{noisy_path}: flat (every pixel {noisy.flat[0]:g}): nothing to learn from; leave it out")
            self.pairs.append((noisy, clean))
        if not self.pairs:
            others = sorted({p.suffix for p in noisy_dir.iterdir() if p.is_file()} - {".npy"})
            held = f" (it holds {', '.join(others)} files: save each scan as a 2-D .npy array)" if others else ""
            raise ValueError(f"{noisy_dir}: no .npy scans found{held}")

    def crop(self, rng: np.random.Generator, patch: int) -> tuple[np.ndarray, np.ndarray]:
        noisy, clean = self.pairs[int(rng.integers(len(self.pairs)))]
        rows, cols = noisy.shape
        if rows < patch or cols < patch:
            raise ValueError(f"user pair of shape {noisy.shape} is smaller than the {patch}-pixel patch")
        r, c = int(rng.integers(rows - patch + 1)), int(rng.integers(cols - patch + 1))
        noisy, clean = noisy[r : r + patch, c : c + patch], clean[r : r + patch, c : c + patch]
        # Flips only: a rotation would turn scan lines into columns, which real noise never does.
        if rng.random() < 0.5:
            noisy, clean = noisy[::-1], clean[::-1]
        if rng.random() < 0.5:
            noisy, clean = noisy[:, ::-1], clean[:, ::-1]
        return noisy, clean


def _load_array(path: Path) -> np.ndarray:
    """The float64 array a user's ``.npy`` holds; a one-line ``ValueError`` naming the file where it holds no array
    of finite numbers (a scan stopped early keeps NaN rows: crop them off first)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        why = "it holds Python objects" if "allow_pickle" in str(exc) else str(exc)
        raise ValueError(f"{path}: not a numeric .npy array ({why})") from None
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path}: holds {array.dtype} values, not numbers")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: holds NaN or infinite values (a scan stopped early keeps NaN rows: crop them off)")
    return array


USER_FRACTION = 0.5
"""Share of samples drawn from the user's pairs (``maed train --pairs``), the rest simulated as without them."""

CLEAN_TARGET, PASS_TARGET = 0, 1
"""Sample kinds: the target is the clean surface, or the other pass of a real scan."""


class TrainingPairs(IterableDataset):
    """An endless stream of normalised pairs and their kind; sample ``k`` uses seed ``first_seed + k``.

    Each sample is a user pair (with probability ``user_fraction`` where user pairs are given),
    else a real pass pair (``pair_fraction`` where pass pairs are given), else a real reference
    with simulated artefacts (``real_fraction`` where references are given), else a simulated
    scan (half of them on a smooth random background where ``background``). With ``noise_mix`` the
    simulated artefacts of references and simulated scans come in per-sample mixes
    (``noise_mix.mixed_ranges``). With ``passes`` 2 the input is both passes (user pairs and real pass
    pairs have one, so they cannot be given).
    """

    def __init__(
        self,
        patch: int,
        first_seed: int,
        user: UserPairs | None = None,
        user_fraction: float = USER_FRACTION,
        references: list[Reference] | None = None,
        real_fraction: float = 0.0,
        pass_pairs: list[PassPair] | None = None,
        pair_fraction: float = 0.0,
        background: bool = False,
        noise_mix: bool = False,
        levelling: str = PLANE_AND_ROWS,
        passes: int = 1,
        quiet_fraction: float = 0.0,
        batch_size: int = 1,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if passes == 2 and (user is not None or pass_pairs):
            raise ValueError(
                "a two-pass model learns from simulated scans and real references with both passes "
                "drawn; user pairs and real pass pairs hold one pass as input"
            )
        self.patch = patch
        self.first_seed = first_seed
        self.user = user
        self.user_fraction = user_fraction
        self.references = references or []
        self.real_fraction = real_fraction
        self.pass_pairs = pass_pairs or []
        self.pair_fraction = pair_fraction
        self.background = background
        self.noise_mix = noise_mix
        self.levelling = levelling
        self.passes = passes
        self.quiet_fraction = quiet_fraction
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def sample(self, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The (input, target, kind) of seed ``seed``, in metres."""
        rng = np.random.default_rng(seed)
        if self.user is not None and rng.random() < self.user_fraction:
            return *self.user.crop(rng, self.patch), CLEAN_TARGET
        if self.pass_pairs and rng.random() < self.pair_fraction:
            pair = self.pass_pairs[int(rng.integers(len(self.pass_pairs)))]
            return *pass_pair_crop(pair, self.patch, rng), PASS_TARGET
        if self.references and rng.random() < self.real_fraction:
            ref = self.references[int(rng.integers(len(self.references)))]
            crop, pixel, crop_noise = reference_crop(ref, self.patch, rng)
            clean, gain = scaled_to(crop, rng)
            ranges = with_white_floor(mixed_ranges(rng) if self.noise_mix else TRAIN_RANGES, white_floor(crop_noise * gain))
            params = draw_params(rng, ranges)
            if self.passes == 2:
                passes = draw_pass_params(rng)
                trace, retrace, _ = record_passes(clean, pixel, params, passes, rng)
                return _both(trace, retrace, passes.speed_ratio), clean, CLEAN_TARGET
            return add_scan_noise(clean, pixel, params, rng), clean, CLEAN_TARGET
        ranges = mixed_ranges(rng) if self.noise_mix else TRAIN_RANGES
        if self.quiet_fraction and rng.random() < self.quiet_fraction:
            ranges = quiet_ranges(rng, ranges)
        pair = make_pair(seed, self.patch, ranges, background=self.background, both_passes=self.passes == 2)
        if self.passes == 2:
            return _both(pair.noisy, pair.retrace, pair.passes.speed_ratio), pair.clean, CLEAN_TARGET
        return pair.noisy, pair.clean, CLEAN_TARGET

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for seed in batch_seeds(self.first_seed, self.batch_size, self.rank, self.world, worker, workers):
            noisy, target, kind = self.sample(seed)
            x, y = normalised_pair(noisy, target, self.levelling)
            x = torch.from_numpy(x)
            yield (x[None] if x.dim() == 2 else x), torch.from_numpy(np.ascontiguousarray(y))[None], kind


def batch_seeds(first_seed: int, batch_size: int, rank: int, world: int, worker: int, workers: int) -> Iterator[int]:
    """The seeds one data worker of one training process draws, in order: batch ``s`` of the run is seeds
    ``first_seed + s * batch_size`` on, the process of ``rank`` takes its ``batch_size / world`` of them, and a
    process's ``workers`` take its batches in turn, as ``DataLoader`` collects them. So every batch holds the
    same samples however many processes and workers draw it (``maed.training.processes``)."""
    share = batch_size // world
    batch = worker
    while True:
        start = first_seed + batch * batch_size + rank * share
        yield from range(start, start + share)
        batch += workers


def with_white_floor(ranges: NoiseRanges, floor_m: float) -> NoiseRanges:
    """``ranges`` with its white noise raised to at least ``floor_m`` (metres rms)."""
    low, high = ranges.white_m
    return replace(ranges, white_m=(max(low, floor_m), max(high, floor_m)))


def _both(trace: np.ndarray, retrace: np.ndarray, speed_ratio: float) -> np.ndarray:
    """A two-pass model's input in metres (``maed.registration.two_pass_input``), and the raw trace and retrace, on
    which ``maed denoise`` judges the rows' levelling (``maed.normalise.normalise_passes``)."""
    both = two_pass_input(trace, retrace, speed_ratio)
    return np.stack([both.first, both.second, trace, retrace])
