"""Where overlapping tiles start along one axis: the network's tiles (``maed.denoise``) and the windows in which a
lattice over part of a scan is sought (``maed.lattice_keep``)."""

from __future__ import annotations


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of ``tile`` pixels overlapping by ``overlap`` that cover ``length`` pixels, the last one flush
    with the end; one tile from 0 where ``length`` is no longer than a tile."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]
