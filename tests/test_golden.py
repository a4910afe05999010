"""Golden outputs: a pinned model on fixed inputs gives the outputs recorded before the code moved.

Issue 14 moves modules between packages and merges copies of code; its behaviour must not change.
This test runs the product path on three fixed inputs and compares what comes out with the outputs
recorded in ``tests/data/golden/`` on the code before the moves:

- ``scan``: a simulated scan as an array (what ``maed denoise`` does to a ``.npy``): ``denoise_guarded``;
- ``sxm``: an instrument file with both passes of Z (a Nanonis ``.sxm``): ``denoise_file``, whose
  ``.npy`` and ``.json`` are compared;
- ``live``: a scan streamed line by line through the bridge's ``StreamingDenoiser`` (up scan, two lines
  never sent, bands of 4 lines, the live guard run once on the way), whose published frame before the end
  (``live.band``) and final frame with the retrace (``live.final``) are compared.

The model is ``rt`` through ONNX Runtime, not the product's ``rt-plane``: the product weights are
retrained from time to time (each retraining rightly changes every output), while ``rt``'s are
fixed; their SHA-256 is pinned here, so a change of weights fails as such and not as a difference
of outputs. The inputs are stored too (``inputs/``), not drawn from the simulator at test time, so
that a change of the simulator does not read as a change of the product path.

Outputs are compared within ``TOLERANCE`` of each output's range (max abs difference; NaN exactly
where the golden output has NaN), which absorbs float rounding between CPUs and ONNX Runtime
versions but not a change of behaviour. The records' decisions (the guard's output and reasons,
lattice peaks, features given back) must be equal, their figures within ``RECORD_RTOL``.

Regenerate the golden files only after a deliberate change of behaviour, and say so in the commit
(from the repository root, with the package installed as ``make install`` installs it):

    .venv/bin/python tests/test_golden.py --regenerate           # outputs from the stored inputs
    .venv/bin/python tests/test_golden.py --regenerate --inputs  # new inputs from the simulator, then outputs
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scanfile_helpers import write_sxm

from maed.bridge.streaming import StreamingDenoiser
from maed.denoise import denoise_guarded
from maed.denoise_files import denoise_file, result_record
from maed.engine import Backend, load_backend

GOLDEN = Path(__file__).parent / "data" / "golden"
INPUTS = GOLDEN / "inputs"
RECORDS = GOLDEN / "records.json"

MODEL = "rt"
RT_WEIGHTS_SHA256 = "197bec5e7a4b77f87a67d0d00ff11dc35dbff2b5bea1654bae80d1ccd268d051"
"""SHA-256 of ``rt.pt`` as the shipped ``rt.onnx`` records it (``maed.weights_sha256``)."""

TOLERANCE = 1e-4
"""Largest absolute difference from a golden output, as a share of that output's range."""
RECORD_RTOL, RECORD_ATOL = 1e-3, 1e-5
"""Tolerance of the records' figures (the guard's, the features' share): relative, and absolute near zero."""

SIZE = 64
DRAWS = {"scan": (14003, "multi_atom"), "sxm": (14002, "multi_atom"), "live": (14002, "lattice")}
"""Seed and family of each input (``make_pair(seed, SIZE, families=(family,), both_passes=True)``), chosen so
that the outputs go through the guard's fallback (``scan``), lattice peaks confirmed by the other pass
(``sxm``) and the live guard's smooth structure given back (``live``), not only the network's output."""
LIVE_SKIPPED = (5, 50)
"""Frame rows the live scan's controller never sends."""
LIVE_BAND, LIVE_HALO, LIVE_REFINE = 4, 16, 8
LIVE_GUARD_AT = 40
"""Rows done after which the live guard runs; the rows after it are published as the network's."""
RECORD_EXCLUDED = ("input", "model_file", "maed_version")
"""Record fields that depend on where and with which version the test runs, not on behaviour."""


def write_inputs(folder: Path = INPUTS) -> None:
    """Draw the fixed inputs from the simulator (run once, by ``--regenerate --inputs``)."""
    from maed.data import make_pair

    def draw(name: str):
        seed, family = DRAWS[name]
        return make_pair(seed, SIZE, families=(family,), both_passes=True)

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "scan.npy", draw("scan").noisy.astype(np.float32))
    pair = draw("sxm")
    # Nanonis stores backward lines as scanned, right to left; the reader mirrors them back.
    write_sxm(
        folder / "scan.sxm",
        channels=(("Z", "m", "both"),),
        rows=SIZE,
        cols=SIZE,
        scan_range=(20e-9, 20e-9),
        planes=[pair.noisy, pair.retrace[:, ::-1]],
    )
    pair = draw("live")
    np.save(folder / "live_trace.npy", pair.noisy.astype(np.float32))
    np.save(folder / "live_retrace.npy", pair.retrace.astype(np.float32))


def _record(result_record: dict) -> dict:
    return {k: v for k, v in result_record.items() if k not in RECORD_EXCLUDED}


def run_scan(backend: Backend) -> tuple[dict[str, np.ndarray], dict]:
    scan = np.load(INPUTS / "scan.npy")
    result = denoise_guarded(scan, backend)
    return {"scan": result.data}, _record(result_record(INPUTS / "scan.npy", Path("scan.npy"), "trace", None, backend, result))


def run_sxm(backend: Backend, out: Path) -> tuple[dict[str, np.ndarray], dict]:
    written, record = denoise_file(INPUTS / "scan.sxm", out / "scan", backend)
    return {"sxm": np.load(written[0])}, _record(record)


def run_live(backend: Backend) -> tuple[dict[str, np.ndarray], dict]:
    trace, retrace = np.load(INPUTS / "live_trace.npy"), np.load(INPUTS / "live_retrace.npy")
    rows, cols = trace.shape
    live = StreamingDenoiser(rows, cols, "up", halo=LIVE_HALO, refine=LIVE_REFINE)
    frame, other = np.full_like(trace, np.nan), np.full_like(retrace, np.nan)
    trust = []
    for done in range(LIVE_BAND, rows + 1, LIVE_BAND):
        for r in range(rows - done, rows - done + LIVE_BAND):  # an up scan: the bottom row first
            if r not in LIVE_SKIPPED:
                frame[r], other[r] = trace[r], retrace[r]
        live.update(frame, done, backend)
        if done == LIVE_GUARD_AT:
            live.guard()
            trust.append(live.trust)
    band = live.denoised.copy()
    final = live.final(frame, rows, backend, other_pass=other)
    trust.append(live.trust)
    return {"live.band": band, "live.final": final}, {"trust": trust}


def outputs(backend: Backend, out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Every golden output by name, and every record by input."""
    arrays, records = {}, {}
    for name, (got, record) in {"scan": run_scan(backend), "sxm": run_sxm(backend, out), "live": run_live(backend)}.items():
        arrays |= got
        records[name] = record
    return arrays, records


def pinned_backend() -> Backend:
    backend = load_backend("onnx", MODEL, threads=1)
    assert backend.weights_sha256 == RT_WEIGHTS_SHA256, (
        f"the shipped {MODEL} weights changed ({backend.weights_sha256}): the golden outputs pin the old ones"
    )
    return backend


def regenerate(new_inputs: bool = False) -> None:
    """Record the golden outputs from the stored inputs (and first draw new inputs, with ``new_inputs``)."""
    import tempfile

    if new_inputs:
        write_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        arrays, records = outputs(pinned_backend(), Path(tmp))
    for name, data in arrays.items():
        np.save(GOLDEN / f"{name}.npy", data.astype(np.float32))
    RECORDS.write_text(json.dumps(records, indent=1) + "\n")


def same_record(got, want, where: str = "record") -> None:
    """Assert two records equal: decisions exactly, float figures within the records' tolerance."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            same_record(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            same_record(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=RECORD_RTOL, abs_tol=RECORD_ATOL), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.fixture(scope="module")
def produced(tmp_path_factory) -> tuple[dict[str, np.ndarray], dict]:
    return outputs(pinned_backend(), tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", ["scan", "sxm", "live.band", "live.final"])
def test_outputs_match_the_golden_outputs(produced, name):
    want = np.load(GOLDEN / f"{name}.npy")
    got = produced[0][name]
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    valid = ~np.isnan(want)
    span = float(np.ptp(want[valid]))
    worst = float(np.abs(got[valid] - want[valid]).max())
    assert worst <= TOLERANCE * span, f"{name}: max abs difference {worst:.3g} is {worst / span:.3g} of the range"


@pytest.mark.parametrize("name", ["scan", "sxm", "live"])
def test_records_match_the_golden_records(produced, name):
    same_record(produced[1][name], json.loads(RECORDS.read_text())[name], name)


def test_golden_outputs_are_not_the_inputs():
    # The comparison means something only where the model changed its input beyond the tolerance.
    for name, raw in (("scan", "scan.npy"), ("live.final", "live_trace.npy")):
        want, before = np.load(GOLDEN / f"{name}.npy"), np.load(INPUTS / raw)
        valid = ~np.isnan(want)
        assert np.abs(want[valid] - before[valid]).max() > 100 * TOLERANCE * np.ptp(want[valid])


if __name__ == "__main__":
    if "--regenerate" not in sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} --regenerate [--inputs]  (see the module's docstring)")
    regenerate(new_inputs="--inputs" in sys.argv[1:])
