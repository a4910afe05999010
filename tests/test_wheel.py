"""The wheel built from the tree works on its own: every sub-package and the shipped weights are in it.

It is built from a copy of the files git would commit (a build folder left in the tree cannot leak old modules
into it), installed into a fresh virtual environment that borrows only the third-party packages of the
development one (a ``.pth`` line: the development tree's own editable ``maed`` is not reachable from it),
and ``maed denoise`` and ``maed serve --help`` run from its console script. The product-only wheel
(``MAED_WEIGHTS=product``, for a Jetson) leaves the baselines' weights out and says so when one is named.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, **kwargs)


def _install(tmp: Path, weights: str) -> tuple[Path, Path]:
    """The wheel of this tree built with ``MAED_WEIGHTS=weights`` and installed into a fresh venv: the wheel and
    the venv's ``bin`` folder."""
    files = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout.split("\0")
    source = tmp / "source"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp / "dist"),
        str(source),
        env={**os.environ, "MAED_WEIGHTS": weights},
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("maed-*.whl"))
    venv = tmp / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", str(venv)).returncode == 0
    site = Path(_run(str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = _run(str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel))
    assert install.returncode == 0, install.stderr[-2000:]
    return wheel, venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the full wheel of this tree installed; its ``bin`` folder."""
    return _install(tmp_path_factory.mktemp("wheel"), "all")[1]


@pytest.fixture(scope="module")
def product_only(tmp_path_factory) -> tuple[Path, Path]:
    """The product-only wheel and the ``bin`` folder of a fresh venv it is installed in."""
    return _install(tmp_path_factory.mktemp("product-wheel"), "product")


def _weights_in(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {Path(n).name for n in archive.namelist() if n.startswith("maed/weights/") and n.endswith((".pt", ".onnx"))}


def test_the_wheel_holds_every_package_and_is_what_runs(installed):
    probe = _run(
        str(installed / "python"),
        "-c",
        "import maed, maed.model.baselines, maed.bridge.alerts, maed.scanfiles\n"
        "from maed.model.checkpoint import shipped_weights\n"
        "assert all(shipped_weights(name).is_file() for name in ('dncnn', 'pdanet', 'rt-equal', 'rt'))\n"
        "print(maed.__file__)",
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert Path(probe.stdout.strip()).is_relative_to(installed.parent), probe.stdout  # not the source tree


def test_maed_denoise_and_serve_run_from_the_wheel(installed, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "scan.npy", 1e-10 * np.sin(np.arange(64)[None, :] / 3.0) + rng.normal(0, 2e-11, (64, 64)))
    denoise = _run(str(installed / "maed"), "denoise", str(tmp_path / "scan.npy"), "-o", str(tmp_path / "out"), "--backend", "onnx")
    assert denoise.returncode == 0, denoise.stderr[-2000:]
    out = np.load(tmp_path / "out" / "scan.npy")
    assert out.shape == (64, 64) and np.isfinite(out).all()
    serve = _run(str(installed / "maed"), "serve", "--help")
    assert serve.returncode == 0 and "--slow-axis" in serve.stdout


def test_the_product_only_wheel_denoises_and_names_what_it_left_out(product_only, tmp_path):
    wheel, bin_ = product_only
    assert _weights_in(wheel) == {"rt-plane.pt", "rt-plane.onnx", "rt.pt", "rt.onnx", "rt-both.pt", "rt-both.onnx"}
    assert wheel.stat().st_size < 15e6  # the full wheel: about 50 MB
    np.save(tmp_path / "scan.npy", np.random.default_rng(1).normal(0, 1e-11, (64, 64)))
    denoise = _run(str(bin_ / "maed"), "denoise", str(tmp_path / "scan.npy"), "-o", str(tmp_path / "out"))
    assert denoise.returncode == 0, denoise.stderr[-2000:]
    assert np.isfinite(np.load(tmp_path / "out" / "scan.npy")).all()
    baseline = _run(str(bin_ / "maed"), "denoise", str(tmp_path / "scan.npy"), "-o", str(tmp_path / "b"), "--model", "dncnn")
    assert baseline.returncode == 2 and "Traceback" not in baseline.stderr
    assert "product's weights alone" in baseline.stderr and "full wheel" in baseline.stderr
