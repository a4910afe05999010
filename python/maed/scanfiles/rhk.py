"""RHK ``.sm4`` scans: a tree of objects (offset, size) pointing at pages; a page holds a header,
its strings and its data, raw int32 counts scaled by the page's ``z_scale`` and ``z_offset``.

Our own reader of the image pages (see docs/files.md for why not spym or sm4file). The layout
and the orientation follow spym's and Gwyddion's readers: a negative x scale means the
columns are stored right to left, a positive y scale that the rows are stored bottom first;
both are undone so row 0 is the top and column 0 the left. Backward (retrace) pages are stored
in the same spatial order as forward ones. Spectra (line pages) are skipped.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .channel import ChannelImage, ScanFile, ScanFileError, check_file_pixels, check_size

MAGIC = "STiMage".encode("utf-16-le")  # the signature starts at byte 2, after the header size
_OBJECT = struct.Struct("<3I")  # id, offset, size
_PAGE_INDEX = struct.Struct("<16s4I")  # page id, data type, source type, object count, minor version
_PAGE_HEADER = struct.Struct("<2H3I2i2I4I2i11f4I")
_PAGE_HEADER_SIZE = _PAGE_HEADER.size + 64  # then reserved bytes, then the page header's objects
_FIELDS = (
    "field_size",
    "string_count",
    "page_type",
    "data_sub_source",
    "line_type",
    "x_corner",
    "y_corner",
    "x_size",
    "y_size",
    "image_type",
    "scan_type",
    "group_id",
    "data_size",
    "min_z",
    "max_z",
    "x_scale",
    "y_scale",
    "z_scale",
    "xy_scale",
    "x_offset",
    "y_offset",
    "z_offset",
    "period",
    "bias",
    "current",
    "angle",
    "color_info_count",
    "grid_x_size",
    "grid_y_size",
    "object_count",
)
_STRINGS = (
    "label",
    "system_text",
    "session_text",
    "user_text",
    "file_name",
    "date",
    "time",
    "x_unit",
    "y_unit",
    "z_unit",
    "x_label",
    "y_label",
    "status_channel",
    "completed_line_count",
)
PAGE_INDEX_HEADER, PAGE_INDEX_ARRAY, PAGE_HEADER, PAGE_DATA, STRING_DATA = 1, 2, 3, 4, 10
IMAGE_PAGE = 0
TOPOGRAPHIC = 1
_PASS = {0: "trace", 1: "retrace", 2: "trace", 3: "retrace"}  # scan_type: right, left, up, down


def _objects(raw: bytes, offset: int, count: int) -> dict[int, tuple[int, int]]:
    """Object id -> (offset, size) for ``count`` object records starting at ``offset``."""
    records = (_OBJECT.unpack_from(raw, offset + i * _OBJECT.size) for i in range(count))
    return {obj_id: (obj_offset, size) for obj_id, obj_offset, size in records}


def _strings(raw: bytes, offset: int, count: int) -> dict[str, str]:
    """The page's strings (UTF-16, each after its length in characters), by name."""
    strings = {}
    for name in _STRINGS[:count]:
        (length,) = struct.unpack_from("<H", raw, offset)
        strings[name] = raw[offset + 2 : offset + 2 + 2 * length].decode("utf-16-le", errors="replace")
        offset += 2 + 2 * length
    return strings


def _page_image(raw: bytes, objects: dict[int, tuple[int, int]], path: Path, pixels_before: int) -> tuple[dict, np.ndarray]:
    """The header (fields and strings) and the oriented, scaled image of one image page (``pixels_before``: those of
    the file's pages read before it, ``check_file_pixels``)."""
    header_offset = objects[PAGE_HEADER][0]
    header = dict(zip(_FIELDS, _PAGE_HEADER.unpack_from(raw, header_offset)))
    page_objects = _objects(raw, header_offset + _PAGE_HEADER_SIZE, header["object_count"])
    if STRING_DATA in page_objects:
        header |= _strings(raw, page_objects[STRING_DATA][0], header["string_count"])
    rows, cols = check_size(header["y_size"], header["x_size"], path)
    check_file_pixels(pixels_before + rows * cols, path)  # a page listed many times is decoded as often
    data_offset, data_size = objects[PAGE_DATA]
    if data_size < 4 * rows * cols:
        raise ScanFileError(f"{path}: truncated page {header.get('label', '')!r}: {data_size} bytes for {rows}x{cols}")
    counts = np.frombuffer(raw, dtype="<i4", count=rows * cols, offset=data_offset).reshape(rows, cols)
    image = counts * float(header["z_scale"]) + float(header["z_offset"])
    if header["x_scale"] < 0:
        image = image[:, ::-1]
    if header["y_scale"] > 0:
        image = image[::-1]
    return header, np.ascontiguousarray(image)


def read(path: Path, raw: bytes) -> ScanFile:
    """Every image page of the ``.sm4`` file ``path`` whose bytes are ``raw``."""
    (header_size,) = struct.unpack_from("<H", raw, 0)
    _, object_count = struct.unpack_from("<2I", raw, 2 + 36)  # page and object counts follow the signature
    file_objects = _objects(raw, 2 + header_size, object_count)
    if PAGE_INDEX_HEADER not in file_objects:
        raise ScanFileError(f"{path}: RHK file without a page index")
    index_offset = file_objects[PAGE_INDEX_HEADER][0]
    page_count, index_objects = struct.unpack_from("<2I", raw, index_offset)
    offset = _objects(raw, index_offset + 16, index_objects)[PAGE_INDEX_ARRAY][0]

    images = []
    topograph, pixels = None, 0
    for _ in range(page_count):
        _, data_type, _, count, _ = _PAGE_INDEX.unpack_from(raw, offset)
        objects = _objects(raw, offset + _PAGE_INDEX.size, count)
        offset += _PAGE_INDEX.size + count * _OBJECT.size
        if data_type != IMAGE_PAGE:
            continue
        header, image = _page_image(raw, objects, path, pixels)
        pixels += image.size
        name = header.get("label") or f"page {len(images)}"
        if header["page_type"] == TOPOGRAPHIC and topograph is None:
            topograph = name
        scan_range = (header["x_size"] * abs(header["x_scale"]), header["y_size"] * abs(header["y_scale"]))
        pass_ = _PASS.get(header["scan_type"], "trace")
        images.append(ChannelImage(image, name, pass_, header.get("z_unit", ""), scan_range, header, "rhk"))
    if not images:
        raise ScanFileError(f"{path}: RHK file holds no image pages (spectra only)")
    return ScanFile(path, "rhk", topograph, tuple(images))
