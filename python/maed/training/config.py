"""Settings of a training run; their defaults are the comparison protocol of ``maed train``.

Every model of the Table 1 comparison (MAED-CNN ``rt`` and ``paper`` and the six baselines) is
trained with exactly these defaults: the same simulated pairs (seed stream 0), patch, batch,
number of steps, learning-rate schedule and loss; ``docs/baselines.md`` says why this budget.
The peak learning rate is the same for all too, except for a network that does not train
stably at it: that one gets the next lower rate of ``1e-3, 3e-4, 1e-4`` at which it does
(``protocol_learning_rate``; the evidence is in ``docs/baselines.md``).
The shipped ``rt`` product weights were trained longer (their card records the settings). This
module imports nothing heavy, so the command line can show the defaults without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..normalise import PLANE_AND_ROWS

LEARNING_RATE = 1e-3
STABLE_LEARNING_RATES = {"pdanet": 3e-4}
"""Networks that diverge at ``LEARNING_RATE`` (PDA-Net's tail ReLU dies after an early spike)."""


def protocol_learning_rate(model: str) -> float:
    """The peak learning rate the comparison protocol gives ``model``."""
    return STABLE_LEARNING_RATES.get(model, LEARNING_RATE)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "rt"
    steps: int = 1000
    steps_per_epoch: int = 250
    batch_size: int = 4
    patch: int = 64
    lr: float = LEARNING_RATE
    seed: int = 0
    validation_scans: int = 16
    workers: int = 1
    user_pairs: str | None = None
    init: str | None = None
    real_dir: str | None = None
    real_fraction: float = 0.0
    grad_weight: float = 0.0
    fourier_weight: float = 0.0
    pair_fraction: float = 0.0
    background: bool = False
    noise_mix: bool = False
    relative_loss: bool = False
    """Each sample's loss over its noise (``loss.noise_weights``): quiet scans count as much as noisy ones."""
    quiet_fraction: float = 0.0
    """Share of simulated scans with every artefact but the line offsets scaled down (``noise_mix.quiet_ranges``)."""
    levelling: str = PLANE_AND_ROWS
    """What is taken off the input before the network (``maed.normalise``): ``plane+rows`` or ``plane``."""
