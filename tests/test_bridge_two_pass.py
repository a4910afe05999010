"""``maed serve --pass both``: each finished scan whose every row came in both passes is denoised by the two-pass
model, exactly as ``maed denoise --pass both`` denoises the same raw rows; a scan without its retrace, and the
live frames, by the one-pass product model; a one-pass model given for both passes is a one-line error."""

import json
from pathlib import Path

import numpy as np
import pytest
from test_bridge_live import Controller, Subscriber, config, control

from maed.bridge.server import Bridge
from maed.data import make_pair
from maed.denoise import denoise_guarded
from maed.engine import load_backend
from maed.zoo import PRODUCT, TWO_PASS_PRODUCT

ROWS = COLS = 96


def send_scan(c: Controller, scan: str, trace: np.ndarray, retrace: np.ndarray | None) -> None:
    c.start(scan, *trace.shape)
    for row in range(trace.shape[0]):
        c.line(scan, row, trace[row])
        if retrace is not None:
            c.line(scan, row, retrace[row], "retrace")
    c.end(scan)


@pytest.fixture(scope="module")
def pair():
    p = make_pair(4242, ROWS, both_passes=True)
    return p.noisy.astype("<f4"), p.retrace.astype("<f4")


def test_a_scan_with_both_passes_ends_in_the_two_pass_models_frame(tmp_path, pair):
    trace, retrace = pair
    with Bridge(config(tmp_path, pass_="both", model=TWO_PASS_PRODUCT, backend="onnx")) as bridge:
        info = control(bridge.endpoints["control"], {"cmd": "info"})
        sub = Subscriber(bridge.endpoints["pub"])
        c = Controller(bridge.endpoints["pull"])
        send_scan(c, "both", trace, retrace)
        both = sub.wait_finished("both")
        send_scan(c, "trace-only", trace, None)
        trace_only = sub.wait_finished("trace-only")
        sub.close()
        c.close()
    assert info["pass"] == "both" and info["model_both"] == TWO_PASS_PRODUCT and info["model"] == PRODUCT

    final = next(m for m in sub.of("frame.denoised", "both") if m[1]["final"])
    live = [m for m in sub.of("frame.rows", "both") if not m[1]["final"]]
    # Live updates (if the worker made any before the scan ended: a 96-row scan can arrive between two) are the
    # one-pass model's; the final frame is the two-pass model's.
    assert final[1]["model"] == TWO_PASS_PRODUCT and {m[1]["model"] for m in live} <= {PRODUCT}
    offline = denoise_guarded(trace, load_backend("onnx", TWO_PASS_PRODUCT), other_pass=retrace)
    expected = offline.data
    np.testing.assert_array_equal(final[2], expected)
    meta = json.loads((Path(both["saved"]) / "meta.json").read_text())
    assert meta["pass"] == "both" and meta["model"] == TWO_PASS_PRODUCT
    assert meta["passes_frame"] == offline.passes_frame and offline.passes_frame in ("midway", "trace")
    np.testing.assert_array_equal(np.load(Path(both["saved"]) / "denoised.npy"), expected)

    # No retrace: the one-pass model, as maed denoise --pass trace of the same rows.
    final = next(m for m in sub.of("frame.denoised", "trace-only") if m[1]["final"])
    assert final[1]["model"] == PRODUCT
    np.testing.assert_array_equal(final[2], denoise_guarded(trace, load_backend("onnx", PRODUCT)).data)
    trace_meta = json.loads((Path(trace_only["saved"]) / "meta.json").read_text())
    assert trace_meta["pass"] == "trace" and trace_meta["passes_frame"] is None


def test_a_scan_missing_retrace_rows_is_denoised_from_its_trace(tmp_path, pair):
    trace, retrace = pair
    partial = retrace.copy()
    with Bridge(config(tmp_path, pass_="both", model=TWO_PASS_PRODUCT, backend="onnx")) as bridge:
        sub = Subscriber(bridge.endpoints["pub"])
        c = Controller(bridge.endpoints["pull"])
        c.start("gap", ROWS, COLS)
        for row in range(ROWS):
            c.line("gap", row, trace[row])
            if row != 40:  # one retrace line lost: the two-pass frame would leave row 40 out
                c.line("gap", row, partial[row], "retrace")
        c.end("gap")
        sub.wait_finished("gap")
        sub.close()
        c.close()
    final = next(m for m in sub.of("frame.denoised", "gap") if m[1]["final"])
    assert final[1]["model"] == PRODUCT and np.isfinite(final[2]).all()


def test_a_one_pass_model_for_both_passes_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="--pass both needs a two-pass model"):
        Bridge(config(tmp_path, pass_="both", model=PRODUCT, backend="onnx")).start()


def test_the_bridge_takes_trace_or_both_only(tmp_path):
    with pytest.raises(ValueError, match="got pass 'retrace'"):
        config(tmp_path, pass_="retrace")
