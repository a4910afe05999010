"""(noisy, clean) pairs of simulated STM scans, deterministic by seed.

Training draws seeds below ``TEST_SEED_BASE``; the evaluation set uses seeds from
``TEST_SEED_BASE`` upward, so the two never share a surface or a noise draw. The harder
evaluation column draws every noise amplitude above the training range.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import motifs
from .scan_events import EventSpec, ScanEvent, add_events
from .scan_noise import TRAIN_RANGES, NoiseParams, NoiseRanges, add_scan_noise, draw_params
from .surfaces import TRAINING_FAMILIES, SurfaceRanges, random_surface, smooth_background
from .two_pass import PassGeometry, PassParams, draw_pass_params, record_passes

TEST_SEED_BASE = 1_000_000_000
HARD_FACTOR = 1.6


@dataclass(frozen=True, eq=False)  # compared by identity: equality of arrays is ambiguous
class ScanPair:
    """A simulated scan: what the STM recorded and what the surface really is (metres)."""

    noisy: np.ndarray
    clean: np.ndarray
    pixel_m: float
    surface: dict
    noise: NoiseParams
    seed: int
    retrace: np.ndarray | None = None
    """The same scan's retrace in real-space orientation, where drawn with ``both_passes``."""
    passes: PassParams | None = None
    geometry: PassGeometry | None = None
    events: tuple[ScanEvent, ...] = ()
    """Scan-health events put into ``noisy`` (and ``retrace``) with ``make_pair(events=...)``, by row."""


def make_pair(
    seed: int,
    size: int = 128,
    noise_ranges: NoiseRanges = TRAIN_RANGES,
    surface_ranges: SurfaceRanges = SurfaceRanges(),
    families: tuple[str, ...] = TRAINING_FAMILIES,
    double_tip: bool = False,
    background: bool = False,
    both_passes: bool = False,
    events: EventSpec | None = None,
    aligned_passes: bool = False,
) -> ScanPair:
    """One (noisy, clean) pair of one of ``families``; the same seed always gives the same pair.

    ``double_tip`` images the surface with a second apex (ghost features), an artefact held out of
    training and scored as its own column by ``maed eval --families``. ``background`` adds, to
    half of the surfaces, a smooth random height field (``surfaces.smooth_background``) of 5 % to
    100 % of the surface's own rms: training content that is structure although it is smooth.
    ``both_passes`` records the trace and the retrace (``two_pass``: shared and independent noise,
    opposite feedback lag, x-warp, unequal speeds) into ``noisy`` and ``retrace``; it draws after
    everything a single pass draws, so the surface and ``noise`` of a seed are the same either way.
    ``aligned_passes`` (with ``both_passes``) records both where the trace's command put the tip: no feedback
    lag, no x-warp, equal speeds, both on one line (the slow axis still), every other draw the seed's: what
    averaging the passes gives without registration (``maed eval --passes``).
    ``events`` adds known scan-health events (``scan_events``) from a generator of their own, so
    the seed's scan is the same but for them; the pair's ``events`` lists them.
    """
    if aligned_passes and not both_passes:
        raise ValueError("aligned_passes places both passes: it needs both_passes")
    rng = np.random.default_rng(seed)
    clean, info = random_surface(rng, size, surface_ranges, families)
    if background and rng.random() < 0.5:
        rms = float(clean.std()) * float(np.exp(rng.uniform(np.log(0.05), 0.0)))
        clean = clean + smooth_background(clean.shape, rms, rng)
        info = info | {"background_rms_m": rms}
    if double_tip:
        shift = tuple(rng.uniform(-6, 6, 2))
        drop = float(rng.uniform(0.1, 0.5)) * float(np.ptp(clean))
        clean = motifs.double_tip(clean, shift, drop)
        info = info | {"double_tip": {"shift_px": shift, "drop_m": drop}}
    params = draw_params(rng, noise_ranges)
    if not both_passes:
        noisy = add_scan_noise(clean, info["pixel_m"], params, rng)
        pair = ScanPair(noisy, clean, info["pixel_m"], info, params, seed)
    else:
        passes = draw_pass_params(rng)
        if aligned_passes:
            passes = replace(passes, speed_ratio=1.0, lag_px=0.0, creep_px=0.0, hysteresis_px=0.0, slow_lines=0.0)
        trace, retrace, geometry = record_passes(clean, info["pixel_m"], params, passes, rng)
        pair = ScanPair(trace, clean, info["pixel_m"], info, params, seed, retrace, passes, geometry)
    if events is None:
        return pair
    share = 0.5 if pair.passes is None else pair.passes.speed_ratio / (1.0 + pair.passes.speed_ratio)
    trace, retrace, found = add_events(pair.noisy, pair.retrace, events, np.random.default_rng([seed, 15]), share)
    return replace(pair, noisy=trace, retrace=retrace, events=tuple(found))


def evaluation_set(count: int, size: int = 256, hard: bool = False) -> list[ScanPair]:
    """The fixed evaluation set; ``hard`` draws noise amplitudes beyond the training range."""
    ranges = TRAIN_RANGES.scaled(HARD_FACTOR) if hard else TRAIN_RANGES
    offset = 500_000 if hard else 0
    return [make_pair(TEST_SEED_BASE + offset + i, size, ranges) for i in range(count)]
