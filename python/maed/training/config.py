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
    rows_weight: float = 0.0
    """Weight of the error's level per row (``loss.row_level_l1``)."""
    pair_fraction: float = 0.0
    background: bool = False
    noise_mix: bool = False
    relative_loss: bool = False
    """Each sample's loss over its noise (``loss.noise_weights``): quiet scans count as much as noisy ones."""
    quiet_fraction: float = 0.0
    """Share of simulated scans with every artefact but the line offsets scaled down (``noise_mix.quiet_ranges``)."""
    levelling: str = PLANE_AND_ROWS
    """What is taken off the input before the network (``maed.normalise``): ``plane+rows`` or ``plane``."""


OPTIONS = {
    "model": "--model",
    "steps": "--steps",
    "steps_per_epoch": "--epoch-steps",
    "batch_size": "--batch-size",
    "patch": "--patch",
    "lr": "--lr",
    "seed": "--seed",
    "workers": "--workers",
    "user_pairs": "--pairs",
    "init": "--init",
    "real_dir": "--real-refs",
    "real_fraction": "--real-fraction",
    "grad_weight": "--grad-weight",
    "fourier_weight": "--fourier-weight",
    "rows_weight": "--rows-weight",
    "pair_fraction": "--pair-fraction",
    "background": "--background",
    "noise_mix": "--noise-mix",
    "relative_loss": "--relative-loss",
    "quiet_fraction": "--quiet-fraction",
    "levelling": "--levelling",
}
"""Each setting of ``TrainConfig`` that ``maed train`` takes, by its option."""
CHANGEABLE_ON_RESUME = ("steps", "steps_per_epoch", "workers")
"""Settings a resumed run may change: how far it goes, how often it reports, how its samples are made. Any other
change would continue the run on other data, another loss or another schedule than its history was measured on."""


MAX_PATCH = 1024
"""Largest training patch: a batch of 8 such samples takes several GB to draw and to train on; the shipped weights were
trained on 144."""


def check_config(cfg: TrainConfig) -> None:
    """A one-line ``ValueError`` naming the option of any setting no run can use."""

    def fraction(value: float, field: str) -> None:
        if not 0.0 <= value <= 1.0:  # NaN fails too
            raise ValueError(f"{OPTIONS[field]} must be between 0 and 1, got {value}")

    for field in ("steps", "steps_per_epoch", "batch_size", "patch"):
        if getattr(cfg, field) < 1:
            raise ValueError(f"{OPTIONS[field]} must be at least 1, got {getattr(cfg, field)}")
    if cfg.patch > MAX_PATCH:
        raise ValueError(f"--patch must be at most {MAX_PATCH} pixels, got {cfg.patch}")
    if cfg.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {cfg.seed}")
    if cfg.workers < 0:
        raise ValueError(f"--workers must be 0 (samples made in the training process) or more, got {cfg.workers}")
    if not 0.0 < cfg.lr < float("inf"):
        raise ValueError(f"--lr must be a positive number, got {cfg.lr}")
    for field in ("real_fraction", "pair_fraction", "quiet_fraction"):
        fraction(getattr(cfg, field), field)
    if cfg.real_fraction + cfg.pair_fraction > 1.0:
        raise ValueError(f"--real-fraction and --pair-fraction add up to {cfg.real_fraction + cfg.pair_fraction:g}: at most 1")
    for field in ("grad_weight", "fourier_weight", "rows_weight"):
        if not 0.0 <= getattr(cfg, field) < float("inf"):
            raise ValueError(f"{OPTIONS[field]} must be 0 or a positive number, got {getattr(cfg, field)}")
    for field in ("real_fraction", "pair_fraction"):
        if getattr(cfg, field) > 0 and not cfg.real_dir:
            raise ValueError(f"{OPTIONS[field]} needs --real-refs DIR, the folder of real scans it draws from")
    if cfg.real_dir and cfg.real_fraction == 0 and cfg.pair_fraction == 0:
        raise ValueError("--real-refs is used only with --real-fraction or --pair-fraction above 0: give one (or leave --real-refs out)")


def resumed_config(saved: dict, given: dict) -> TrainConfig:
    """The settings of a run resumed from a checkpoint that recorded ``saved`` (its ``train_config``), with the
    settings given on the command line (``given``: field to value, only those given): a given one may change what
    ``CHANGEABLE_ON_RESUME`` names, and must equal the saved one otherwise (a one-line ``ValueError`` names each that
    differs)."""
    fields = TrainConfig.__dataclass_fields__
    base = {k: v for k, v in saved.items() if k in fields}
    differ = [f for f, v in given.items() if f not in CHANGEABLE_ON_RESUME and f in base and base[f] != v]
    if differ:
        said = ", ".join(f"{OPTIONS[f]} {given[f]} (the run's: {base[f]})" for f in differ)
        raise ValueError(
            f"--resume continues the run with its own settings; this command changes {said}: leave them out, or start a new --out"
        )
    return TrainConfig(**(base | given))
