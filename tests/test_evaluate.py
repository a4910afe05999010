"""``maed eval``: the Table 1 line-up, sizes and latency beside the scores, and the figures."""

import json

import pytest

from maed.cli import main
from maed.model import build_model, count_parameters
from maed.model.checkpoint import save_checkpoint
from maed.research.compare import expand_models
from maed.research.evaluate import evaluate
from maed.research.pages import RESULTS, regenerate
from maed.zoo import PRODUCT, TABLE_MODELS


def test_all_is_the_table_line_up_then_the_product():
    assert expand_models(["all"]) == [*TABLE_MODELS, PRODUCT]
    assert expand_models(["rt", "all", "dncnn"]) == ["rt", *TABLE_MODELS, PRODUCT]


def test_eval_writes_scores_sizes_latency_and_figures(tmp_path, random_rt_checkpoint):
    pmrid = tmp_path / "pmrid.pt"
    save_checkpoint(pmrid, build_model("pmrid"), "pmrid")
    out = tmp_path / "results"
    evaluate(out, [str(random_rt_checkpoint), str(pmrid)], count=2, size=64)

    text = (out / "eval.md").read_text()
    numbers = json.loads((out / "eval.json").read_text())
    pmrid_label = f"PMRID ({pmrid})"
    assert pmrid_label in text and "Ranking by PSNR" in text and "not comparable" in text
    # The options inside the command, and the folder it wrote to: without it, run from the repository's root, the
    # command would write over the repository's own page.
    assert f"`maed eval --models {random_rt_checkpoint} {pmrid} --count 2 --size 64 --out {out}`" in text
    assert numbers["models"][pmrid_label]["parameters"] == count_parameters(build_model("pmrid"))
    assert numbers["models"][pmrid_label]["cpu_ms"] > 0
    assert set(numbers["results"]["test"]) >= {"noisy input", pmrid_label}
    for figure in ("fig5.png", "fig6.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no shipped weights for model 'unet'"):
        evaluate(tmp_path, ["unet"], count=1, size=64)


def test_the_repository_s_own_pages_name_no_folder_and_others_do():
    assert regenerate("maed eval --families", RESULTS, " --count 9") == "regenerate with `maed eval --families --count 9`"
    assert regenerate("maed eval", "/tmp/x") == "regenerate with `maed eval --out /tmp/x`"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--count", "0"], "--count must be at least 1, got 0"),
        (["--size", "8"], "--size must be at least 32 pixels, got 8"),
        (["--families", "--size", "0"], "--size must be at least 32 pixels, got 0"),
    ],
)
def test_eval_options_out_of_range_are_one_line_errors(tmp_path, capsys, options, said):
    assert main(["eval", *options, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"maed: error: {said}"
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_eval_into_a_file_is_a_one_line_error_before_any_model_loads(tmp_path, capsys):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    assert main(["eval", "--real", "--out", str(taken), "--models", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"maed: error: output folder {taken}: {taken} is a file, not a folder; give another --out"
    assert taken.read_text() == "mine"
