"""Spikes: a pixel, or a few along one line, read wrong (an electronic glitch, a read-out error, a tip that touched
for a moment), narrower than any tip can image.

A tip images every feature over several lines: the smallest adatom spans its apex's width, and the scan's rows are
closer than that wherever atoms are resolved. So a short run of pixels on one line that stands far out from the
lines above and below it, and from the pixels either side of it on its own line, is not surface. The network takes
most of such a spike off, but whatever is given back after it from the input (compact features, point defects, the
conservative result the guard blends in, ``maed.publish``) would bring it back: on the third blind simulator
(``benchmarks/blind_molecules.py``) a scan whose network output stood 4 dB above the classical pipeline was
published 3 dB below it, its spikes given back as point defects and by the guard's blend. ``without_spikes``
is the input those give-backs draw from.

A spike is a run of at most ``MAX_RUN`` pixels along one row, each pixel standing ``THRESHOLD`` times the noise
beyond both the row above and the row below (same sign), and the run's extreme beyond the pixels either side of it
along the row by as much. The noise is the spread of the differences between neighbouring rows (where STM noise
is independent), the frame's or that of the pixel's ``BLOCK``-pixel block and the blocks around it, whichever is
largest: the noise of a current image grows with the current, and a molecule's noisy pixels are no spikes. Longer
runs are scars (``maed.classical.scar_runs``: the tip jumped for part of a line), which the network takes off and
the feature search leaves alone (``maed.feature_keep.MIN_ROWS``). On the real scans of ``../shared/data/real-stm``
(26 images, their first channel) it finds spikes on two only: 9 pixels on ``createc_scan_close_100nm.dat`` (bright
blips a line tall at the step edge) and 65 on ``pySPM_test.sxm`` (bright blips a line tall on a granular film); on
white noise, none in twenty 256 x 256 frames.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .classical import SCAR_RUN

THRESHOLD = 5.0
"""Noise scales a spike stands beyond the rows above and below it, and beyond the pixels beside it along its row."""
MAX_RUN = SCAR_RUN - 1
"""Longest spike along a row, in pixels: a run of ``SCAR_RUN`` or more is a scar."""
BLOCK = 16
"""Side (pixels) of the blocks whose own noise a spike must stand beyond too."""
_ALONG_ROWS = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)


def _noise(img: np.ndarray) -> tuple[float, np.ndarray]:
    """The robust spread (1.4826 times the median absolute value) of the differences between neighbouring rows: over
    the frame, and per pixel the largest over its ``BLOCK`` x ``BLOCK`` block and the blocks around it (a block that
    a noisy region half fills has the quiet half's spread)."""
    rows, cols = img.shape
    # About 0 rather than the median (``classical.row_difference_spread``): the blocks need the absolute differences
    # anyway, and the differences of neighbouring rows centre on 0, so one median serves the frame.
    differences = np.abs(np.diff(img, axis=0))
    frame = 1.4826 * float(np.median(differences))
    differences = np.vstack([differences, differences[-1:]])
    blocks_down, blocks_across = -(-rows // BLOCK), -(-cols // BLOCK)
    padded = np.pad(differences, ((0, blocks_down * BLOCK - rows), (0, blocks_across * BLOCK - cols)), mode="edge")
    per_block = padded.reshape(blocks_down, BLOCK, blocks_across, BLOCK).transpose(0, 2, 1, 3).reshape(blocks_down, blocks_across, -1)
    spread = ndimage.grey_dilation(1.4826 * np.median(per_block, axis=2), size=(3, 3), mode="nearest")
    return frame, np.repeat(np.repeat(spread, BLOCK, axis=0), BLOCK, axis=1)[:rows, :cols]


def spike_pixels(img: np.ndarray) -> np.ndarray:
    """The pixels of ``img``'s spikes (see the module docstring), a boolean mask of its shape; none in a frame of
    fewer than 3 rows or columns, or without noise to judge them against."""
    img = np.asarray(img, dtype=np.float64)
    rows, cols = img.shape
    spikes = np.zeros(img.shape, dtype=bool)
    if rows < 3 or cols < 3:
        return spikes
    frame_noise, block_noise = _noise(img)
    if frame_noise == 0.0:
        return spikes
    limit = THRESHOLD * np.maximum(frame_noise, block_noise)
    above, below = img[1:-1] - img[:-2], img[1:-1] - img[2:]
    sign = np.zeros(img.shape)
    sign[1:-1] = np.where(np.minimum(above, below) > limit[1:-1], 1.0, 0.0) - np.where(np.maximum(above, below) < -limit[1:-1], 1.0, 0.0)
    labels, _ = ndimage.label(sign != 0, structure=_ALONG_ROWS)
    for row_slice, col_slice in ndimage.find_objects(labels):
        row, first, stop = row_slice.start, col_slice.start, col_slice.stop
        if stop - first > MAX_RUN or first == 0 or stop == cols:
            continue  # a scar, or a run the frame's edge cuts: nothing beside it to judge it against
        run = sign[row, first:stop]
        if (run != run[0]).any():
            continue
        extreme = (run[0] * img[row, first:stop]).max()
        if min(extreme - run[0] * img[row, first - 1], extreme - run[0] * img[row, stop]) > limit[row, first]:
            spikes[row, first:stop] = True
    return spikes


def without_spikes(img: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """``img`` with its ``spikes`` (``spike_pixels``) replaced by the mean of the rows above and below: a spike is one
    row tall, so both are measured there."""
    img = np.asarray(img, dtype=np.float64)
    if not spikes.any():
        return img
    out = img.copy()
    rows, cols = np.nonzero(spikes)
    out[rows, cols] = 0.5 * (img[rows - 1, cols] + img[rows + 1, cols])
    return out
