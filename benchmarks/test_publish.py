"""Cost of what is published for a frame the network denoised (``maed.publish``): the give-backs and the trust
guard on a 256 x 256 lattice scan, after the network.

- ``trace``: one pass, the chain the live guard runs (at a capped rate, on its own thread, ``bridge/streaming``);
- ``both``: with the other pass, as ``maed denoise`` of a file with both passes and the live scan's final frame run
  it, where a lattice over part of the scan is also sought in windows (``lattice_keep.local_give_back``).
"""

from __future__ import annotations

import numpy as np
import pytest

from maed.data import make_pair
from maed.denoise import run_network
from maed.normalise import levelling_of, normalise
from maed.publish import publish
from maed.zoo import PRODUCT


@pytest.mark.parametrize("passes", ["trace", "both"])
def test_publish_frame(measure, backends, models, passes):
    backend = backends("onnxruntime-cpu", models(PRODUCT))
    pair = make_pair(7, 256, families=("lattice",), both_passes=True)
    x, norm = normalise(pair.noisy, levelling_of(backend))
    y = run_network(x, norm, backend)
    other = normalise(pair.retrace, levelling_of(backend))[0] if passes == "both" else None
    rows = np.ones(len(x), dtype=bool) if passes == "both" else None
    measure(lambda: publish(x, y, rows_aligned=norm.rows_aligned, other=other, other_rows=rows), passes=passes)
