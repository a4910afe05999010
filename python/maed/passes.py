"""A scan file's two passes, and each pass as ``maed denoise`` publishes it, levelled alike.

``maed adapt`` and ``maed eval --real`` judge a model on the same things: a file's topograph (or,
where it is flat, its first channel that varies) in trace and, where recorded, retrace, and each
pass denoised as ``maed denoise`` does it, compared with the pass in one levelled frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .denoise import denoise_guarded
from .engine import Backend
from .noreference import match_rows
from .normalise import normalise
from .scanfiles import ChannelImage, ScanFile, ScanFileError, read_file


def pick_image(path: Path, scan: ScanFile | None = None) -> ChannelImage:
    """The file's trace topograph, or its first trace channel that varies where the topograph is flat."""
    scan = scan if scan is not None else read_file(path)
    traces = [image for image in scan.images if image.pass_ == "trace"]
    ordered = sorted(traces, key=lambda image: image.name != scan.topograph)  # topograph first, then file order
    for image in ordered:
        if np.ptp(image.data[image.measured_rows]) > 0:
            return image
    raise ScanFileError(f"{path}: every forward channel is constant")


def pick_pair(path: Path) -> tuple[ChannelImage, ChannelImage | None]:
    """The image of ``pick_image`` and the same channel's retrace where one was recorded (else None)."""
    scan = read_file(path)
    trace = pick_image(path, scan)
    for image in scan.images:
        if image.name == trace.name and image.pass_ == "retrace" and image.data.shape == trace.data.shape \
                and np.ptp(image.data[image.measured_rows]) > 0:
            return trace, image
    return trace, None


def guarded_outputs(data: np.ndarray, backends: dict[str, Backend],
                    other_pass: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
    """One pass levelled (best plane, medians of row differences, as the network sees it, in the pass's units)
    and, per back end, its output as ``maed denoise`` makes it (``denoise_guarded``) levelled alike, its per-row
    offsets matched to the levelled pass (``noreference.match_rows``), with what the guard published."""
    x, norm = normalise(data)
    levelled = x.astype(np.float64) * norm.scale
    outputs, verdicts = {}, {}
    for name, backend in backends.items():
        result = denoise_guarded(data, backend, other_pass=other_pass)
        outputs[name] = match_rows(levelled, result.data.astype(np.float64) - norm.plane - norm.centre)
        verdicts[name] = result.verdict.output
    return levelled, outputs, verdicts


def display_unit(unit: str) -> tuple[float, str]:
    """The factor to the unit a figure in ``unit`` is shown in, and that unit (metres and amperes as pico-)."""
    return {"m": (1e12, "pm"), "A": (1e12, "pA")}.get(unit, (1.0, unit))
