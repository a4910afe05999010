"""Gwyddion ``.gwy`` output (via the ``gwyfile`` package): images to scale, in their units.

Gwyddion data fields cannot hold NaN, so rows never measured are filled with the mean of the
measured pixels and flagged in a mask (``/N/mask``, 1 where not measured), as Gwyddion itself
does when it imports a scan with missing data. Each field carries the source file's header as
Gwyddion metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

from .channel import ChannelImage


def _text(value: object) -> str:
    """``value`` as a Gwyddion string, which ends at its first NUL: a NUL inside (a damaged header's unit or title)
    would leave the rest of the file unreadable."""
    return str(value).replace("\x00", "")


def _field(data: np.ndarray, source: ChannelImage, unit: str) -> GwyDataField:
    width, height = source.scan_range
    return GwyDataField(
        np.ascontiguousarray(data, dtype=np.float64),
        xreal=width,
        yreal=height,
        si_unit_xy=GwySIUnit(unitstr="m"),
        si_unit_z=GwySIUnit(unitstr=_text(unit)),
    )


def _metadata(header: dict) -> GwyContainer:
    meta = GwyContainer()
    for key, value in header.items():
        key = _text(key)
        meta[key] = _text(value)
        meta.typecodes[key] = "s"  # gwyfile would store a one-letter string as a char
    return meta


def write_gwy(path: Path | str, source: ChannelImage, fields: dict[str, np.ndarray], units: dict[str, str] | None = None) -> None:
    """Write ``fields`` (title -> image in ``source``'s range and shape) as channels 0, 1, ...

    Each field is in ``source``'s unit unless ``units`` names another for its title ("" for a
    dimensionless map such as the guard's fallback weight).
    """
    units = units or {}
    container = GwyContainer()
    for i, (title, data) in enumerate(fields.items()):
        missing = ~np.isfinite(data)
        fill = float(np.mean(data[~missing], dtype=np.float64)) if (~missing).any() else 0.0
        container[f"/{i}/data"] = _field(np.where(missing, fill, data), source, units.get(title, source.unit))
        container[f"/{i}/data/title"] = _text(title)
        container.typecodes[f"/{i}/data/title"] = "s"
        if missing.any():
            container[f"/{i}/mask"] = _field(missing.astype(np.float64), source, "")
        container[f"/{i}/meta"] = _metadata(source.header)
    container.tofile(str(path))
