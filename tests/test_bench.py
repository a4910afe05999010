"""``maed bench``'s results page, from a pytest-benchmark report; the suites stay out of ``make test``."""

import tomllib
from pathlib import Path

from maed.research.bench import _skipped, machine, render
from maed.zoo import PRODUCT

ROOT = Path(__file__).resolve().parents[1]


def _bench(case, backend, ms, model=PRODUCT, **extra):
    return {
        "name": f"test_{case}",
        "extra_info": {"case": case, "backend": backend, "model": model, "weights": "shipped", **extra},
        "stats": {"data": [t / 1e3 for t in ms]},
    }


REPORT = {
    "benchmarks": [
        _bench("frame 256x256", "onnxruntime-cpu", [30, 31, 32, 33, 50]),
        _bench("frame 256x256", "torch-cpu", [60, 62, 64, 66, 90]),
        _bench("band 80x256", "onnxruntime-cpu", [8, 9, 10]),
        _bench("band 80x256", "torch-cpu", [7, 7, 7]),
        _bench("update 32 rows x 256", "onnxruntime-cpu", [12, 12, 12]),
        _bench("frame 128x128", "onnxruntime-cpu", [20, 20], model="paper"),
        _bench(
            "line to denoised frame at 200 lines/s",
            "onnxruntime-cpu",
            [2600],
            rows=256,
            cols=256,
            p50_ms=25.0,
            p95_ms=40.0,
            max_ms=55.0,
            updates=120,
        ),
        _bench(
            "ingest of 256-sample lines",
            "onnxruntime-cpu",
            [1.2],
            lines=12288,
            lines_received=12288,
            lines_lost=0,
            lines_per_s=15000,
            push_lines_per_s=16000,
        ),
        {"name": "test_kernel[SEFusion]", "extra_info": {"gbps": 900}, "stats": {"data": [1e-4, 1e-4]}},
    ]
}


def test_the_results_page_has_percentiles_ratios_and_verdicts():
    page = render(REPORT, {"CPU": "Test CPU", "cores": "2"}, ["TensorRT is not installed: x (12 benchmarks)"], "maed bench")
    assert "- CPU: Test CPU" in page
    assert "| frame 256x256 | 32.0 / 46.6 | 64.0 / 85.2 | 2.00 |" in page  # p50 / p95 and torch over ORT
    assert f"{PRODUCT} frame 256x256 on onnxruntime-cpu: p50 32.0 ms, target <= 40 ms: met" in page
    assert f"{PRODUCT} update 32 rows x 256 on onnxruntime-cpu: p50 12.0 ms, target <= 10 ms: MISSED" in page
    assert f"at least as fast as torch on the CPU: MISSED in {PRODUCT} band 80x256" in page
    assert "### paper (shipped weights)" in page
    assert "| at 200 lines/s, 256x256 scan, onnxruntime-cpu | 256 | 25.0 | 40.0 | 55.0 | 120 |" in page
    assert "15,000 lines/s" in page and "ingest >= 10,000 lines/s with none lost: 15,000 lines/s, 0 lost: met" in page
    assert "- TensorRT is not installed: x (12 benchmarks)" in page
    assert "| test_kernel[SEFusion] | 0.100 | 0.100 | 2 |" in page  # another suite's, by name


def test_skip_reasons_are_summed():
    output = (
        "SKIPPED [2] benchmarks/test_inference.py:50: TensorRT is not installed: x\n"
        "SKIPPED [3] benchmarks/test_inference.py:62: TensorRT is not installed: x\n"
        "SKIPPED [1] benchmarks/test_inference.py:62: torch sees no CUDA GPU\n"
    )
    assert _skipped(output) == ["TensorRT is not installed: x (5 benchmarks)", "torch sees no CUDA GPU (1 benchmark)"]


def test_the_machine_is_described():
    info = machine()
    assert info["CPU"] and "usable" in info["cores"] and "onnxruntime" in info["versions"]


def test_benchmarks_are_not_part_of_the_test_suite():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["testpaths"] == ["tests"]
    assert (ROOT / "benchmarks" / "test_inference.py").is_file()
