"""TensorRT optimisation profiles: which input shapes an engine accepts and which it is tuned for.

A profile gives the smallest, the optimal and the largest (batch, 1, height, width) input. TensorRT
picks its kernels for the optimal shape and accepts anything between the smallest and the largest.
The bridge runs two kinds of input, so an engine gets two profiles by default:

- ``band``: one streaming update, the new rows plus the rows of context re-run above them
  (``CONTEXT_ROWS``, the streaming denoiser's halo and refine rows) across the scan's width;
- ``frame``: a full-frame pass (``maed denoise`` tiles at 256, the bridge's final pass of a
  scan runs the whole frame up to 512x512).

Pure Python (no TensorRT), so the shapes are computed and checked anywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

CONTEXT_ROWS = 64
"""Rows re-run above each band: ``HALO`` (48) + ``REFINE`` (16) of ``maed.bridge.streaming``."""
BAND = (32, 256)
"""Default band: 32 new rows of a 256-wide scan."""
FRAME = (512, 512)
"""Default largest full frame."""
FRAME_OPT = 256
"""Full frames are tuned for 256x256, the tile size of ``maed.denoise``."""

Shape = tuple[int, int]
_SHAPE = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class Profile:
    """Smallest, optimal and largest (height, width), and the largest batch."""

    name: str
    min: Shape
    opt: Shape
    max: Shape
    max_batch: int = 1

    def shapes(self, passes: int = 1) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) as 4-D input shapes for ``IOptimizationProfile.set_shape``, ``passes`` channels deep."""
        return (1, passes, *self.min), (1, passes, *self.opt), (self.max_batch, passes, *self.max)

    def accepts(self, batch: int, h: int, w: int) -> bool:
        return batch <= self.max_batch and all(lo <= x <= hi for lo, x, hi in zip(self.min, (h, w), self.max))

    def describe(self) -> str:
        return f"{self.name} {_fmt(self.min)}:{_fmt(self.opt)}:{_fmt(self.max)}"

    def as_dict(self) -> dict:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max), "max_batch": self.max_batch}


def _fmt(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def parse_shape(text: str) -> Shape:
    """``"160x256"`` -> (160, 256): height x width."""
    match = _SHAPE.match(text.strip())
    if not match:
        raise ValueError(f"shape {text!r} is not HEIGHTxWIDTH, e.g. 160x256")
    return int(match[1]), int(match[2])


def parse_profile(text: str, name: str, size_multiple: int, max_batch: int = 1) -> Profile:
    """A profile from ``"MIN:OPT:MAX"``, each ``HEIGHTxWIDTH``, e.g. ``16x16:160x256:320x512``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"profile {text!r} is not MIN:OPT:MAX, e.g. 16x16:160x256:320x512")
    profile = Profile(name, *(parse_shape(p) for p in parts), max_batch=max_batch)
    check_profile(profile, size_multiple)
    return profile


def check_profile(profile: Profile, size_multiple: int) -> None:
    """Raise ValueError unless min <= opt <= max and every side is a positive multiple of the model's."""
    for shape in (profile.min, profile.opt, profile.max):
        if any(side <= 0 or side % size_multiple for side in shape):
            raise ValueError(f"profile {profile.describe()}: sides must be positive multiples of {size_multiple}")
    for axis in (0, 1):
        if not profile.min[axis] <= profile.opt[axis] <= profile.max[axis]:
            raise ValueError(f"profile {profile.describe()}: needs min <= opt <= max in height and width")
    if profile.max_batch < 1:
        raise ValueError(f"the largest batch must be at least 1, got {profile.max_batch}")


def default_profiles(size_multiple: int, band: Shape = BAND, frame: Shape = FRAME, max_batch: int = 1) -> list[Profile]:
    """The ``band`` and ``frame`` profiles for a model whose sides are multiples of ``size_multiple``.

    ``band`` is (new rows, scan width): tuned for those rows plus ``CONTEXT_ROWS`` across the width,
    accepting anything from one size multiple up to twice the band's height (a worker that fell
    behind sends taller bands) and the frame's width. ``frame`` is the largest full frame, tuned for
    256x256 (or the frame, where smaller).
    """
    m = size_multiple
    if min(band) <= 0 or min(frame) <= 0:
        raise ValueError(f"band and frame sides must be positive, got {_fmt(band)} and {_fmt(frame)}")
    band_opt = (_round_up(band[0] + CONTEXT_ROWS, m), _round_up(band[1], m))
    # Both profiles take the wider of the band and the frame, and the frame is at least one band high.
    width = max(band_opt[1], _round_up(frame[1], m))
    frame_max = (max(band_opt[0], _round_up(frame[0], m)), width)
    band_max = (min(2 * band_opt[0], frame_max[0]), width)
    frame_opt = (min(_round_up(FRAME_OPT, m), frame_max[0]), min(_round_up(FRAME_OPT, m), width))
    profiles = [
        Profile("band", (m, m), band_opt, band_max, max_batch),
        Profile("frame", (m, m), frame_opt, frame_max, max_batch),
    ]
    for profile in profiles:
        check_profile(profile, m)
    return profiles


def choose_profile(profiles: list[Profile], batch: int, h: int, w: int) -> int:
    """Index of the profile to run a (batch, 1, h, w) input with: of those that accept it, the one
    whose optimal shape is nearest in area (kernels tuned for a similar size run it fastest)."""
    fits = [i for i, p in enumerate(profiles) if p.accepts(batch, h, w)]
    if not fits:
        ranges = "; ".join(p.describe() for p in profiles)
        raise ValueError(
            f"input {batch}x1x{h}x{w} is outside the engine's profiles ({ranges}); "
            "rebuild it with `maed engine build --band/--frame/--shapes`"
        )
    return min(fits, key=lambda i: abs(math.log(h * w / (profiles[i].opt[0] * profiles[i].opt[1]))))
