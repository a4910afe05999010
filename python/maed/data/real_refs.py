"""Real STM scans as training references: the paper's recipe of real images with added scan noise.

The real scans in ``../shared/data/real-stm/`` come from several public sources (its
``PROVENANCE.md``). They are split by source, never by file, because two files of one source can
be one frame at two resolutions: ``TEST_SOURCES`` are never trained on and judge the model;
the clean scans of the other sources (``TRAINING_REFERENCES``) become references. Any other folder is a lab's
own archive, whose every scan file is a reference (``reference_names``): what it holds out is its own choice.

A reference is conservatively cleaned (best-fit plane and median-of-differences row alignment,
nothing that could remove structure); each training sample is a random crop of it at a random
zoom of 0.5 to 1 (so a lattice is seen at several periods in pixels), flipped at random, scaled to a
random height (so its structure ranges from far below to far above the added noise), and then passed
through the simulator's scan artefacts (``scan_noise``), with white noise of at least ``NOISE_MARGIN``
times the reference's own (``white_floor``): a clean real scan is not noise-free, and the target keeps
its noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy import ndimage

from ..classical import align_rows, fit_plane, robust_spread
from ..scanfiles import SUFFIXES, ScanFile, ScanFileError, read_file

REPO_ROOT = Path(__file__).resolve().parents[3]
REAL_DIR = Path("..") / "shared" / "data" / "real-stm"


MIN_ZOOM, MAX_ZOOM = 0.5, 1.0
"""Zoom of a reference crop. Not above 1: interpolation would turn the reference's own pixel noise into smooth blobs
of the zoom's size, which the target keeps and the network would learn to keep (before 2026-12-02 the zoom reached 2).
Below 1 the crop is averaged over the reference's pixels first, which lowers that noise too."""
NOISE_MARGIN = 3.0
"""A reference is a real scan with its own noise, which the target keeps: with less added noise than that, a network
learns to keep noise of a real instrument's kind (the references' own noise is 2 to 15 % of their rms by ``own_noise``,
twice that as line noise: in most crops more than the white noise the mixes drew before 2026-12-02). With the added
white noise at least this many times the reference's own (``white_floor``), the best estimate of the target takes
nine tenths of the reference's noise off too."""


def default_real_dir() -> Path:
    """``../shared/data/real-stm`` beside the repository, else beside the current directory."""
    for base in (REPO_ROOT, Path.cwd()):
        if (base / REAL_DIR).is_dir():
            return (base / REAL_DIR).resolve()
    raise ValueError(f"no folder of real scans at {REAL_DIR} from the repository or the current directory; pass --real-dir")


SOURCES: dict[str, str] = {
    "Au_mica_2023_Y_A_diPAMY_195.sxm": "FAIRmat-NFDI",
    "STM_nanonis_generic_4_5.sxm": "FAIRmat-NFDI",
    "createc_scan_atomic_11nm.dat": "SPMQT-Lab",
    "createc_scan_molecular_30nm_pos.dat": "SPMQT-Lab",
    "createc_scan_close_100nm.dat": "SPMQT-Lab",
    "createc_scan_step_20nm.dat": "SPMQT-Lab",
    "example_TOPO.sxm": "New-Horizons-SPM",
    "example_LineProfile2.sxm": "New-Horizons-SPM",
    "example_FFT.sxm": "New-Horizons-SPM",
    "hopg_300k_2020_08_11_16_04_06_999.sm4": "rescipy-project",
    "pySPM_test.sxm": "scholi/pySPM",
    "unnamed0001.sxm": "nanotech-empa",
    "img_0071.sxm": "nanotech-empa",
    "CO_img_0050.sxm": "nanotech-empa",
    "TR_img_0253.sxm": "nanotech-empa",
    "FeSe_topography.sxm": "hoffmanlab",
    "A200727.214101.dat": "py_createc",
    "A200518.231315.dat": "py_createc",
    "A200621.160730.dat": "py_createc",
    "A200621.161352.dat": "py_createc",
    "A200809.232915.dat": "py_createc",
    "A200705.042742.dat": "py_createc",
    "A200306.161609.dat": "py_createc",
    "A200619.213320.dat": "py_createc",
    "A200622.190818.dat": "py_createc",
    "20201111--4_1.Z_mtrx": "matkrin",
}
"""The source of every real scan (``PROVENANCE.md``)."""

TEST_SOURCES = ("FAIRmat-NFDI", "SPMQT-Lab", "New-Horizons-SPM", "rescipy-project")
"""Sources held out of training: the real-scan test set."""

NOISY = ("CO_img_0050.sxm", "FeSe_topography.sxm", "A200306.161609.dat")
"""Training-source scans too noisy to be references (tip changes, strong banding)."""

TRAINING_REFERENCES = tuple(
    name for name, source in SOURCES.items() if source not in TEST_SOURCES and name not in NOISY and not name.endswith("_mtrx")
)


PROJECT_FOLDER_MARK = "PROVENANCE.md"
"""The file that marks this project's folder of real scans, whose files are split by source."""


def is_project_folder(real_dir: Path) -> bool:
    """Whether ``real_dir`` is this project's folder of real scans (``PROJECT_FOLDER_MARK`` in it)."""
    return (Path(real_dir) / PROJECT_FOLDER_MARK).is_file()


def reference_names(real_dir: Path, project_names: tuple[str, ...] = TRAINING_REFERENCES) -> tuple[str, ...]:
    """The files of ``real_dir`` to take references from: in this project's folder (``is_project_folder``)
    ``project_names``, the training sources' by name, never a test source's nor a file ``SOURCES`` does not list (a
    scan added to the folder later may be held back to judge the model); in any other folder, a lab's own, every scan
    file in it (``scanfiles.SUFFIXES``)."""
    real_dir = Path(real_dir)
    if is_project_folder(real_dir):
        return project_names
    return tuple(sorted(p.name for p in real_dir.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES))


def held_out_files(real_dir: Path) -> list[Path]:
    """The real scans of the test sources present in ``real_dir``."""
    return [real_dir / n for n, s in SOURCES.items() if s in TEST_SOURCES and (real_dir / n).is_file()]


@dataclass(frozen=True, eq=False)
class Reference:
    """One levelled real image (metres) and its pixel size."""

    name: str
    image: np.ndarray
    pixel_m: float


def level(image: np.ndarray) -> np.ndarray:
    """Plane and median-of-differences row alignment: the conservative clean-up of a reference."""
    return align_rows(image - fit_plane(image), "median_diff")


def readable_scans(real_dir: Path, names: tuple[str, ...]) -> Iterator[tuple[str, ScanFile]]:
    """(name, scan) of each of ``names`` that is in ``real_dir`` and reads; the others are skipped."""
    for name in names:
        path = Path(real_dir) / name
        if not path.is_file():
            continue
        try:
            yield name, read_file(path)
        except ScanFileError:
            continue


MIN_REFERENCE_ROWS = 32
"""Fewest measured rows a pass must have to be a reference."""


def load_references(real_dir: Path) -> list[Reference]:
    """Both passes of the topograph of every reference in ``real_dir`` (``reference_names``; measured rows only)."""
    refs = []
    for name, scan in readable_scans(real_dir, reference_names(real_dir)):
        for pass_ in ("trace", "retrace"):
            try:
                channel = scan.channel(None, pass_)
            except ScanFileError:
                continue
            data = channel.data[channel.measured_rows]
            if data.shape[0] < MIN_REFERENCE_ROWS or not np.isfinite(data).all():
                continue
            refs.append(Reference(f"{name}:{pass_}", level(data), channel.width / data.shape[1]))
    return refs


def reference_crop(ref: Reference, size: int, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """A ``size`` x ``size`` crop at a random zoom (``MIN_ZOOM`` to ``MAX_ZOOM``, more only where the reference is
    smaller than the crop), flipped at random; its pixel size and its own noise (both metres).

    The own noise is read on the crop, or on the region it came from where that was interpolated up: the
    interpolation turns pixel noise into blobs of about the same rms, which the finest wavelet band no longer sees.
    """
    rows, cols = ref.image.shape
    fit = min(rows, cols) / size  # zoom below 1/fit would not fill the crop
    smallest = max(MIN_ZOOM, 1.02 / fit)
    zoom = float(np.exp(rng.uniform(np.log(smallest), np.log(max(smallest, MAX_ZOOM)))))
    span = int(np.ceil(size / zoom)) + 2
    r = int(rng.integers(0, rows - min(span, rows) + 1))
    c = int(rng.integers(0, cols - min(span, cols) + 1))
    region = ref.image[r : r + span, c : c + span]
    if zoom < 1:  # anti-alias before shrinking, as a coarser scan averages over its pixel
        region = ndimage.gaussian_filter(region, 0.5 / zoom - 0.5)
    out = ndimage.zoom(region, zoom, order=3, mode="reflect", grid_mode=True)[:size, :size]
    if out.shape != (size, size):  # a reference narrower than the crop at this zoom
        out = np.pad(out, [(0, size - out.shape[0]), (0, size - out.shape[1])], mode="reflect")
    if rng.random() < 0.5:
        out = out[::-1]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = level(np.ascontiguousarray(out))
    return out, ref.pixel_m / zoom, own_noise(region if zoom > 1 else out)


def own_noise(image: np.ndarray) -> float:
    """The robust rms of a reference's own pixel noise: 1.4826 MAD of the diagonal detail of 2 x 2 blocks (the
    Haar wavelet's finest diagonal band, which holds white noise's variance and little of a smooth surface)."""
    image = np.asarray(image, dtype=np.float64)
    rows, cols = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    diagonal = (image[:rows:2, :cols:2] - image[:rows:2, 1:cols:2] - image[1:rows:2, :cols:2] + image[1:rows:2, 1:cols:2]) / 2
    return float(robust_spread(diagonal))


def white_floor(own_noise_m: float) -> float:
    """The least white noise (metres rms) to add to a reference crop of own noise ``own_noise_m``: ``NOISE_MARGIN``
    times it."""
    return NOISE_MARGIN * own_noise_m


def scaled_to(image: np.ndarray, rng: np.random.Generator, rms_m: tuple[float, float] = (3e-12, 200e-12)) -> tuple[np.ndarray, float]:
    """``image`` rescaled to an rms drawn log-uniformly from ``rms_m`` (a random signal-to-noise ratio), and the
    factor it was scaled by."""
    gain = float(np.exp(rng.uniform(*np.log(rms_m)))) / max(float(image.std()), 1e-30)
    return image * gain, gain
