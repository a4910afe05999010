"""``maed eval --families``: columns drawn from their own family, intervals, and paired gains."""

import numpy as np
import pytest

from maed.data.columns import column_pairs
from maed.metrics import interval
from maed.research.evaluate_families import step_height_error, summarise


def test_each_column_draws_its_own_family_and_the_artefact_columns_theirs():
    for family in ("lattice", "kagome", "steps"):
        assert {p.surface["family"] for p in column_pairs(family, 4, 64)} == {family}
    assert all("double_tip" in p.surface for p in column_pairs("double_tip", 3, 64))
    hard = column_pairs("hard", 3, 64)
    assert all(p.surface["family"] != "kagome" for p in hard)  # held-out surfaces stay out of the noise column
    # Three seed blocks: a column of 6 scans holds 6 different surfaces, the same on every call.
    first, again = column_pairs("lattice", 6, 64), column_pairs("lattice", 6, 64)
    assert len({p.seed for p in first}) == 6 and [p.seed for p in first] == [p.seed for p in again]


def test_interval_covers_the_mean_and_narrows_with_more_scans():
    rng = np.random.default_rng(0)
    few, many = interval(rng.normal(3, 1, 10)), interval(rng.normal(3, 1, 1000))
    assert few[1] < few[0] < few[2] and many[1] < 3.0 < many[2]
    assert many[2] - many[1] < (few[2] - few[1]) / 5


def test_gain_is_paired_and_below_lists_the_metrics_a_model_loses():
    scores = {
        "classical: a": {"psnr": [20.0, 30.0, 25.0], "ssim": [0.5, 0.6, 0.7], "uqi": [0.3, 0.3, 0.3]},
        "classical: b": {"psnr": [10.0, 10.0, 10.0], "ssim": [0.1, 0.1, 0.1], "uqi": [0.1, 0.1, 0.1]},
        "model": {"psnr": [21.0, 31.0, 26.0], "ssim": [0.4, 0.5, 0.6], "uqi": [0.4, 0.4, 0.4]},
    }
    summary = summarise(scores, ["model"])
    assert summary["best_classical"] == "classical: a"
    gain = summary["methods"]["model"]["psnr_gain"]
    assert gain[0] == 1.0 and gain[1] == gain[2] == 1.0  # the same gain on every scan: no spread
    assert summary["methods"]["model"]["below_classical"] == ["ssim"]


def test_step_height_error_sees_heights_and_not_the_plane():
    pair = column_pairs("steps", 1, 128)[0]
    assert pair.surface["steps"] >= 1
    rows, cols = np.indices(pair.clean.shape)
    tilt = 1e-11 * rows - 2e-11 * cols + 3e-9  # levelling is not judged
    assert abs(step_height_error(pair.clean + tilt, pair.clean)) < 1e-6
    assert abs(step_height_error(0.9 * pair.clean + tilt, pair.clean) + 0.1) < 1e-6
    noise = np.random.default_rng(0).normal(0, 0.1 * pair.clean.std(), pair.clean.shape)
    assert abs(step_height_error(pair.clean + noise, pair.clean)) < 0.02
    # A single terrace has no step height to compare.
    assert np.isnan(step_height_error(np.zeros((64, 64)), np.zeros((64, 64))))


def test_eval_help_names_the_columns_default_count_and_size(capsys):
    # The CLI says the defaults without loading the simulator that holds them (a slower start for every command).
    from maed.cli import main
    from maed.data.columns import COLUMN_COUNT, COLUMN_SIZE

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert f"{COLUMN_COUNT} with --families or --passes" in said and f"{COLUMN_SIZE} with --families or --passes" in said
