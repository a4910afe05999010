"""Which image of a scan holds its signal: the topograph, or the current of a constant-height scan.

With the Z feedback off (constant height) the tip does not follow the surface: Z is flat, or a plane
where tilt compensation ran, and the surface is in the tunnelling current. Denoising that Z would
write a flat image and call it a result, so the default channel is chosen from two kinds of evidence:

- the header, where the format records the feedback (``ScanFile.feedback``; Nanonis:
  ``Z-Controller>Controller status`` or the ``on`` column of ``:Z-CONTROLLER:``);
- the content, for every format: an image that is a plane to within a few steps of its own number
  format (``is_flat``) holds nothing to denoise. The real scans' topographs sit 500 to 10^6 such
  steps above a plane; the constant-height scan's Z is one value.

A flat image is never denoised, asked for or not: ``flat_reason`` says why in words.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .channel import ChannelImage, ScanFile, ScanFileError

CURRENT_NAMES = ("current", "i", "it")
"""Channel names (lowercased) of the tunnelling current in the formats we read: Nanonis, Createc and
RHK ``Current``, MATRIX ``I``."""
FLAT_STEPS = 16.0
"""An image is flat when what a plane leaves of it is below this many float32 steps (ulp) of its largest
value; a plane stored in float32 leaves about 0.3 of one. The smallest real topograph leaves 511 (255 of
the step ``is_flat`` uses, float32's epsilon times the largest value, up to twice the true one)."""


class Choice(NamedTuple):
    """The image chosen as a scan's signal and, where it is not the topograph, why."""

    image: ChannelImage
    why: str | None


def is_flat(data: np.ndarray) -> bool:
    """True if the measured rows of ``data`` are a plane (a constant included) to within storage precision."""
    rows = data[np.isfinite(data).all(axis=1)]
    if rows.size == 0:
        return False
    # On a whole grid the centred columns, the centred rows and the constant are orthogonal: the least-squares plane
    # is three sums, with no design matrix (three times the image, which a 64 Mpx image could not afford).
    height, width = rows.shape
    x = np.arange(width, dtype=np.float64) - (width - 1) / 2
    y = np.arange(height, dtype=np.float64) - (height - 1) / 2
    mean = float(rows.mean())
    slope_x = float(rows.sum(axis=0) @ x) / max(float(height * (x @ x)), 1e-300)
    slope_y = float(rows.sum(axis=1) @ y) / max(float(width * (y @ y)), 1e-300)
    residual = rows - mean
    residual -= slope_x * x
    residual -= slope_y * y[:, None]
    # One float32 step at the largest value, within a factor 2 (computed in float64: values beyond
    # float32's range must not overflow on the way).
    step = float(np.finfo(np.float32).eps * np.abs(rows).max())
    # The rms scaled by the largest residual: squares of values near float64's limit (a damaged file) overflow.
    np.abs(residual, out=residual)
    largest = float(residual.max())
    if not np.isfinite(largest):
        return False
    if not largest:
        return True
    residual /= largest
    return largest * float(np.sqrt(np.mean(np.square(residual, out=residual)))) <= FLAT_STEPS * step


def current_channel(scan: ScanFile) -> str | None:
    """The name of the tunnelling-current channel of ``scan``, None if it has none."""
    return next((image.name for image in scan.images if image.name.lower() in CURRENT_NAMES), None)


def flat_reason(scan: ScanFile, image: ChannelImage) -> str:
    """Why ``image`` (found flat) holds no signal, naming the channel to take instead where there is one."""
    feedback = " (the Z-controller was off: constant height)" if scan.feedback is False else ""
    current = current_channel(scan)
    instead = f"; use --channel {current}" if current and current != image.name else ""
    return f"{scan.path}: {image.name} {image.pass_} is flat (a plane, nothing to denoise){feedback}{instead}"


def choose(scan: ScanFile, pass_: str = "trace") -> Choice:
    """The image of ``scan`` to denoise when no channel is named: the topograph, unless the scan was
    taken at constant height (header) or its topograph is flat (content), then the current.

    Raises ``ScanFileError`` where neither holds a signal.
    """
    current = current_channel(scan)
    if scan.feedback is False and current is not None:
        choice = Choice(scan.channel(current, pass_), "the Z-controller was off (constant height): the current holds the image")
    elif scan.topograph is None and current is not None:
        choice = Choice(scan.channel(current, pass_), "the file has no topograph: the current holds the image")
    else:
        topograph = scan.channel(None, pass_)
        if not is_flat(topograph.data) or current is None:
            choice = Choice(topograph, None)
        else:
            choice = Choice(
                scan.channel(current, pass_), f"{topograph.name} is flat (a plane: constant height): the current holds the image"
            )
    if is_flat(choice.image.data):
        raise ScanFileError(flat_reason(scan, choice.image))
    return choice
