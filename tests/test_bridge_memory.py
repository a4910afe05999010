"""A live update that brings many rows at once reaches the back end in bands of bounded size.

The streaming denoiser runs every row new since its last update as one band; a worker that fell behind a
1024-pixel scan once handed ONNX Runtime 600 x 1024 pixels in one run, over 1 GB of working memory. The
worker now feeds such an update in steps (``MAX_BAND_PIXELS``). Real sockets; the back end records the
size of every input it is given.
"""

import time

import numpy as np
from test_bridge_live import BlurBackend, Controller, Subscriber, config, control

from maed.bridge.server import Bridge
from maed.bridge.worker import MAX_BAND_PIXELS

ROWS, COLS = 512, 1024


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class RecordingBackend(BlurBackend):
    def __init__(self):
        self.largest = 0

    def denoise(self, batch):
        self.largest = max(self.largest, batch.shape[-2] * batch.shape[-1])
        return super().denoise(batch)


def test_rows_that_arrive_at_once_are_denoised_in_bounded_bands_and_every_row_is_published(tmp_path):
    backend = RecordingBackend()
    data = np.random.default_rng(3).standard_normal((ROWS, COLS)).astype(np.float32)
    with Bridge(config(tmp_path), backend=backend) as bridge:
        ep = bridge.endpoints["control"]
        sub = Subscriber(bridge.endpoints["pub"], b"frame.rows")
        c = Controller(bridge.endpoints["pull"])
        control(ep, {"cmd": "pause"})  # the worker sees the rows but does not denoise them: they pile up
        c.start("wide", ROWS, COLS)
        for row in range(ROWS - 8):
            c.line("wide", row, data[row])
        wait_for(lambda: control(ep, {"cmd": "status"})["lines_received"] == ROWS - 8)
        control(ep, {"cmd": "resume"})
        for row in range(ROWS - 8, ROWS):  # the next update takes all 512 rows
            c.line("wide", row, data[row])
        wait_for(lambda: any(m[1]["rows_done"] == ROWS for m in sub.of("frame.rows", "wide")))
        largest_live = backend.largest  # the full-frame pass after the end runs 512 x 512 tiles (maed.denoise.TILE)
        c.end("wide")
        assert bridge.wait_finished(1, 60)
        c.close()
        sub.close()
    live = [m for m in sub.of("frame.rows", "wide") if not m[1]["final"]]
    covered = set()
    for _, header, rows, *_ in live:
        covered.update(range(header["row_start"], header["row_start"] + len(rows)))
    assert covered == set(range(ROWS))  # every row denoised live, none skipped by the steps
    assert 0 < largest_live <= MAX_BAND_PIXELS  # was 512 x 1024 in one run
