"""``maed train``: a short run lowers the loss, resumes where it stopped, and reads user pairs."""

import json

import numpy as np
import pytest
import torch

from maed.data import make_pair
from maed.engine.onnx_backend import OnnxBackend
from maed.model.checkpoint import load_checkpoint
from maed.training import TrainConfig, train
from maed.training.dataset import CLEAN_TARGET, TrainingPairs, UserPairs

SHORT = TrainConfig(steps=40, steps_per_epoch=20, batch_size=4, patch=64, lr=3e-3, validation_scans=4, workers=0)


def test_short_run_lowers_the_loss(tmp_path):
    report = train(SHORT, tmp_path, log=lambda *_: None)
    history = load_checkpoint(tmp_path / "last.pt")["history"]
    assert [h["step"] for h in history] == [20, 40]
    # The untrained model is the identity, so the input's PSNR is where training starts.
    assert report["psnr_out"] > report["psnr_in"] + 0.5


def test_resume_continues_from_the_checkpoint(tmp_path):
    train(TrainConfig(**{**SHORT.__dict__, "steps": 20}), tmp_path, log=lambda *_: None)
    first = load_checkpoint(tmp_path / "last.pt")
    messages = []
    train(SHORT, tmp_path, resume=True, log=messages.append)
    second = load_checkpoint(tmp_path / "last.pt")
    assert "at step 20" in messages[0]
    assert second["step"] == 40 and second["history"][0] == first["history"][0]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        train(SHORT, tmp_path, resume=True)


def test_stream_is_deterministic_and_normalised():
    a = next(iter(TrainingPairs(64, first_seed=5)))
    b = next(iter(TrainingPairs(64, first_seed=5)))
    torch.testing.assert_close(a[0], b[0])
    assert a[0].shape == (1, 64, 64) and abs(float(a[0].std()) - 1) < 1e-3


def test_user_pairs_are_cropped_and_used(tmp_path):
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    pair = make_pair(4, 96)
    np.save(tmp_path / "noisy" / "s1.npy", pair.noisy)
    np.save(tmp_path / "clean" / "s1.npy", pair.clean)
    stream = iter(TrainingPairs(64, first_seed=0, user=UserPairs(tmp_path), user_fraction=1.0))
    x, y, kind = next(stream)
    assert kind == CLEAN_TARGET
    assert x.shape == (1, 64, 64) and y.shape == (1, 64, 64)
    # The target is a (possibly flipped) 64x64 window of the user's reference, up to a plane,
    # which second differences along the rows do not see.
    target = np.diff(y[0].numpy().astype(np.float64), 2, axis=1).ravel()
    best = max(
        np.corrcoef(target, np.diff(ref[r : r + 64, c : c + 64], 2, axis=1).ravel())[0, 1]
        for ref in (pair.clean, pair.clean[::-1], pair.clean[:, ::-1], pair.clean[::-1, ::-1])
        for r in range(33)
        for c in range(33)
    )
    assert best > 0.999


def test_user_pairs_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="noisy/"):
        UserPairs(tmp_path)
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    np.save(tmp_path / "noisy" / "a.npy", np.zeros((8, 8)))
    with pytest.raises(ValueError, match="no reference"):
        UserPairs(tmp_path)


def test_init_starts_from_given_weights(tmp_path):
    first = train(SHORT, tmp_path / "a", log=lambda *_: None)
    tiny_lr = TrainConfig(**{**SHORT.__dict__, "steps": 20, "lr": 1e-9, "init": str(tmp_path / "a" / "last.pt")})
    messages = []
    again = train(tiny_lr, tmp_path / "b", log=messages.append)
    assert "starting from the weights" in messages[0]
    # With no learning left, the fine-tuned model is the model it started from: every learnt tensor as it was (the
    # batch-norm statistics, buffers, still move with the batches), and it denoises as the first one did.
    start = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    end = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    learnt = [name for name in start if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert learnt and all(torch.allclose(start[name], end[name], atol=1e-6) for name in learnt)
    assert again["psnr_out"] == pytest.approx(first["psnr_out"], abs=0.5)
    assert again["psnr_out"] > again["psnr_in"] + 0.5


def test_init_across_configurations_takes_the_weights_that_fit(tmp_path):
    # The shipped rt1 weights start the wider rt: every tensor but the widened decoder stage and head.
    cfg = TrainConfig(model="rt", steps=2, steps_per_epoch=2, batch_size=2, patch=64, validation_scans=2, workers=0, init="rt-equal")
    messages = []
    train(cfg, tmp_path, log=messages.append)
    taken, total = (int(v) for v in messages[0].split(": ")[-1].split(" tensors")[0].split(" of "))
    assert 0.8 * total < taken < total


def test_gradient_term_weighs_fine_structure():
    from maed.training.loss import gradient_l1, plane_free_l1

    target = torch.zeros(1, 1, 32, 32)
    checker = torch.from_numpy(np.indices((32, 32)).sum(0) % 2 * 1.0).float()[None, None]
    # A pixel-scale error costs far more in gradients than a smooth error of the same L1.
    smooth = torch.linspace(0, 1, 32).repeat(32, 1)[None, None]
    smooth = smooth * checker.abs().mean() / smooth.abs().mean()
    assert gradient_l1(checker, target) > 10 * gradient_l1(smooth, target)
    assert plane_free_l1(checker, target) > 0


def test_spectral_peak_term_penalises_a_softened_lattice_not_a_kept_one():
    from maed.training.loss import spectral_peak_loss

    r, c = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    lattice = (torch.cos(2 * torch.pi * c / 4) + 0.3 * torch.cos(2 * torch.pi * r / 6))[None, None]
    softened = 0.5 * lattice
    noisy = lattice + 0.1 * torch.randn_like(lattice, generator=torch.Generator().manual_seed(0))
    assert spectral_peak_loss(lattice, lattice) == 0
    # Halving the atoms' amplitude costs log(4) per peak bin; leaving a little noise costs far less.
    assert spectral_peak_loss(softened, lattice) > 5 * spectral_peak_loss(noisy, lattice)


def test_the_levelling_trained_with_is_recorded_and_followed(tmp_path):
    """Weights trained on plane-levelled inputs say so, in the checkpoint, the shipped card, the ONNX file and
    every back end, and ``maed denoise`` then leaves the line offsets to the network."""
    import onnx

    from maed.denoise import denoise_array
    from maed.engine.onnx_backend import OnnxBackend
    from maed.engine.torch_backend import TorchBackend
    from maed.export import export_onnx
    from maed.model.checkpoint import model_card, ship_weights
    from maed.normalise import normalise

    train(TrainConfig(**{**SHORT.__dict__, "steps": 2, "steps_per_epoch": 2, "levelling": "plane"}), tmp_path, log=lambda *_: None)
    assert load_checkpoint(tmp_path / "last.pt")["levelling"] == "plane"
    ship_weights(tmp_path / "last.pt", tmp_path / "shipped.pt", {"note": "test"})
    assert model_card(str(tmp_path / "shipped.pt"))["levelling"] == "plane"
    export_onnx(str(tmp_path / "shipped.pt"), tmp_path / "shipped.onnx")
    meta = {p.key: p.value for p in onnx.load(tmp_path / "shipped.onnx").metadata_props}
    assert meta["maed.levelling"] == "plane" and "line offsets stay in" in meta["maed.normalisation"]
    assert OnnxBackend(tmp_path / "shipped.onnx", threads=1).levelling == "plane"

    class Identity(TorchBackend):
        def denoise(self, batch):
            return batch

    identity = Identity(str(tmp_path / "shipped.pt"), device="cpu")
    assert identity.levelling == "plane"
    rng = np.random.default_rng(0)
    # Line offsets that do not dominate the scan (where they do, plane levelling aligns the rows itself).
    scan = rng.normal(0, 1e-11, (64, 64)) + np.cumsum(rng.normal(0, 0.5e-12, 64))[:, None]
    assert not normalise(scan, "plane")[1].rows_aligned
    kept = denoise_array(scan, identity)  # an identity network on plane-levelled input gives the scan back
    np.testing.assert_allclose(kept, scan, atol=1e-3 * np.ptp(scan), rtol=0)


def test_an_unknown_levelling_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown levelling"):
        train(TrainConfig(**{**SHORT.__dict__, "levelling": "rows"}), tmp_path)


def test_quiet_ranges_scale_every_artefact_but_the_line_offsets():
    """A quiet scan's artefacts are scaled down by one factor; its line offsets stay as drawn."""
    from maed.training.noise_mix import MIX_RANGES, QUIET_FIELDS, QUIET_SCALE, quiet_ranges

    quiet = quiet_ranges(np.random.default_rng(4), MIX_RANGES)
    factors = {quiet.white_m[1] / MIX_RANGES.white_m[1]}
    factors |= {getattr(quiet, name)[1] / getattr(MIX_RANGES, name)[1] for name in QUIET_FIELDS if getattr(MIX_RANGES, name)[1]}
    assert len({round(f, 12) for f in factors}) == 1
    assert QUIET_SCALE[0] <= factors.pop() <= QUIET_SCALE[1]
    assert quiet.line_walk_m == MIX_RANGES.line_walk_m and quiet.line_jitter_m == MIX_RANGES.line_jitter_m
    # The training stream draws from them: the same seed's quiet scan has far less white noise than its loud one.
    seed = 11
    loud = TrainingPairs(64, first_seed=seed).sample(seed)
    hushed = TrainingPairs(64, first_seed=seed, quiet_fraction=1.0).sample(seed)
    np.testing.assert_array_equal(hushed[1], loud[1])
    pixel_noise = lambda noisy, clean: float(np.std(np.diff(noisy - clean, axis=1)))  # noqa: E731
    assert pixel_noise(*hushed[:2]) < QUIET_SCALE[1] * pixel_noise(*loud[:2])


def test_relative_loss_weighs_each_scan_by_its_noise():
    """Two scans with the same relative error weigh the same under the relative loss, not under the plain one."""
    from maed.training.loss import NOISE_FLOOR, noise_weights, plane_free_l1

    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.normal(size=(2, 1, 32, 32)).astype(np.float32))
    noise = torch.from_numpy(rng.normal(size=(2, 1, 32, 32)).astype(np.float32))
    noise[1] *= 0.05  # the second scan is twenty times quieter
    noisy = target + noise
    output = target + 0.5 * noise  # half of each scan's noise left
    weights = noise_weights(noisy, target)
    assert weights[1] / weights[0] == pytest.approx(20.0, rel=0.05)
    per_scan = [float(plane_free_l1(output[i : i + 1], target[i : i + 1], weights[i : i + 1])) for i in range(2)]
    assert per_scan[1] == pytest.approx(per_scan[0], rel=0.05)
    plain = [float(plane_free_l1(output[i : i + 1], target[i : i + 1])) for i in range(2)]
    assert plain[1] < 0.1 * plain[0]
    # A scan that differs from its target by a plane only has no noise to divide by: the floor caps its weight.
    tilt = torch.linspace(0, 1, 32).expand(1, 1, 32, 32)
    assert float(noise_weights(target[:1] + tilt, target[:1])) == pytest.approx(1 / NOISE_FLOOR)


QUICK = ["--steps", "2", "--epoch-steps", "2", "--batch-size", "2", "--workers", "0"]


def test_a_run_in_its_folder_is_never_replaced_without_force(tmp_path, capsys):
    """A second ``maed train`` into a folder that holds a run overwrote its checkpoint, silently."""
    from maed.cli import main

    out = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    first = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", *QUICK, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run already" in err[0] and "--resume" in err[0] and "--force" in err[0]
    assert (out / "last.pt").read_bytes() == first
    assert main(["train", *QUICK, "--seed", "3", "--out", str(out), "--force"]) == 0
    assert load_checkpoint(out / "last.pt")["train_config"]["seed"] == 3


def test_resume_takes_the_run_s_settings_and_refuses_to_change_them(tmp_path, capsys):
    """``--resume`` with another patch, levelling or model changed the run under its history (or printed a page of
    state-dict keys); without them it continues with the run's own settings, further where --steps says."""
    from maed.cli import main

    out = tmp_path / "run"
    assert main(["train", *QUICK, "--patch", "48", "--levelling", "plane", "--out", str(out)]) == 0
    capsys.readouterr()
    for change, named in (
        (["--patch", "64"], "--patch 64"),
        (["--levelling", "plane+rows"], "--levelling plane+rows"),
        (["--model", "dncnn"], "dncnn"),
    ):
        assert main(["train", "--resume", "--steps", "4", *change, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0], err
    assert main(["train", "--resume", "--steps", "4", "--out", str(out)]) == 0
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 4 and state["train_config"]["patch"] == 48 and state["levelling"] == "plane"
    # Its export says how it was trained (it said "unrecorded") and names the run by its folder (it said "last").
    assert main(["export", "onnx", "--model", str(out / "last.pt")]) == 0
    exported = OnnxBackend(out / "last.onnx", threads=1)
    training = json.loads(exported.metadata["maed.training_data"])
    assert exported.model == "run" and training["train_config"]["patch"] == 48 and training["validation"]["step"] == 4


def test_settings_no_run_can_use_are_one_line_before_training(tmp_path, capsys):
    from maed.cli import main

    bad = [
        (["--epoch-steps", "0"], "--epoch-steps must be at least 1"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--patch", "40"], "multiple of 16"),
        (["--real-fraction", "2"], "between 0 and 1"),
        (["--grad-weight", "nan"], "--grad-weight"),
        (["--real-refs", str(tmp_path)], "--real-fraction or --pair-fraction"),
        (["--init", str(tmp_path / "x.onnx")], "not an export"),
        (["--out", str(tmp_path / "a_file" / "run")], "cannot be written"),
        (["--patch", "100000"], "at most 1024"),
        (["--seed", "-1"], "--seed must be 0 or more"),
        (["--real-fraction", "0.5"], "--real-fraction needs --real-refs"),
        (["--pair-fraction", "0.5"], "--pair-fraction needs --real-refs"),
        (["--ship-as", "../../evil"], "not a path"),
        (["--ship-as", "dncnn"], "a dncnn network"),  # another architecture's shipped weights
        (["--ship-as", "maed"], "add --force"),  # the product's, by its alias
        (["--init", str(tmp_path)], "a folder, not a model checkpoint"),
    ]
    (tmp_path / "a_file").write_text("not a folder")
    for options, said in bad:
        assert main(["train", *QUICK, "--out", str(tmp_path / "out"), *options]) == 2, options
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], (options, err)
    assert not (tmp_path / "out").exists()  # nor an empty folder (the patch is refused once the folder was made)


def test_init_takes_the_levelling_its_weights_were_trained_with_and_says_what_of_their_recipe_it_leaves(capsys):
    from maed.cli import _train_settings, build_parser
    from maed.model.checkpoint import load_model, model_card

    def settings(*options):
        return _train_settings(build_parser().parse_args(["train", *options]))[1]

    assert settings("--init", "rt-plane").levelling == "plane"  # the shipped product levels the plane alone
    assert model_card("rt-plane") == load_model("rt-plane")[1]  # the card read alone, as --init reads it
    theirs = model_card("rt-plane")["train_config"]
    note = capsys.readouterr().err
    assert f"--lr {TrainConfig.lr} (theirs: {theirs['lr']})" in note and "--noise-mix False (theirs: True)" in note
    assert settings("--init", "rt-plane", "--levelling", "plane+rows").levelling == "plane+rows"
    settings("--init", "rt-plane", "--noise-mix", "--lr", str(theirs["lr"]))
    assert "--lr" not in capsys.readouterr().err.split("recipe:")[-1]  # given: not a recipe left
    assert settings().levelling == TrainConfig.levelling


def test_user_pairs_are_checked_when_read_each_file_named(tmp_path):
    """A NaN in a pair made the loss NaN and stopped the run at its first validation, naming no file; a pair smaller
    than the patch failed in a data worker when first drawn, hours in."""
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    scan = np.random.default_rng(0).normal(size=(80, 80))
    np.save(tmp_path / "clean" / "a.npy", scan)
    partial = scan.copy()
    partial[70:] = np.nan  # a scan stopped early
    np.save(tmp_path / "noisy" / "a.npy", partial)
    with pytest.raises(ValueError, match=r"noisy/a\.npy: holds NaN"):
        UserPairs(tmp_path)
    np.save(tmp_path / "noisy" / "a.npy", scan)
    assert len(UserPairs(tmp_path, 64).pairs) == 1
    with pytest.raises(ValueError, match=r"a\.npy: 80x80 pixels, smaller than the 96-pixel patch"):
        UserPairs(tmp_path, 96)
    np.save(tmp_path / "noisy" / "a.npy", np.array([{"not": "numbers"}], dtype=object))
    with pytest.raises(ValueError, match=r"noisy/a\.npy: not a numeric \.npy array \(it holds Python objects\)"):
        UserPairs(tmp_path)
    np.save(tmp_path / "noisy" / "a.npy", np.zeros((80, 80)))  # its loss was NaN from the first step, exit 0
    with pytest.raises(ValueError, match=r"noisy/a\.npy: flat"):
        UserPairs(tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        UserPairs(tmp_path / "missing")


def test_ctrl_c_says_which_step_was_saved_and_how_to_go_on(tmp_path, monkeypatch):
    """Ctrl-C said only "stopped", whatever the steps since the last checkpoint."""
    from maed.training import trainer

    reports = []
    real = trainer._validation_report

    def second_is_interrupted(*args):
        if reports:
            raise KeyboardInterrupt
        reports.append(real(*args))
        return reports[-1]

    monkeypatch.setattr(trainer, "_validation_report", second_is_interrupted)
    messages = []
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**{**SHORT.__dict__, "steps": 4, "steps_per_epoch": 2}), tmp_path, log=messages.append)
    saved = tmp_path / "last.pt"
    assert (
        messages[-1]
        == f"maed: stopped at step 4 of 4; the last checkpoint, of step 2, is {saved}; --resume with the same --out continues from it"
    )
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_a_run_that_diverges_says_so_and_what_to_change(tmp_path, capsys):
    """A learning rate far too high ended in "estimate and reference must contain only finite values"."""
    from maed.cli import main

    assert main(["train", *QUICK, "--patch", "64", "--lr", "1e9", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "training diverged at step 2" in err and "lower --lr (it is 1e+09)" in err
