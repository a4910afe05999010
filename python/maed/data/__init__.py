"""Simulated STM scans: clean surfaces, raster-scan artefacts and (noisy, clean) pairs.

numpy and scipy only, so the acquisition side can use the simulator without torch.
"""

from .pairs import TEST_SEED_BASE, ScanPair, make_pair, renoise, evaluation_set
from .scan_noise import TRAIN_RANGES, NoiseParams, NoiseRanges, add_scan_noise, draw_params
from .surfaces import SurfaceRanges, random_surface

__all__ = [
    "TEST_SEED_BASE", "ScanPair", "make_pair", "renoise", "evaluation_set",
    "TRAIN_RANGES", "NoiseParams", "NoiseRanges", "add_scan_noise", "draw_params",
    "SurfaceRanges", "random_surface",
]
