"""The two-pass model (``rt-both``): both passes in one frame in, one frame out.

Its start from the one-pass weights, the input both passes share one map into, the training samples, the
path ``maed denoise --pass both`` runs (tiles and all, torch and ONNX Runtime alike) and the errors a user
can make choosing passes and models."""

import json

import gwyfile
import numpy as np
import pytest
import torch
from scanfile_helpers import write_sxm

from maed.adapt import load_base
from maed.cli import main
from maed.data import make_pair
from maed.denoise import PLANE_TILE, denoise_array, denoise_guarded, one_pass_only, run_network
from maed.denoise_files import record_notes
from maed.engine import load_backend
from maed.export import export_onnx, onnx_vs_torch
from maed.model import build_model
from maed.model.checkpoint import load_model, save_checkpoint
from maed.normalise import PLANE, normalise, normalise_passes
from maed.registration import Registration, align, two_pass_input
from maed.research.evaluate_passes import ALIGNED_MEAN, ALIGNED_ONE, ONE_PASS, TWO_PASS, evaluate_passes
from maed.research.pass_methods import MIDWAY_MEAN, mean_on_trace
from maed.training.dataset import TrainingPairs
from maed.training.trainer import _load_matching


@pytest.fixture(scope="module")
def from_one_pass(tmp_path_factory):
    """A two-pass checkpoint started from the shipped one-pass weights, as ``maed train --init`` starts it."""
    model = build_model("rt-both")
    taken, widened, total = _load_matching(model, load_model("rt-plane")[0].state_dict())
    assert taken == total and widened > 0  # every tensor fits, the stem's widened to take the retrace too
    path = tmp_path_factory.mktemp("both") / "both.pt"
    save_checkpoint(path, model, "rt-both", extra={"levelling": PLANE})
    return path


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A two-pass checkpoint whose correction is zero (an untrained head): its output is the trace."""
    path = tmp_path_factory.mktemp("untrained") / "untrained.pt"
    save_checkpoint(path, build_model("rt-both"), "rt-both", extra={"levelling": PLANE})
    return path


class MeanOfPasses:
    """A two-pass back end whose frame is the mean of the passes it is given: known output, no network."""

    name = "mean"
    model = "mean"
    size_multiple = 16
    passes = 2

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return batch.mean(axis=1, keepdims=True)


class TraceOfPasses(MeanOfPasses):
    """A two-pass back end that answers with the trace it is given."""

    def denoise(self, batch: np.ndarray) -> np.ndarray:
        return batch[:, :1]


def test_started_from_one_pass_weights_it_is_that_model_on_the_trace(from_one_pass):
    both, _ = load_model(str(from_one_pass))
    one, _ = load_model("rt-plane")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 2, 64, 64)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(both(x).numpy(), one(x[:, :1]).numpy(), atol=1e-4)
    assert any(p.grad is not None and p.grad[:, 1].abs().sum() > 0 for p in _retrace_weights(both, x))
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        both(x[:, :1])


def _retrace_weights(model, x):
    """The stem's first convolutions after one backward pass: their retrace channel starts at zero but learns."""
    model.train()
    model(x).square().mean().backward()
    model.eval()
    return [branch.weight for branch in model.stem.branches]


def test_both_passes_go_in_through_the_traces_map():
    rng = np.random.default_rng(1)
    surface = rng.standard_normal((48, 64))
    offsets = np.cumsum(rng.standard_normal(48))[:, None] * 5  # line offsets dominate: the rows get aligned
    trace, retrace = surface + offsets, surface + offsets + 0.01 * rng.standard_normal((48, 64))
    both, norm = normalise_passes(trace, retrace, PLANE)
    alone, _ = normalise(trace, PLANE)
    assert norm.rows_aligned and both.shape == (2, 48, 64)
    np.testing.assert_array_equal(both[0], alone)
    # The trace's row offsets come off the retrace too: what differs between the channels is what differs between the passes.
    np.testing.assert_allclose((both[1] - both[0]) * norm.scale, retrace - trace, atol=1e-5)


def test_a_two_pass_training_sample_is_the_input_maed_denoise_gives_the_model():
    x, y, _ = next(iter(TrainingPairs(64, first_seed=3, passes=2, levelling=PLANE)))
    assert x.shape == (2, 64, 64) and y.shape == (1, 64, 64)
    both, clean, _ = TrainingPairs(64, first_seed=0, passes=2).sample(4)
    pair = make_pair(4, 64, both_passes=True)  # the simulated scan of the same seed
    expected = two_pass_input(pair.noisy, pair.retrace, pair.passes.speed_ratio)
    np.testing.assert_array_equal(both[0], expected.first)
    np.testing.assert_array_equal(both[1], expected.second)
    # The raw passes, on which the rows' levelling is judged.
    np.testing.assert_array_equal(both[2], pair.noisy)
    np.testing.assert_array_equal(both[3], pair.retrace)
    np.testing.assert_array_equal(clean, pair.clean)


def test_the_rows_of_both_passes_are_levelled_as_the_one_pass_path_levels_them():
    rng = np.random.default_rng(4)
    surface = rng.standard_normal((48, 64))
    walk = np.cumsum(rng.standard_normal(48))[:, None] * 5
    with_offsets, without = surface + walk, surface + 0.01 * rng.standard_normal((48, 64))
    assert normalise(with_offsets, PLANE)[1].rows_aligned and not normalise(without, PLANE)[1].rows_aligned
    # The passes' mean (here without offsets) goes in with its rows aligned where a raw pass's offsets dominate, and
    # as it is where neither pass's do: the decision is the passes', whatever the mean would say.
    assert normalise_passes(without, without, PLANE, judged_on=(without, with_offsets))[1].rows_aligned
    assert not normalise_passes(with_offsets, with_offsets, PLANE, judged_on=(without, without))[1].rows_aligned
    # One pass is judged with its other pass alike: both passes of a scan are levelled the same way.
    assert normalise(without, PLANE, judged_on=(without, with_offsets))[1].rows_aligned


def test_the_network_path_feeds_both_passes_through_the_same_tiles(untrained):
    assert load_backend("torch", str(untrained), threads=1).passes == 2
    backend = MeanOfPasses()
    rng = np.random.default_rng(2)
    size = PLANE_TILE + 60  # more than one tile, each with its own plane
    both = rng.standard_normal((2, size, size)).cumsum(axis=2) * 0.1
    both[1] += 0.3 * rng.standard_normal((size, size))
    x, norm = normalise_passes(both[0], both[1], PLANE)
    assert not norm.rows_aligned
    np.testing.assert_allclose(run_network(x, norm, backend), x.mean(axis=0), atol=1e-4)


def test_one_frame_from_both_passes_is_guarded_against_the_trace():
    backend = MeanOfPasses()
    pair = make_pair(7, 64, both_passes=True)
    trace = pair.noisy.copy()
    trace[50:] = np.nan  # a scan stopped early
    retrace = pair.retrace.copy()
    retrace[40:] = np.nan  # the retrace of the last rows never ran
    result = denoise_guarded(trace, backend, other_pass=retrace, ratio=pair.passes.speed_ratio)
    assert np.isfinite(result.data[:40]).all() and np.isnan(result.data[40:]).all()
    # The retrace went in: a back end that answers with the trace alone publishes another frame.
    alone = denoise_guarded(trace, TraceOfPasses(), other_pass=retrace, ratio=pair.passes.speed_ratio)
    assert np.isnan(alone.data[40:]).all() and np.abs(alone.data[:40] - result.data[:40]).max() > 0.1 * np.std(result.data[:40])
    with pytest.raises(ValueError, match="needs the scan's retrace"):
        denoise_guarded(trace, backend)


def test_onnx_export_takes_two_passes_and_matches_torch(from_one_pass, tmp_path):
    dest = tmp_path / "both.onnx"
    export_onnx(str(from_one_pass), dest)
    backend = load_backend("onnx", str(dest), threads=1)
    assert backend.passes == 2
    assert onnx_vs_torch(str(from_one_pass), dest, (64, 96)) < 1e-4


def test_pass_both_denoises_an_instrument_file_into_one_frame(untrained, tmp_path):
    stored = write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "both"),), rows=32, cols=32)
    out = tmp_path / "o"
    assert (
        main(["denoise", str(tmp_path / "s.sxm"), "-o", str(out), "--pass", "both", "--model", str(untrained), "--backend", "torch"]) == 0
    )
    record = json.loads((out / "s.json").read_text())
    assert record["pass"] == "both" and record["trust"]["output"] == "network"
    # The untrained model's correction is zero: its frame is the first channel it was given, in the frame it names.
    given = two_pass_input(stored[0], stored[1][:, ::-1])
    assert record["passes_frame"] == given.frame
    said = " ".join(record_notes(tmp_path / "s.sxm", record, "both"))
    assert ("the frame is the trace's as recorded, not midway" in said) == (given.frame == "trace")
    np.testing.assert_allclose(np.load(out / "s.npy"), given.first, atol=1e-3 * np.ptp(stored[0]))
    fields = gwyfile.util.get_datafields(gwyfile.load(str(out / "s.gwy")))
    np.testing.assert_array_equal(fields["Z trace (raw)"].data, stored[0])
    np.testing.assert_array_equal(fields["Z retrace (raw)"].data, stored[1][:, ::-1])


def test_passes_and_models_that_do_not_fit_are_one_line_errors(untrained, tmp_path, capsys):
    write_sxm(tmp_path / "s.sxm", channels=(("Z", "m", "both"),), rows=32, cols=32)
    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_normal((32, 32)))
    cases = [
        (["--pass", "both", "--model", "rt-plane", "--backend", "onnx"], 2, "--pass both needs a two-pass model"),
        (["--model", str(untrained), "--backend", "torch"], 2, "takes both passes (trace and retrace): give --pass both"),
    ]
    for options, code, message in cases:
        assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), *options]) == code
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not (tmp_path / "o").exists()
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "a.npy"),
                "-o",
                str(tmp_path / "o"),
                "--pass",
                "both",
                "--model",
                str(untrained),
                "--backend",
                "torch",
            ]
        )
        == 1
    )
    assert "a.npy: one pass only; --pass both needs the trace and the retrace" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "s.sxm"), "-o", str(tmp_path / "o"), "--pass", "both", "--direction", "forward"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_one_pass_tools_refuse_a_two_pass_model_in_one_line(untrained):
    backend = load_backend("torch", str(untrained), threads=1)
    with pytest.raises(ValueError, match="takes both passes .* the live bridge runs one-pass models"):
        one_pass_only(backend, "the live bridge")
    with pytest.raises(ValueError, match="takes both passes"):
        denoise_array(np.zeros((32, 32)), backend)
    with pytest.raises(ValueError, match="a two-pass model; maed adapt fits one-pass models"):
        load_base(str(untrained))


def test_eval_passes_scores_the_two_pass_model_against_one_pass_and_the_mean(untrained, tmp_path):
    one, two = load_backend("onnx", "rt-plane", threads=1), load_backend("torch", str(untrained), threads=1)
    with pytest.raises(ValueError, match="compares a one-pass model with a two-pass one"):
        evaluate_passes(tmp_path, two, one, count=2, size=64, columns=("steps",))
    results = evaluate_passes(tmp_path, one, two, count=3, size=64, columns=("steps", "adsorbates"))
    methods = results["steps"]["methods"]
    # An untrained two-pass model gives back its first channel, the mean of the passes moved to where the surface is:
    # closer to the surface than the raw trace, but below one pass, bar missed. (Shown on adsorbates: these steps run
    # straight along the rows, which every method that aligns the rows erases, and where a pass's offsets dominate
    # both passes are aligned.)
    adsorbates = results["adsorbates"]["methods"]
    assert adsorbates[TWO_PASS]["psnr"][0] > adsorbates["noisy input"]["psnr"][0] + 0.5
    assert results["adsorbates"]["gains"][ONE_PASS][0] < 0 and not results["steps"]["met"] and not results["adsorbates"]["met"]
    # What placement alone gives, the one-pass outputs moved midway and averaged, is scored and reported too.
    assert results["adsorbates"]["gains"][MIDWAY_MEAN][0] < 0 and "mean of one-pass outputs, midway" in (tmp_path / "passes.md").read_text()
    # The ceiling: the one-pass model on the mean of aligned passes (half the independent noise) beats it on the trace.
    assert methods[ALIGNED_MEAN]["psnr"][0] > methods[ALIGNED_ONE]["psnr"][0]
    assert results["steps"]["ceiling"][0] == pytest.approx(methods[ALIGNED_MEAN]["psnr"][0] - methods[ALIGNED_ONE]["psnr"][0])
    table = (tmp_path / "passes.md").read_text()
    assert "| steps |" in table and "| missed |" in table
    assert json.loads((tmp_path / "passes.json").read_text())["two_pass"] == two.model


def test_mean_of_one_pass_outputs_keeps_the_trace_where_the_retrace_saw_nothing():
    # A pair registered 30 px apart on a 40-px frame: only the first 10 columns were seen by both passes.
    rng = np.random.default_rng(5)
    trace, retrace = rng.normal(size=(6, 40)), rng.normal(size=(6, 40))
    registration = Registration.shift(np.full(6, 30.0), cols=40)
    mean = mean_on_trace(trace, retrace, registration)
    np.testing.assert_array_equal(mean[:, 10:], trace[:, 10:])
    np.testing.assert_allclose(mean[:, :10], 0.5 * (trace + align(retrace, registration))[:, :10])
    assert not np.allclose(mean[:, :10], trace[:, :10])


def test_the_midway_mean_of_one_pass_outputs_follows_the_two_pass_inputs_rule(untrained):
    """The comparator 'mean of one-pass outputs, midway' goes midway where the two-pass input does, and stays in the
    trace's frame (the plain mean) where the registration could be a period off: a grating of one period, whose
    passes match nearly as well a period apart (``registration.period_ambiguity``)."""
    from maed.registration import AMBIGUOUS, period_ambiguity
    from maed.research.pass_methods import MEAN, pass_outputs

    one, two = load_backend("onnx", "rt-plane", threads=1), load_backend("torch", str(untrained), threads=1)
    rng = np.random.default_rng(3)
    x = np.arange(96.0)
    grating = np.repeat((20e-12 * np.sin(2 * np.pi * x / 6))[None, :], 96, axis=0)
    trace, retrace = (np.roll(grating, s, axis=1) + rng.normal(0, 1e-12, grating.shape) for s in (0, 3))
    assert period_ambiguity(trace, retrace) > AMBIGUOUS
    outputs = pass_outputs(trace, retrace, 1.0, one, two)
    np.testing.assert_array_equal(outputs[MIDWAY_MEAN], outputs[MEAN])
    pair = make_pair(7, 96, families=("adsorbates",), both_passes=True)  # compact features: no period to mistake
    outputs = pass_outputs(pair.noisy, pair.retrace, pair.passes.speed_ratio, one, two)
    moved = outputs[MIDWAY_MEAN] - outputs[MEAN]
    assert np.abs(moved).max() > 0.05 * np.ptp(pair.clean)  # the features moved midway
