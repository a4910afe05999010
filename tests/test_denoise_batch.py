"""``maed denoise -r``: an archive of ~100 mixed files (good and bad) through real worker processes.

Every good file is denoised into the mirror tree (``scan.sxm`` and ``scan.dat`` side by side keep
apart), each bad one costs exactly one line, a summary ends the run, the exit code is 1, nothing is
left half-written, inputs are untouched, and a second run skips what is done (a changed input or a
lost record is redone; another model redoes everything).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scanfile_helpers import MATRIX_IMAGE, REAL_DIR, matrix_pair, needs_real, stored_plane, write_createc, write_sxm

from maed.cli import main

GOOD_NPY = 84


def _summary(out: str) -> dict[str, str]:
    return {m[1].strip(): m[2] for m in re.finditer(r"^(.+?)\s{2,}(\S+)$", out, re.M)}


def _archive(root: Path) -> tuple[list[Path], list[Path]]:
    """A tree of good and bad scan files (and a file that is no scan); returns (good, bad)."""
    rng = np.random.default_rng(0)
    good, bad = [], []
    for i in range(GOOD_NPY):
        path = root / f"y{i % 3}" / f"m{i % 4}" / f"scan{i}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, 1e-10 * rng.standard_normal((32, 32)))
        good.append(path)
    twins = root / "twins"
    twins.mkdir()
    write_sxm(twins / "scan.sxm", rows=16, cols=16)
    write_createc(twins / "scan.dat", [stored_plane(0, 16, 16) + 1000, stored_plane(1, 16, 16)])
    np.save(twins / "scan.npy", rng.standard_normal((32, 32)))
    Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(twins / "scan.png")
    good += [twins / n for n in ("scan.sxm", "scan.dat", "scan.npy", "scan.png")]
    bad_dir = root / "bad"
    bad_dir.mkdir()
    (bad_dir / "empty.npy").write_bytes(b"")
    (bad_dir / "text.sxm").write_text("not a scan")  # wrong magic
    np.save(bad_dir / "cut.npy", np.zeros((32, 32)))
    (bad_dir / "cut.npy").write_bytes((bad_dir / "cut.npy").read_bytes()[:300])  # truncated
    write_sxm(bad_dir / "cut.sxm", rows=16, cols=16)
    (bad_dir / "cut.sxm").write_bytes((bad_dir / "cut.sxm").read_bytes()[:-100])
    nan = rng.standard_normal((32, 32))
    nan[3, 4] = np.nan
    np.save(bad_dir / "nan.npy", nan)
    np.save(bad_dir / "inf.npy", np.full((32, 32), np.inf))
    np.save(bad_dir / "cube.npy", np.zeros((4, 32, 32)))
    (bad_dir / "noise.dat").write_bytes(bytes(range(256)) * 4)
    bad += sorted(bad_dir.iterdir())
    (root / "notes.txt").write_text("not a scan, not taken")
    return good, bad


def _outputs(root: Path, out: Path, path: Path) -> list[Path]:
    stem = out / path.relative_to(root)
    return [Path(f"{stem}{s}") for s in (".npy", ".json")] + ([Path(f"{stem}.gwy")] if path.suffix in (".sxm", ".dat") else [])


def _hashes(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_an_archive_is_denoised_with_one_line_per_bad_file_and_resumed(tmp_path, capsys):
    root, out = tmp_path / "archive", tmp_path / "out"
    good, bad = _archive(root)
    before = _hashes(root)
    args = ["denoise", "-r", str(root), "-o", str(out), "--backend", "onnx", "--jobs", "2"]

    assert main(args) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("maed: error:")]
    assert len(errors) == len(bad)
    for path in bad:
        assert sum(str(path) in line for line in errors) == 1
    for path in good:
        for output in _outputs(root, out, path):
            assert output.is_file(), output
        assert json.loads(Path(f"{out / path.relative_to(root)}.json").read_text())["input"] == str(path.resolve())
    assert np.load(out / "twins" / "scan.sxm.npy").shape == (16, 16)  # the twins did not overwrite each other
    assert (
        json.loads((out / "twins" / "scan.dat.json").read_text())["batch_key"]["input_sha256"]
        == hashlib.sha256((root / "twins" / "scan.dat").read_bytes()).hexdigest()
    )
    for path in bad:
        assert not any(o.exists() for o in _outputs(root, out, path))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left
    table = _summary(captured.out)
    assert table["files found"] == str(len(good) + len(bad))
    assert (table["denoised now"], table["already done (skipped)"], table["failed"]) == (str(len(good)), "0", str(len(bad)))
    assert table["frames published"] == str(len(good))
    assert _hashes(root) == before  # raw data untouched

    # Second run: done is done; a changed input and one whose record was lost are redone.
    stamp = (out / "y0" / "m0" / "scan0.npy.npy").stat().st_mtime_ns
    np.save(good[1], np.ones((32, 32)) + np.eye(32))
    Path(f"{out / good[2].relative_to(root)}.json").unlink()
    assert main(args) == 1
    table = _summary(capsys.readouterr().out)
    assert (table["denoised now"], table["already done (skipped)"], table["failed"]) == ("2", str(len(good) - 2), str(len(bad)))
    assert (out / "y0" / "m0" / "scan0.npy.npy").stat().st_mtime_ns == stamp


def test_another_model_redoes_what_is_done(tmp_path, capsys):
    root, out = tmp_path / "archive", tmp_path / "out"
    root.mkdir()
    np.save(root / "a.npy", np.random.default_rng(1).standard_normal((32, 32)))
    args = ["denoise", "-r", str(root), "-o", str(out), "--backend", "onnx", "--jobs", "1"]
    assert main(args) == 0
    assert main(args) == 0
    assert _summary(capsys.readouterr().out)["already done (skipped)"] == "1"
    assert main(args + ["--model", "rt"]) == 0
    assert _summary(capsys.readouterr().out)["denoised now"] == "1"
    assert json.loads((out / "a.npy.json").read_text())["model"] == "rt"


def test_output_folders_among_the_inputs(tmp_path, capsys):
    root = tmp_path / "archive"
    root.mkdir()
    np.save(root / "a.npy", np.random.default_rng(2).standard_normal((32, 32)))
    # Inside the input folder: left out of the walk, so a rerun never denoises its own outputs.
    args = ["denoise", "-r", str(root), "-o", str(root / "out"), "--backend", "onnx", "--jobs", "1"]
    assert main(args) == 0 and main(args) == 0
    assert _summary(capsys.readouterr().out)["files found"] == "1"
    # Holding the input folder, or two input folders of one name: refused before anything is written.
    assert main(["denoise", "-r", str(root), "-o", str(tmp_path), "--backend", "onnx"]) == 2
    assert "choose an output folder outside the inputs" in capsys.readouterr().err
    (tmp_path / "b" / "archive").mkdir(parents=True)
    assert main(["denoise", "-r", str(root), str(tmp_path / "b" / "archive"), "-o", str(tmp_path / "o2")]) == 2
    assert "two input folders are named 'archive'" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    # A folder without -r is a user mistake too, in one line.
    assert main(["denoise", str(root), "-o", str(tmp_path / "o3")]) == 2
    assert "is a folder; give -r" in capsys.readouterr().err
    # An earlier run's outputs inside the archive, walked again into another folder: not scans to denoise.
    assert main([*args[:4], str(tmp_path / "again"), *args[5:]]) == 0
    assert _summary(capsys.readouterr().out)["files found"] == "1"
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["a.npy.json", "a.npy.npy"]
    # The same folder named twice is one input.
    assert main(["denoise", "-r", str(root), str(root), "-o", str(tmp_path / "again"), "--backend", "onnx", "--jobs", "1"]) == 0
    assert _summary(capsys.readouterr().out)["files found"] == "1"


def _denoise_archive(tmp_path: Path, capsys, scans: dict[str, np.ndarray]):
    """``maed denoise -r`` over a folder of the ``.npy`` scans ``scans`` (name: array) into ``tmp_path / "out"``;
    what it printed."""
    (tmp_path / "in").mkdir()
    for name, scan in scans.items():
        np.save(tmp_path / "in" / name, scan)
    args = ["denoise", "-r", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--backend", "onnx", "--jobs", "1", "--threads", "1"]
    assert main(args) == 0
    return capsys.readouterr()


def test_an_archive_names_the_stripes_the_network_removed_from_one_pass(tmp_path, capsys):
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:128, 0:128].astype(float)
    stripes = 1e-10 * (np.cos(2 * np.pi * (x / 5.3 + y / 40)) + 0.5 * rng.standard_normal((128, 128)))
    captured = _denoise_archive(tmp_path, capsys, {"stripes.npy": stripes, "plain.npy": 0.5e-10 * rng.standard_normal((128, 128))})
    assert _summary(captured.out)["stripes removed, pick-up or 1-D lattice"] == "1"
    (line,) = [line for line in captured.err.splitlines() if "periodic stripes" in line]
    assert "stripes.npy: the network removed periodic stripes" in line
    (pattern,) = json.loads((tmp_path / "out" / "stripes.npy.json").read_text())["lattice"]["removed_unconfirmed"]
    assert pattern["period_px"] == pytest.approx(1 / np.hypot(1 / 5.3, 1 / 40), rel=0.01)
    assert pattern["angle_deg"] == pytest.approx(np.degrees(np.arctan2(1 / 5.3, 1 / 40)), abs=1.0)


@needs_real
def test_a_real_constant_height_scan_in_an_archive_says_its_channel(tmp_path, capsys):
    name = "Au_mica_2023_Y_A_diPAMY_195.sxm"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).symlink_to(REAL_DIR / name)  # read in place, never copied
    assert (
        main(["denoise", "-r", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--backend", "onnx", "--jobs", "1", "--threads", "1"])
        == 0
    )
    captured = capsys.readouterr()
    assert f"{name}: channel Current trace" in captured.err
    assert _summary(captured.out)["the current taken, Z holding no image"] == "1"


@pytest.mark.skipif(not (REAL_DIR / MATRIX_IMAGE).is_file(), reason=f"no MATRIX pair in {REAL_DIR}")
def test_a_matrix_image_is_redone_when_its_parameter_file_changes(tmp_path, capsys):
    root, out = tmp_path / "archive", tmp_path / "out"
    root.mkdir()
    matrix_pair(root)  # copies: the parameter file is changed below
    args = ["denoise", "-r", str(root), "-o", str(out), "--backend", "onnx", "--jobs", "1", "--threads", "1"]
    assert main(args) == 0
    assert _summary(capsys.readouterr().out)["denoised now"] == "1"  # the image; its .mtrx is no scan
    assert (out / f"{MATRIX_IMAGE}.gwy").is_file()
    assert main(args) == 0 and _summary(capsys.readouterr().out)["already done (skipped)"] == "1"
    matrix_pair(root, Lines=200)
    assert main(args) == 0 and _summary(capsys.readouterr().out)["denoised now"] == "1"
    assert np.load(out / f"{MATRIX_IMAGE}.npy").shape == (200, 400)


def test_an_archive_counts_the_scans_whose_tip_change_was_taken_off(tmp_path, capsys):
    """A lattice whose tip changed at row 150 (its rows are not aligned before the network, which keeps the jump):
    ``maed.line_jumps`` takes it off, the terminal names the rows, the summary counts the file."""
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:256, 0:256].astype(float)
    k = 2 * np.pi / 8
    lattice = sum(np.cos(k * (x * np.cos(a) + y * np.sin(a))) for a in (0.3, 0.3 + 2 * np.pi / 3, 0.3 + 4 * np.pi / 3)) / 3
    scan = lattice + rng.normal(0, 0.1, lattice.shape)
    scan[150, 100:] += 0.6
    scan[151:] += 0.6
    plain = lattice + rng.normal(0, 0.1, lattice.shape)
    captured = _denoise_archive(tmp_path, capsys, {"jump.npy": 1e-10 * scan, "plain.npy": 1e-10 * plain})
    assert _summary(captured.out)["with a tip change taken off (line jump)"] == "1"
    (line,) = [line for line in captured.err.splitlines() if "tip change" in line]
    assert "jump.npy: a jump of whole lines (a tip change) taken off: rows 150 to 255" in line
    assert json.loads((tmp_path / "out" / "plain.npy.json").read_text())["line_jumps"] == []


def test_a_folder_without_scans_is_said_and_a_named_channel_is_counted(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no scans here")
    assert main(["denoise", "-r", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--backend", "onnx"]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'empty'}: no scan files under it" in captured.err
    assert captured.out == "" and "worker processes" not in captured.err  # no summary counting the folder as a file
    (tmp_path / "scans").mkdir()
    write_sxm(tmp_path / "scans" / "s.sxm", channels=(("Z", "m", "both"), ("Current", "A", "both")), rows=24, cols=24)
    args = ["denoise", "-r", str(tmp_path / "scans"), "-o", str(tmp_path / "out2"), "--backend", "onnx", "--jobs", "1"]
    assert main([*args, "--channel", "Current"]) == 0
    table = _summary(capsys.readouterr().out)
    assert (table["the channel named (--channel)"], table["the current taken, Z holding no image"]) == ("1", "0")


def test_a_saved_scan_beside_a_folder_is_one_scan_not_a_second_tree(tmp_path):
    from maed.batch import collect
    from maed.bridge.store import save_scan

    root, out = tmp_path / "archive", tmp_path / "out"
    root.mkdir()
    np.save(root / "a.npy", np.zeros((32, 32)))
    scan = np.random.default_rng(3).standard_normal((32, 32))
    saved = save_scan(tmp_path / "scans", "archive", {"raw_trace": scan, "raw_retrace": scan}, {"start": {"channel": "Z"}})
    # One folder walked: its scans straight under OUTDIR, as when it is the only input; the saved scan named as itself
    # (no clash with the folder of the same name: it is no tree whose outputs would mix).
    tasks, refused = collect([root, saved], out)
    expected = {(root / "a.npy", out.resolve() / "a.npy"), (saved, out.resolve() / saved.name)}
    assert refused == [] and {(t.path, t.stem) for t in tasks} == expected
