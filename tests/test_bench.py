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
        {"name": "test_alerts_over_one_scan[trace]", "extra_info": {"lines": 256}, "stats": {"data": [0.1, 0.1]}},
        _bench(
            "update latency in frame height at 200 lines/s",
            "onnxruntime-cpu",
            [8000.0],
            cols=256,
            p95_ms_256_rows=40.0,
            p95_ms_1024_rows=24.0,
            ratio=0.6,
        ),
        *(
            _bench("kernel SEFusion 40->40 @512x512 float16", impl, [us * 20e-3], device="Test GPU", us_per_launch=us, gb_per_s=rate)
            for impl, us, rate in (("maed", 25.26, 2491.0), ("torch", 98.22, 427.1), ("copy", 10.9, 3848.9))
        ),
        {"name": "test_other[SEFusion]", "extra_info": {"gbps": 900}, "stats": {"data": [1e-4, 1e-4]}},
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
    assert "| SEFusion 40->40 @512x512 float16 | 25.3 / 2,491 | 98.2 / 427 | 10.9 / 3,849 | 3.89 |" in page
    assert "on Test GPU" in page
    assert "| test_other[SEFusion] | 0.100 | 0.100 | 2 | - | - |" in page  # a suite the page has no table for, by name
    assert "| test_alerts_over_one_scan[trace] | 100.000 | 100.000 | 2 | 256 | 0.391 |" in page  # a round of lines, and per line
    assert "| update latency in frame height" not in page  # the bridge's whole-frame figure is no call's latency


def test_a_page_without_the_targets_cases_says_so():
    page = render({"benchmarks": REPORT["benchmarks"][-4:]}, {"GPU": "Test GPU"}, [], "maed bench -k kernel")
    assert "- none of the targets' cases ran here" in page and "## Inference" in page


def test_the_cpu_page_points_to_the_gpu_page(tmp_path):
    gpu_page = tmp_path / "RESULTS-gpu.md"
    gpu_page.write_text(render(REPORT, {"GPU": "Test GPU (driver 1)"}, [], "maed bench -k kernel"))
    page = render(REPORT, {"GPU": "none"}, [], "maed bench", gpu_page)
    assert "on Test GPU (driver 1) on 20" in page and "[RESULTS-gpu.md](RESULTS-gpu.md)" in page
    assert "## On a GPU" not in render(REPORT, {"GPU": "none"}, [], "maed bench", tmp_path / "absent.md")


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


def test_the_suites_output_is_shown_line_by_line_and_kept_with_their_exit_status(capsys):
    import sys
    import threading
    import time

    from maed.research import bench

    # The child writes a line, then waits for the test to have seen it: shown only at the end, it would never be seen.
    seen = threading.Event()
    code = "import sys, time; print('first', flush=True); print('to stderr', file=sys.stderr, flush=True); time.sleep(3); sys.exit(3)"
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("done", bench._run_showing([sys.executable, "-c", code])))
    runner.start()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline and not seen.is_set():
        if "first" in capsys.readouterr().out:
            seen.set()
        time.sleep(0.05)
    runner.join(10)
    assert seen.is_set(), "the child's first line was not shown while it ran"
    done = result["done"]
    assert done.returncode == 3 and done.stdout == "first\nto stderr\n"
