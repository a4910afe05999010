"""``maed demo``: a simulated scan through the live bridge ends in a report with honest numbers."""

import re

import numpy as np

from maed.bridge.simulated import trace_and_retrace
from maed.demo import lattice_shown, run_demo, showcase_seed


def test_demo_streams_a_scan_and_writes_its_report(tmp_path, capsys):
    out = run_demo(tmp_path / "demo", frames=1, line_rate=800.0, size=128, ports=(0, 0, 0, 0))
    printed = capsys.readouterr().out
    assert re.search(r"live preview: http://127\.0\.0\.1:\d+/\?token=[\w-]{16,}\n", printed)
    report = (out / "report.md").read_text()
    for name in ("final.png", "latency.png"):
        assert (out / name).stat().st_size > 1000 and name in report
    raw_psnr, denoised_psnr = map(float, re.search(r"\| ([\d.-]+) dB \| ([\d.-]+) dB \|", report).groups())
    assert denoised_psnr > raw_psnr + 3.0
    # The simulated controller sends both passes: the scan's trace/retrace error, the model's below raw's.
    model, gaussian, raw_error = map(float, re.search(r"\| ([\d.]+) / ([\d.]+) / ([\d.]+) pm \|", report).groups())
    assert 0 < model < raw_error and gaussian > 0
    (scan_dir,) = (out / "scans").iterdir()
    raw = np.load(scan_dir / "raw_trace.npy")
    assert raw.shape == (128, 128) and np.isfinite(raw).all()  # every raw line kept
    # The showcase's lattice is in the final denoised frame's zoom, as in the clean surface's.
    pair, _, _ = trace_and_retrace(showcase_seed(128), 128)
    assert lattice_shown(np.load(scan_dir / "denoised.npy"), pair.clean, pair.surface["period_px"]) >= 0.7
