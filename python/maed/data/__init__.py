"""Simulated STM scans: clean surfaces, raster-scan artefacts and (noisy, clean) pairs.

numpy and scipy only, so the acquisition side can use the simulator without torch.
"""

from .pairs import TEST_SEED_BASE, ScanPair, evaluation_set, make_pair
from .scan_events import EVENT_KINDS, EventSpec, ScanEvent, add_events, line_noise
from .scan_noise import TRAIN_RANGES, NoiseParams, NoiseRanges, add_scan_noise, draw_params
from .surfaces import FAMILIES, HELD_OUT_FAMILIES, LATTICE_FAMILIES, TRAINING_FAMILIES, SurfaceRanges, random_surface

# Bumped whenever a change to the simulator changes what a seed draws; recorded with weights.
SIMULATOR_VERSION = "maed.data 6"

__all__ = [
    "SIMULATOR_VERSION",
    "EVENT_KINDS",
    "EventSpec",
    "ScanEvent",
    "add_events",
    "line_noise",
    "TEST_SEED_BASE",
    "ScanPair",
    "make_pair",
    "evaluation_set",
    "TRAIN_RANGES",
    "NoiseParams",
    "NoiseRanges",
    "add_scan_noise",
    "draw_params",
    "FAMILIES",
    "HELD_OUT_FAMILIES",
    "LATTICE_FAMILIES",
    "TRAINING_FAMILIES",
    "SurfaceRanges",
    "random_surface",
]
