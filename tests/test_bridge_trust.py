"""The trust guard on a live bridge (real sockets, the shipped rt model on ONNX Runtime): every frame names
its model and weights, every denoised frame carries the latest verdict, a network that invents bands is
not published, and the final frame of a scan is ``maed denoise`` of the same raw rows, bit for bit."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scanfile_helpers import write_sxm
from test_bridge_live import BlurBackend, Controller, Subscriber, config

from maed.bridge.listen import describe_trace_retrace
from maed.bridge.server import Bridge
from maed.cli import main
from maed.data import make_pair
from maed.denoise import denoise_array, denoise_guarded
from maed.engine import load_backend
from maed.model.checkpoint import shipped_weights
from maed.normalise import denormalise, normalise
from maed.trust import conservative

needs_rt = pytest.mark.skipif(not shipped_weights("rt").exists(), reason="needs the shipped rt weights")

HONEST_SEED = 5
"""A simulated 256 x 256 scan the shipped rt passes, live and final (``trust.output`` network). Not every
simulated scan passes: with the rt and the thresholds of this writing, 7 of 8 seeds tried do, and seed
1000 falls back (19 % of the output's peak power absent from the input)."""


@pytest.fixture(scope="module")
def onnx():
    return load_backend("onnx", "rt")


class Inventing:
    """The shipped network forced to invent: its output gains horizontal bands the surface lacks."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.model, self.size_multiple = "inventing", inner.model, inner.size_multiple
        self.weights_sha256, self.levelling = inner.weights_sha256, inner.levelling

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        rows = np.arange(batch.shape[-2], dtype=np.float32)[:, None]
        return self.inner.denoise(batch) + 0.8 * np.cos(2 * np.pi * rows / 7.0)


def _wait_for_live_verdict(sub, scan, timeout=120.0):
    """Until a ``frame.denoised`` of ``scan`` carries a verdict of the live guard."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if any(h["trust"] is not None for h, _ in denoised_frames(sub, scan)):
            return
        time.sleep(0.02)
    raise AssertionError(f"no live verdict within {timeout:g} s")


def stream_scan(tmp_path, backend, image, scan, slow_axis="down", rate=400.0, verdict_midway=False, **changes):
    """Stream ``image`` (frame orientation) through a bridge on loopback; every message published, in order.
    ``verdict_midway``: after half the rows, wait for the live guard's first verdict (its cost, not the line rate,
    decides when that comes: on a loaded machine it can outlast the scan)."""
    rows, cols = image.shape
    with Bridge(config(tmp_path, **changes), backend=backend) as bridge:
        sub = Subscriber(bridge.endpoints["pub"])
        c = Controller(bridge.endpoints["pull"])
        c.start(scan, rows, cols, slow_axis=slow_axis)
        order = range(rows) if slow_axis == "down" else range(rows - 1, -1, -1)
        t0 = time.perf_counter()
        for k, row in enumerate(order):
            if verdict_midway and k == rows // 2:
                _wait_for_live_verdict(sub, scan)
                t0 = time.perf_counter() - k / rate
            time.sleep(max(0.0, t0 + k / rate - time.perf_counter()))
            c.line(scan, row, image[row])
        c.end(scan)
        streamed = time.perf_counter() - t0
        end = sub.wait_finished(scan)
        sub.close()
        c.close()
        status = bridge.status()
    end["streamed_s"] = streamed
    return sub, end, status


def denoised_frames(sub, scan):
    return [(h, data) for topic, h, data, _, _ in sub.messages if topic == "frame.denoised" and h["scan"] == scan]


def banding(image):
    """How much the row means jump from row to row: horizontal bands show here."""
    return float(np.std(np.diff(np.nanmean(image, axis=1))))


@needs_rt
def test_the_final_frame_is_maed_denoise_of_the_same_raw_rows(tmp_path, onnx):
    image = make_pair(HONEST_SEED, 256).noisy.astype("<f4")
    sub, end, status = stream_scan(tmp_path, onnx, image, "same-rows", verdict_midway=True)
    frames = denoised_frames(sub, "same-rows")
    final_header, final = frames[-1]
    assert final_header["final"] and final_header["rows_done"] == 256
    raw = np.load(Path(end["saved"]) / "raw_trace.npy")
    assert raw.tobytes() == image.tobytes()

    expected = denoise_guarded(raw, onnx)
    assert final.tobytes() == expected.data.tobytes()
    assert final_header["trust"] == {**expected.verdict.as_dict(), "rows_done": 256, "rows_judged": 256}
    # ``maed denoise`` of the saved raw rows writes the same bytes and the same verdict.
    assert (
        main(["denoise", str(Path(end["saved"]) / "raw_trace.npy"), "-o", str(tmp_path / "cli"), "--backend", "onnx", "--model", "rt"]) == 0
    )
    assert np.load(tmp_path / "cli" / "raw_trace.npy").tobytes() == final.tobytes()
    record = json.loads((tmp_path / "cli" / "raw_trace.json").read_text())
    assert record["trust"] == expected.verdict.as_dict() and record["weights_sha256"] == final_header["weights_sha256"]
    assert np.load(Path(end["saved"]) / "denoised.npy").tobytes() == final.tobytes()

    # The shipped rt trusts this scan: live verdicts and the final one say network, with no reasons.
    verdicts = [h["trust"] for h, _ in frames if h["trust"] is not None]
    assert len(verdicts) >= 2, "no live verdict before the final one"
    assert {v["output"] for v in verdicts} == {"network"} and not any(v["reasons"] for v in verdicts)
    # Every frame names the model and its weights; every denoised frame carries trust (null before the first).
    for topic, h, *_ in sub.messages:
        if topic.startswith("frame."):
            assert h["model"] == "rt" and h["weights_sha256"] == onnx.weights_sha256 and len(h["weights_sha256"]) == 64
    assert all("trust" in h for h, _ in frames)
    first = next(i for i, (h, _) in enumerate(frames) if h["trust"] is not None)
    assert frames[first][0]["trust"]["rows_done"] >= 32 and all(h["trust"] is None for h, _ in frames[:first])
    assert [h["trust"]["rows_done"] for h, _ in frames[first:]] == sorted(h["trust"]["rows_done"] for h, _ in frames[first:])
    assert status["guard_ms"]["count"] >= 1
    print(f"\nlive guard: {status['guard_ms']['count']} evaluations, p50 {status['guard_ms']['p50']:.1f} ms")


@needs_rt
def test_the_final_frame_of_an_up_scan_is_maed_denoise_in_acquisition_order(tmp_path, onnx):
    image = make_pair(HONEST_SEED + 1, 128).noisy.astype("<f4")
    sub, end, _ = stream_scan(tmp_path, onnx, image, "up-rows", slow_axis="up", rate=800.0)
    final_header, final = denoised_frames(sub, "up-rows")[-1]
    raw = np.load(Path(end["saved"]) / "raw_trace.npy")
    assert final_header["final"] and raw.tobytes() == image.tobytes()
    # The network sees rows in the order they were scanned: ``maed denoise`` of the rows turned over, turned back.
    np.save(tmp_path / "acquired.npy", raw[::-1])
    assert main(["denoise", str(tmp_path / "acquired.npy"), "-o", str(tmp_path / "cli"), "--backend", "onnx", "--model", onnx.model]) == 0
    assert np.load(tmp_path / "cli" / "acquired.npy")[::-1].tobytes() == final.tobytes()
    # The controller's own file of the scan, a Nanonis .sxm that says it ran upwards (stored as scanned, the first
    # line first), gives the same bytes: ``maed denoise`` turns it into the order it was scanned in too.
    write_sxm(tmp_path / "up.sxm", (("Z", "m", "forward"),), *image.shape, scan_dir="up", planes=[image[::-1]])
    assert main(["denoise", str(tmp_path / "up.sxm"), "-o", str(tmp_path / "cli"), "--backend", "onnx", "--model", onnx.model]) == 0
    assert np.load(tmp_path / "cli" / "up.npy").tobytes() == final.tobytes()


@needs_rt
def test_a_network_that_invents_bands_is_not_published_live_nor_final(tmp_path, onnx):
    image = make_pair(HONEST_SEED, 256).noisy.astype("<f4")
    inventing = Inventing(onnx)
    # Slow enough for a verdict before the end on a loaded machine: the first judgement of the live rows takes
    # a few tenths of a second, and a scan of 0.85 s (300 lines/s) ended before it on a CPU busy with training.
    sub, end, _ = stream_scan(tmp_path, inventing, image, "inventing", rate=100.0)
    frames = denoised_frames(sub, "inventing")
    final_header, final = frames[-1]
    assert final_header["final"] and final_header["trust"]["output"] == "fallback" and final_header["trust"]["reasons"]
    assert final_header["trust"]["fallback_fraction"] == 1.0
    assert final_header["model"] == "rt" and final_header["weights_sha256"] == onnx.weights_sha256
    # What is published holds no bands: the conservative result of the same rows, as ``maed denoise`` gives.
    x, norm = normalise(image)
    np.testing.assert_array_equal(final, denoise_guarded(image, inventing).data)
    assert np.abs(final.mean(axis=1) - denormalise(conservative(x), norm).mean(axis=1)).max() < 1e-3 * np.ptp(image)
    assert banding(final) < 0.2 * banding(denoise_array(image, inventing))  # the network's own output

    # Live: once judged, every denoised frame says fallback and its judged rows hold no bands.
    live = [(h, d) for h, d in frames if not h["final"] and h["trust"] is not None]
    assert live, "no live verdict before the scan ended"
    for h, data in live:
        assert h["trust"]["output"] == "fallback" and h["trust"]["reasons"]
    h, data = live[-1]
    n = h["trust"]["rows_done"]
    assert banding(data[:n]) < 0.2 * banding(denoise_array(image[:n], inventing))
    folder = Path(end["saved"])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["trust"]["output"] == "fallback" and meta["weights_sha256"] == onnx.weights_sha256


def test_the_live_guard_runs_at_its_capped_rate_and_always_on_the_final_frame(tmp_path):
    image = make_pair(3, 128).noisy.astype("<f4")
    # Whole frames with every update (frame_interval 0): each evaluation's verdict shows on a frame.
    sub, end, status = stream_scan(tmp_path, BlurBackend(), image, "rate", rate=50.0, guard_interval=0.2, frame_interval=0.0)
    frames = denoised_frames(sub, "rate")
    live = [h["trust"]["rows_done"] for h, _ in frames if not h["final"] and h["trust"] is not None]
    evaluations = len(set(live))
    assert status["guard_ms"]["count"] == evaluations  # one verdict per evaluation, each riding until the next
    # At most one evaluation per 0.2 s of streaming (plus the first), and more than one in 2.6 s (the cap
    # stretches to 20 times the guard's cost, which a loaded CI core can push past 100 ms).
    assert 2 <= evaluations <= end["streamed_s"] / 0.2 + 1.5, (evaluations, end["streamed_s"])
    assert len(live) > evaluations  # verdicts ride on the frames between evaluations
    assert frames[-1][0]["final"] and frames[-1][0]["trust"]["rows_done"] == 128
    assert frames[-1][0]["weights_sha256"] == "unknown"  # a back end that does not name its weights says so


def test_updates_go_on_while_the_live_guard_judges(tmp_path, monkeypatch):
    """The guard judges on a thread of its own: an evaluation as slow as a 1024-row frame's (0.8 s on the
    worker's own thread, a stall of every update meanwhile) leaves the rows flowing, and its verdict is
    still published live."""
    from maed.bridge import worker

    def slow_judge(job):
        time.sleep(0.8)
        return judge(job)

    judge = worker.judge
    monkeypatch.setattr(worker, "judge", slow_judge)
    image = make_pair(3, 256).noisy.astype("<f4")
    sub, end, status = stream_scan(tmp_path, BlurBackend(), image, "slow-guard", rate=100.0, guard_interval=0.2)
    arrivals = [m[4] for m in sub.of("frame.rows", "slow-guard") if not m[1]["final"]]
    assert len(arrivals) > 20 and np.diff(arrivals).max() < 0.5, np.diff(arrivals).max()
    live = [h["trust"] for h, _ in denoised_frames(sub, "slow-guard") if not h["final"] and h["trust"] is not None]
    assert live and status["guard_ms"]["count"] >= 1


def test_the_final_frame_gives_back_the_lattice_the_retrace_confirms(tmp_path):
    """A network that erases a lattice: the final frame holds it again, as ``maed denoise`` of both passes does,
    with the retrace's evidence (its peaks where the trace has them)."""
    from test_lattice_keep import EraserBackend, _peaks_of

    from maed.lattice_keep import BOTH_PASSES
    from maed.noreference import peak_power

    # A row lattice: one pass alone cannot tell it from pick-up (tests/test_lattice_keep.py), both passes can.
    rng = np.random.default_rng(3)
    lattice = np.cos(2 * np.pi * np.mgrid[0:128, 0:128][1] / 5.3)
    trace, retrace = ((lattice + rng.normal(0, 1.0, lattice.shape)).astype("<f4") for _ in range(2))
    rows, cols = trace.shape
    with Bridge(config(tmp_path), backend=EraserBackend()) as bridge:
        sub = Subscriber(bridge.endpoints["pub"])
        c = Controller(bridge.endpoints["pull"])
        c.start("lattice", rows, cols)
        for row in range(rows):
            c.line("lattice", row, trace[row])
            c.line("lattice", row, retrace[row], pass_="retrace")
        c.end("lattice")
        end = sub.wait_finished("lattice")
        sub.close()
        c.close()
    final = denoised_frames(sub, "lattice")[-1][1]
    saved = Path(end["saved"])
    raw_trace, raw_retrace = np.load(saved / "raw_trace.npy"), np.load(saved / "raw_retrace.npy")
    assert raw_retrace.tobytes() == retrace.tobytes()
    expected = denoise_guarded(raw_trace, EraserBackend(), other_pass=raw_retrace)
    assert expected.lattice.peaks > 0 and final.tobytes() == expected.data.tobytes()
    x, norm = normalise(raw_trace)
    out = (final.astype(np.float64) - norm.plane - norm.centre) / norm.scale
    assert 0.8 <= peak_power(x, out, _peaks_of(lattice))["kept"] <= 1.2
    # The retrace was the evidence: the trace alone does not give the row lattice back.
    alone = denoise_guarded(raw_trace, EraserBackend())
    assert expected.lattice.evidence == BOTH_PASSES and alone.lattice.peaks == 0
    assert peak_power(x, (alone.data - norm.plane - norm.centre) / norm.scale, _peaks_of(lattice))["kept"] < 0.8


def test_a_finished_scan_with_retrace_reports_its_trace_retrace_error(tmp_path):
    """Both passes of one surface with independent white noise, ``maed serve --trace-retrace``: the final frame and
    meta.json give the scan's trace/retrace error, raw's at sqrt(2) times the noise, the product's below it and below
    the 1-pixel Gaussian's (which blurs this surface's fine structure more than it removes noise); a scan without
    retrace lines gives none."""
    product = load_backend("onnx")
    surface = make_pair(11, 128).clean.astype(np.float64)
    sigma = 0.1 * float(surface.std())
    rng = np.random.default_rng(4)
    trace, retrace = (surface + rng.normal(0, sigma, surface.shape) for _ in range(2))
    with Bridge(config(tmp_path, trace_retrace=True), backend=product) as bridge:
        sub = Subscriber(bridge.endpoints["pub"])
        c = Controller(bridge.endpoints["pull"])
        for scan, passes in (("both", ("trace", "retrace")), ("trace-only", ("trace",))):
            c.start(scan, *surface.shape)
            for row in range(surface.shape[0]):
                for pass_ in passes:
                    c.line(scan, row, (trace if pass_ == "trace" else retrace)[row].astype("<f4"), pass_)
            c.end(scan)
            sub.wait_finished(scan)
        sub.close()
        c.close()
    final = {h["scan"]: h for h, _ in (m for s in ("both", "trace-only") for m in denoised_frames(sub, s)) if h["final"]}
    figures = final["both"]["trace_retrace"]
    assert figures["rows"] == surface.shape[0]
    assert figures["slow_shift"] == 0.0  # both passes recorded on the same lines
    assert abs(figures["raw"]["value"] / (np.sqrt(2) * sigma) - 1) < 0.15
    assert figures["model"]["value"] < min(figures["raw"]["value"], figures["classical"]["value"])
    assert figures["model"]["low"] <= figures["model"]["value"] <= figures["model"]["high"]
    assert "trace_retrace" not in final["trace-only"]
    meta = json.loads((tmp_path / "scans" / "both" / "meta.json").read_text())
    assert "trace_retrace" in meta
    assert meta["trace_retrace"]["model"]["value"] == pytest.approx(figures["model"]["value"])
    printed = describe_trace_retrace(figures, "m")  # what maed listen prints
    assert f"model={figures['model']['value']:.3g}" in printed and f"raw={figures['raw']['value']:.3g}" in printed
    assert "slow axis" not in printed
    assert "slow axis moved +0.95 line" in describe_trace_retrace({**figures, "slow_shift": 0.95}, "m")
