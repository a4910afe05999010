"""The six baselines of the paper's Table 1, each for 1-channel STM height maps.

Every module holds one network, written after its own paper and reference implementation, with
``ORIGINAL_PARAMETERS`` and ``ORIGINAL_SOURCE`` documenting the original's size; its docstring
says how the original was adapted to a single channel. Every network maps (N, 1, H, W)
normalised heights to the clean estimate in the same units, with H and W multiples of its
``size_multiple``. A network may define ``training_loss(noisy, clean, reconstruction)`` where its
paper trains with extra terms (CBDNet's noise-map losses); the trainer then calls that instead of
``reconstruction(model(noisy), clean)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from torch import nn

from . import cbdnet, dncnn, hcanet, pdanet, pmrid, ridnet


@dataclass(frozen=True)
class Baseline:
    network: type[nn.Module]
    original_parameters: int
    original_source: str


def _entry(module: ModuleType, network: type[nn.Module]) -> Baseline:
    return Baseline(network, module.ORIGINAL_PARAMETERS, module.ORIGINAL_SOURCE)


BASELINES: dict[str, Baseline] = {
    "pdanet": _entry(pdanet, pdanet.PDANet),
    "hcanet": _entry(hcanet, hcanet.HCANet),
    "cbdnet": _entry(cbdnet, cbdnet.CBDNet),
    "dncnn": _entry(dncnn, dncnn.DnCNN),
    "pmrid": _entry(pmrid, pmrid.PMRID),
    "ridnet": _entry(ridnet, ridnet.RIDNet),
}
