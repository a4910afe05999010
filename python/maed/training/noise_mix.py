"""Per-sample noise mixes for training: each kind of artefact present or absent, white noise over decades.

The simulator draws every artefact in every scan, each amplitude uniform over its range, so a
network trained on it never meets a quiet scan, or one with a single kind of noise, and learns
to take something out of every scan. A quiet instrument, another lab's simulator or a scan with
only white noise then loses real structure (on simulated surfaces with white noise of 5 % of
their rms, the network trained that way ended 10 dB below the raw scan). ``mixed_ranges`` draws,
per sample, which artefact groups are present (each with probability ``PRESENT``) and a white
noise amplitude log-uniform over the training range, so scans from nearly clean to very noisy,
with any subset of the artefacts, are all seen. The mixes add five artefacts the plain training
ranges lack: each line's own offset, drawn anew per line, spikes, z creep, the z loop's lag and a slow wander of z
(``MIX_RANGES``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.scan_noise import TRAIN_RANGES, NoiseRanges

PRESENT = 0.6
"""Chance that one artefact group is in a sample: with twelve groups, all present in 1 sample of 460, none in 1 of
60,000."""
GROUPS = {
    "line offsets' walk": ("line_walk_m",),
    "independent line offsets": ("line_jitter_m",),
    "spikes": ("spike_rate", "spike_m"),
    "tip changes": ("tip_jump_m",),
    "scars": ("scar_m",),
    "drift": ("drift_m",),
    "z creep": ("creep_m",),
    "pick-up": ("mains_m", "resonance_m"),
    "feedback ringing": ("ringing_gain",),
    "quantisation": ("dac_lsb_m",),
    "feedback lag": ("feedback_fn",),
    "slow wander": ("wander_m",),
}
MIX_RANGES = replace(
    TRAIN_RANGES,
    line_jitter_m=(0.0, 25e-12),
    spike_rate=(0.0, 0.005),
    spike_m=(0.0, 100e-12),
    creep_m=(-400e-12, 400e-12),
    creep_tau=(0.03, 0.3),
    feedback_fn=(0.05, 0.4),
    feedback_zeta=(0.3, 1.0),
    wander_m=(0.0, 40e-12),
)
"""The training ranges with five artefacts the test sets' simulator never draws, common in other simulators and in
real scans: each line's own offset (``line_jitter_m``, up to the random walk's top step; ``maed.row_levels``),
single pixels read wrong (``spike_rate`` up to 0.5 % of pixels, ``spike_m`` up to a scar's top) and z creep settling
by up to 400 pm over 3 % to 30 % of the frame (``creep_m``, ``creep_tau``): a network that never saw it left such a
bow in place on another simulator's scans where the classical row alignment took it off (thirteenth session). And
the z loop's lag (``feedback_fn`` 0.05 to 0.4 cycles per pixel, damping 0.3 to 1): the target is the surface before
the loop, so the network learns to undo the smear along the fast axis that the other simulator's loop puts on every
atom (on its atomic scans the smear alone, no noise, held PSNR to 16.9-37.3 dB, mean 28.4, fifteenth session).
And a smooth wander of z over the frame (``wander_m`` up to 40 pm): rows rising and falling together with no jumps
between neighbours, which the line offsets' walk never draws alone; the shipped network kept such a profile whole
(a cubic across the rows of a flat scan, 1.04 of it) where the classical row alignment takes it off (fifty-fifth
session)."""
LINE_OFFSET_GROUPS = ("line offsets' walk", "independent line offsets")
QUIET_FIELDS = (
    "white_m",
    *(name for group, names in GROUPS.items() if group not in LINE_OFFSET_GROUPS for name in names if name.endswith("_m")),
)
"""The amplitudes ``quiet_ranges`` scales: the white noise's and every other group's but the line offsets'
(``LINE_OFFSET_GROUPS``), so that an artefact group added to ``GROUPS`` is scaled too."""
QUIET_SCALE = (0.005, 0.3)
"""Range of the factor a quiet scan's artefacts are scaled by (log-uniform)."""
WHITE_FLOOR_M = 0.05e-12
"""Lowest white noise drawn: below any instrument's, so nearly clean scans are seen."""


def mixed_ranges(rng: np.random.Generator, ranges: NoiseRanges = MIX_RANGES) -> NoiseRanges:
    """``ranges`` with each artefact group switched off (amplitude 0) unless drawn present, and the white
    noise amplitude fixed at a draw log-uniform from ``WHITE_FLOOR_M`` to the range's top."""
    changes = {}
    for fields in GROUPS.values():
        if rng.random() >= PRESENT:
            changes |= {name: (0.0, 0.0) for name in fields}
    white = float(np.exp(rng.uniform(np.log(WHITE_FLOOR_M), np.log(ranges.white_m[1]))))
    return replace(ranges, **changes, white_m=(white, white))


def quiet_ranges(rng: np.random.Generator, ranges: NoiseRanges) -> NoiseRanges:
    """``ranges`` with every artefact's amplitude but the line offsets' scaled by one factor log-uniform over
    ``QUIET_SCALE``: a surface whose relief stands 20 to 100 times above its noise, as clean real scans of steps and
    large features do. The line offsets keep theirs: scaled with the rest, a network learnt to leave the rows alone
    wherever the relief dwarfed the noise, offsets of 20 pm beside a tall step included (twenty-seventh session)."""
    factor = float(np.exp(rng.uniform(*np.log(QUIET_SCALE))))
    return replace(ranges, **{name: tuple(factor * v for v in getattr(ranges, name)) for name in QUIET_FIELDS})
