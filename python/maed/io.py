"""Reading scans from disk into 2-D float64 arrays in physical units, with one-line errors for bad files.

Instrument files (Nanonis ``.sxm``, Createc ``.dat``, RHK ``.sm4``, Omicron MATRIX, Gwyddion ``.gwy``) are recognised by their
content and read by ``maed.scanfiles``, one channel and pass (trace or retrace) at a time; their unmeasured
rows are NaN. Plain arrays are ``.npy`` (a 2-D array in instrument units), greyscale ``.png``
and ``.tif``/``.tiff``, recognised by their extension; their rows entirely NaN are rows never measured, as in a
scan the bridge saved after it was stopped. Every problem a user can cause raises
``ScanError`` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .scanfiles import (
    FORMAT_NAMES,
    ChannelImage,
    ScanFile,
    ScanFileError,
    canonical_pass,
    check_size,
    choose,
    is_flat,
    is_saved_scan,
    not_a_file,
    read_file,
    sniff,
)
from .scanfiles import (
    SUFFIXES as INSTRUMENT_SUFFIXES,
)
from .scanfiles.signal import flat_reason

MIN_SIZE = 8  # below this a scan has no structure to denoise
SUFFIXES = (".npy", ".png", ".tif", ".tiff")


class ScanError(ValueError):
    """A user's input file cannot be denoised; the message says why in one line."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Scan:
    """A scan to denoise: its 2-D float64 data and, for an instrument file, the image it came from."""

    data: np.ndarray
    source: ChannelImage | None = None
    other_pass: np.ndarray | None = None
    """The same channel's other pass (trace for a retrace and back), where the file has it."""
    channel_why: str | None = None
    """Why the default channel is not the topograph (a constant-height scan), None where it is."""


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".png":
        # Pillow's own bomb check would warn (or raise) with its own words; our budget decides, in ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only; the pixels are decoded below, if allowed
        with im:
            check_size(im.height, im.width, path)
            array = np.asarray(im)
    else:
        with tifffile.TiffFile(path) as tif:
            check_size(*tif.pages[0].shape[:2], path)
            array = tif.asarray()
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ScanError(f"{path}: colour image; a colour map cannot be turned back into heights, save the height channel as greyscale")
        array = rgb[..., 0]
    return array


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file's array: a 2-D one read once its header's shape is within the pixel budget; any other left
    unread, mapped, for the caller to refuse by its shape (a scan is 2-D) without reading a byte of it. A file without
    the ``.npy`` header, or one of Python objects (which only unpickling, able to run code, would read), is refused
    by name: NumPy's own message for either advises ``allow_pickle``."""
    with open(path, "rb") as stream:
        try:
            major, _ = np.lib.format.read_magic(stream)
            header = np.lib.format.read_array_header_2_0 if major >= 2 else np.lib.format.read_array_header_1_0
            shape, _, dtype = header(stream)
        except ValueError:
            raise ScanError(f"{path}: not a NumPy .npy array (no valid .npy header)") from None
        data_start = stream.tell()
    if dtype.hasobject:
        raise ScanError(f"{path}: holds Python objects, not numbers; refused (reading them would unpickle, which can run code)")
    expected = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    held = path.stat().st_size - data_start
    if held < expected:
        raise ScanError(
            f"{path}: truncated: its header announces a {' x '.join(map(str, shape))} {dtype} array, {expected} bytes; {held} follow"
        )
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    if mapped.ndim != 2:
        return mapped
    check_size(*mapped.shape, path)
    return np.array(mapped)


FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def check_scan(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as float64 if it is a usable 2-D scan, else a ``ScanError`` naming ``name``."""
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ScanError(f"{name}: data type {array.dtype} is not a real-valued height map")
    if array.size == 0:
        raise ScanError(f"{name}: empty array {array.shape}")
    if array.ndim != 2:
        raise ScanError(f"{name}: expected a 2-D scan, got {array.ndim}-D array of shape {array.shape}")
    if min(array.shape) < MIN_SIZE:
        raise ScanError(f"{name}: scan {array.shape} is smaller than {MIN_SIZE}x{MIN_SIZE} pixels")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ScanError(f"{name}: {int(bad.sum())} non-finite values (NaN or Inf)")
    largest = float(np.abs(array).max())
    if largest > FLOAT32_MAX:  # the outputs are float32: every pixel came back NaN
        raise ScanError(f"{name}: values up to {largest:.3g}, beyond float32's range ({FLOAT32_MAX:.3g}) that the outputs are written in")
    if 0 < largest < FLOAT32_TINY:  # and every pixel came back 0
        raise ScanError(
            f"{name}: values of at most {largest:.3g}, below float32's smallest normal number ({FLOAT32_TINY:.3g}) that the "
            "outputs are written in; scale the scan into a unit of its own"
        )
    return array


def check_partial_scan(array: np.ndarray, name: str) -> np.ndarray:
    """Like ``check_scan`` for an instrument image, whose rows not measured in full may hold NaN."""
    if np.isinf(array).any():
        raise ScanError(f"{name}: {int(np.isinf(array).sum())} infinite values")
    measured = np.isfinite(array).all(axis=1)
    if measured.sum() < MIN_SIZE:
        raise ScanError(f"{name}: only {int(measured.sum())} of {array.shape[0]} rows were measured; at least {MIN_SIZE} are needed")
    check_scan(array[measured], name)
    return array


def check_array_scan(array: np.ndarray, name: str) -> np.ndarray:
    """Like ``check_scan`` for a plain array, whose rows entirely NaN are rows never measured (a scan the bridge saved
    after it was stopped, or with lines lost: ``raw_trace.npy``); NaN or Inf in part of a row is refused."""
    array = np.asarray(array)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        return check_scan(array, name)
    finite = np.isfinite(array)
    partly = ~finite.all(axis=1) & ~np.isnan(array).all(axis=1)
    if partly.any():
        rows = np.flatnonzero(partly)
        listed = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
        raise ScanError(
            f"{name}: {int((~finite[partly]).sum())} non-finite values (NaN or Inf) in part of {rows.size} rows ({listed}); "
            "only whole rows may be NaN, for rows never measured"
        )
    return check_partial_scan(array, name) if not finite.all() else check_scan(array, name)


def _other_pass(scan: ScanFile, channel: str, pass_: str) -> np.ndarray | None:
    """The other pass of ``channel``, or None where the file has only one."""
    try:
        return scan.channel(channel, "retrace" if pass_ == "trace" else "trace").data
    except ScanFileError:
        return None


def read_scan(path: Path | str, channel: str | None = None, pass_: str = "trace") -> Scan:
    """The scan in ``path`` in the file's units.

    For an instrument file, its channel ``channel`` (None: the scan's signal, the topograph or, at
    constant height, the current: ``scanfiles.choose``) of pass ``pass_`` (``trace`` or ``retrace``;
    ``forward`` and ``backward`` are accepted); a flat image (a plane) is refused, named or not.
    Plain arrays have one image: a channel or the retrace asked of one is refused, not ignored (the record would
    name a pass the file does not hold).
    """
    pass_ = canonical_pass(pass_)
    path = Path(path)
    folder = is_saved_scan(path)  # a scan the bridge saved: read as an instrument file is
    if not folder and not path.is_file():
        raise ScanError(f"{path}: {not_a_file(path)}")
    if not folder and path.stat().st_size == 0:
        raise ScanError(f"{path}: empty file (0 bytes)")
    suffix = path.suffix.lower()
    try:
        if folder or sniff(path) is not None or suffix in INSTRUMENT_SUFFIXES:
            instrument_file = read_file(path)
            if channel is None:
                image, why = choose(instrument_file, pass_)
            else:
                image, why = instrument_file.channel(channel, pass_), None
                if is_flat(image.data):
                    raise ScanFileError(flat_reason(instrument_file, image))
            other = _other_pass(instrument_file, image.name, pass_)
            return Scan(check_partial_scan(image.data, str(path)), image, other, why)
    except ScanFileError as exc:
        raise ScanError(str(exc)) from None
    if suffix not in SUFFIXES:
        raise ScanError(
            f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)} or a {', '.join(FORMAT_NAMES.values())} file"
        )
    if channel is not None:
        raise ScanError(f"{path}: an array file holds one image and no channels; --channel {channel} applies to instrument files")
    if pass_ != "trace":
        raise ScanError(f"{path}: an array file holds one image and no {pass_}; --pass {pass_} applies to instrument files")
    try:
        if suffix == ".npy":
            array = load_npy(path)
        else:
            array = _read_image(path)
    except (ScanError, ScanFileError) as exc:
        raise ScanError(str(exc)) from None
    except Exception as exc:  # any reader failure on a user's file is a bad file, not a crash
        raise ScanError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    array = check_array_scan(array, str(path))
    if is_flat(array):  # as an instrument image's flat channel is (scanfiles.signal): the guard has nothing to judge
        raise ScanError(f"{path}: flat (a plane, nothing to denoise)")
    return Scan(array)
