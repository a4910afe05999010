"""The wheel built from the tree works on its own: every sub-package and the shipped weights are in it.

It is installed into a fresh virtual environment that borrows only the third-party packages of the
development one (a ``.pth`` line: the development tree's own editable ``maed`` is not reachable from it),
and ``maed denoise`` and ``maed serve --help`` run from its console script.
"""

import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this tree installed; its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(ROOT))
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("maed-*.whl"))
    venv = tmp / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", str(venv)).returncode == 0
    site = Path(_run(str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = _run(str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel))
    assert install.returncode == 0, install.stderr[-2000:]
    return venv / "bin"


def test_the_wheel_holds_every_package_and_is_what_runs(installed):
    probe = _run(str(installed / "python"), "-c",
                 "import maed, maed.model.baselines, maed.bridge.alerts, maed.scanfiles; print(maed.__file__)")
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
