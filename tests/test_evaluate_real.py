"""``maed eval --real``: the no-reference checks on images whose answer is known, and the report
written for a folder of scans (small Nanonis files written here, so it runs without the real scans)."""

import json

import numpy as np
from scanfile_helpers import write_sxm
from scipy import ndimage

from maed.cli import main
from maed.lattice import power_spectrum, significant_peaks
from maed.noreference import lattice_power, whiteness


def _lattice(size: int = 256) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return np.cos(2 * np.pi * (0.11 * x + 0.05 * y)) + np.cos(2 * np.pi * (-0.03 * x + 0.12 * y))


def test_white_residual_scores_near_zero_and_structure_high():
    noise = np.random.default_rng(0).standard_normal((256, 256))
    white = whiteness(noise)
    assert white["x"] < 0.01 and white["y"] < 0.01
    assert whiteness(ndimage.gaussian_filter(noise, 2))["mean"] > 0.2
    # Line offsets are removed on purpose: they do not count against the residual.
    offsets = noise + np.random.default_rng(1).standard_normal((256, 1)) * 5
    assert whiteness(offsets)["mean"] < 0.01


def test_lattice_peaks_kept_or_removed():
    lattice = _lattice()
    noisy = lattice + np.random.default_rng(2).standard_normal(lattice.shape)
    assert len(significant_peaks(power_spectrum(noisy))) == 4  # two lattice vectors, each with its mirror
    kept = lattice_power(noisy, lattice)
    assert kept["peaks"] == 4 and kept["kept"] > 0.9 and kept["in_residual"] < 0.05
    smoothed = lattice_power(noisy, ndimage.gaussian_filter(noisy, 4))
    assert smoothed["kept"] < 0.05 and smoothed["in_residual"] > 0.9


def test_pure_noise_has_no_peaks():
    rng = np.random.default_rng(3)
    assert sum(len(significant_peaks(power_spectrum(rng.standard_normal((128, 128))))) for _ in range(10)) <= 2


def test_eval_real_writes_table_numbers_and_figures(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    lattice = (_lattice(64) * 1e-11).astype(np.float32)
    rng = np.random.default_rng(4)
    planes = [lattice + rng.standard_normal(lattice.shape).astype(np.float32) * 3e-12 for _ in range(2)]
    write_sxm(scans / "lattice.sxm", channels=(("Z", "m", "both"),), rows=64, cols=64, planes=planes)
    flat = np.full((64, 64), 2e-11, np.float32)  # constant height: the current is the image
    write_sxm(scans / "constant_height.sxm", channels=(("Z", "m", "forward"), ("Current", "A", "forward")),
              rows=64, cols=64, planes=[flat, planes[0] * 10])
    (scans / "notes.txt").write_text("not a scan")
    out = tmp_path / "results"
    assert main(["eval", "--real", "--real-dir", str(scans), "--out", str(out), "--models", "rt"]) == 0

    report = json.loads((out / "real.json").read_text())
    assert [s["file"] for s in report["scans"]] == ["constant_height.sxm", "lattice.sxm"]
    assert [s["channel"] for s in report["scans"]] == ["Current", "Z"]
    result = report["scans"][1]["models"]["rt"]
    assert set(result) == {"backend", "whiteness", "peaks", "kept", "in_residual"}
    assert result["peaks"] >= 4 and 0 <= result["kept"] and 0 <= result["in_residual"]
    table = (out / "real.md").read_text()
    assert "| lattice.sxm | Z (m) | 64x64 |" in table and "PROVENANCE.md" in table and ".gitignore" in table
    assert sorted(p.name for p in out.glob("real_*.png")) == ["real_constant_height.png", "real_lattice.png"]


def test_eval_real_without_scans_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", "--real", "--real-dir", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"maed: error: {tmp_path / 'missing'}: no such folder of real scans"
    assert main(["eval", "--real", "--real-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no Nanonis, Createc or RHK scan files in it" in capsys.readouterr().err
