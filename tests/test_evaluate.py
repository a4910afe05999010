"""``maed eval``: the Table 1 line-up, sizes and latency beside the scores, and the figures."""

import json

import pytest

from maed.model import build_model, count_parameters
from maed.model.checkpoint import save_checkpoint
from maed.research.compare import expand_models
from maed.research.evaluate import evaluate
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
    assert f"`maed eval --models {random_rt_checkpoint} {pmrid} --count 2 --size 64`" in text  # the options inside the command
    assert numbers["models"][pmrid_label]["parameters"] == count_parameters(build_model("pmrid"))
    assert numbers["models"][pmrid_label]["cpu_ms"] > 0
    assert set(numbers["results"]["test"]) >= {"noisy input", pmrid_label}
    for figure in ("fig5.png", "fig6.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no shipped weights for model 'unet'"):
        evaluate(tmp_path, ["unet"], count=1, size=64)
