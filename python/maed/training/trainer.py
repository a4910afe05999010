"""``maed train``: fit a model on simulated (and optionally user) pairs.

One epoch is ``steps_per_epoch`` optimiser steps; after each epoch a fixed validation set
(its own seeds, disjoint from training and test) is denoised and its PSNR reported, and a
checkpoint is written. ``resume`` continues from the last checkpoint with the same data
stream, so an interrupted run ends where an uninterrupted one would have. ``init`` starts a new
run (new schedule, new optimiser) from existing weights: fine-tuning, e.g. on larger patches
or on a lab's own pairs.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.real_pairs import load_pass_pairs
from ..data.real_refs import load_references
from ..metrics import psnr
from ..model import ARCHITECTURES, build_model, passes_taken
from ..model.checkpoint import load_checkpoint, load_model, save_checkpoint
from ..normalise import check_levelling
from .config import TrainConfig
from .dataset import PASS_TARGET, TrainingPairs, UserPairs, normalised_pair
from .loss import gradient_l1, noise_weights, pass_pair_l1, plane_free_l1, spectral_peak_loss

VALIDATION_SEED_BASE = 900_000_000


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]], levelling: str) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [normalised_pair(noisy, clean, levelling) for noisy, clean in pairs]
    x = torch.from_numpy(np.stack([p[0] for p in pairs]))
    y = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    return (x[:, None] if x.dim() == 3 else x), y


def _validation_set(count: int, patch: int, levelling: str, passes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulated scans of seeds of their own; a two-pass model's are the same stream drawn with both passes."""
    stream = TrainingPairs(patch, VALIDATION_SEED_BASE, levelling=levelling, passes=passes)
    return _stack([stream.sample(VALIDATION_SEED_BASE + i)[:2] for i in range(count)], levelling)


def _real_validation_set(stream: TrainingPairs, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real references with artefacts, from seeds of their own (the same references as training)."""
    real = TrainingPairs(stream.patch, 0, references=stream.references, real_fraction=1.0, passes=stream.passes)
    return _stack([real.sample(VALIDATION_SEED_BASE + 100_000 + i)[:2] for i in range(count)], stream.levelling)


@torch.no_grad()
def validate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Mean PSNR of input and output against the clean surfaces."""
    model.eval()
    out = torch.cat([model(b.to(device)).cpu() for b in x.split(8)])
    model.train()
    psnr_in = float(np.mean([psnr(a[0].numpy(), b[0].numpy()) for a, b in zip(x, y)]))
    psnr_out = float(np.mean([psnr(a[0].numpy(), b[0].numpy()) for a, b in zip(out, y)]))
    return {"psnr_in": psnr_in, "psnr_out": psnr_out, "loss": float(plane_free_l1(out, y))}


def training_loss(
    model: torch.nn.Module,
    noisy: torch.Tensor,
    target: torch.Tensor,
    grad_weight: float = 0.0,
    fourier_weight: float = 0.0,
    kind: torch.Tensor | None = None,
    relative: bool = False,
) -> torch.Tensor:
    """The loss every model is trained with, plus the extra terms of its own paper where it has them.

    ``grad_weight`` and ``fourier_weight`` add ``gradient_l1`` and ``spectral_peak_loss`` (product training;
    the Table 1 protocol leaves them at 0). ``kind`` (per sample, ``dataset.PASS_TARGET`` or
    ``CLEAN_TARGET``; default all clean) marks real pass pairs, which are judged by ``pass_pair_l1``
    alone: their target is noisy, so its gradients and Fourier peaks are not the surface's. ``relative`` weighs
    each clean-target sample's L1 and gradient terms by the inverse of its noise (``loss.noise_weights``).
    """
    if hasattr(model, "training_loss"):
        return model.training_loss(noisy, target, plane_free_l1)
    out = model(noisy)
    pairs = kind == PASS_TARGET if kind is not None else torch.zeros(len(noisy), dtype=torch.bool)
    loss = out.new_zeros(())
    if pairs.any():
        loss = loss + pass_pair_l1(out[pairs], target[pairs]).sum() / len(noisy)
    if (~pairs).any():
        out, target = out[~pairs], target[~pairs]
        share = len(out) / len(noisy)
        weights = noise_weights(noisy[~pairs], target) if relative else None
        loss = loss + share * plane_free_l1(out, target, weights)
        if grad_weight:
            loss = loss + share * grad_weight * gradient_l1(out, target, weights)
        if fourier_weight:
            loss = loss + share * fourier_weight * spectral_peak_loss(out, target)
    return loss


def _load_matching(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Copy the tensors of ``weights`` whose name and shape ``model`` shares; the rest keep their
    initialisation (a widened decoder stage, a zero-initialised head). Returns (copied, total).

    A one-pass model's first convolutions go into a two-pass one as the trace's, the retrace's starting at
    zero: the new model starts as the old one on the trace, and uses the retrace only as far as training
    finds it worth it."""
    own = model.state_dict()
    fitting = {}
    for k, v in weights.items():
        if k not in own:
            continue
        if own[k].shape == v.shape:
            fitting[k] = v
        elif k.startswith("stem.") and v.shape[1] == 1 and own[k].shape == (v.shape[0], own[k].shape[1], *v.shape[2:]):
            fitting[k] = torch.cat([v, v.new_zeros((v.shape[0], own[k].shape[1] - 1, *v.shape[2:]))], dim=1)
    model.load_state_dict(fitting, strict=False)
    return len(fitting), len(own)


def _learning_rate(cfg: TrainConfig, step: int) -> float:
    """Short linear warm-up, then cosine decay to 2% of the peak."""
    warmup = max(1, cfg.steps // 50)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: TrainConfig, out_dir: Path, resume: bool = False, log=print) -> dict:
    """Train and return the final validation report; checkpoints go to ``out_dir``."""
    if cfg.model not in ARCHITECTURES:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {', '.join(ARCHITECTURES)}")
    check_levelling(cfg.levelling)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    if cfg.init and not resume:
        start, card = load_model(cfg.init)
        taken, total = _load_matching(model, start.state_dict())
        if taken == 0:
            raise ValueError(f"--init {cfg.init} is a {card['config']!r} model: no weights fit {cfg.model!r}")
        log(f"starting from the weights of {cfg.init} ({card['config']}): {taken} of {total} tensors fit")
    model = model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    step, history = 0, []
    last = out_dir / "last.pt"
    if resume:
        if not last.exists():
            raise ValueError(f"nothing to resume: {last} does not exist")
        state = load_checkpoint(last)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, history = state["step"], state["history"]
        log(f"resumed from {last} at step {step}")

    user = UserPairs(Path(cfg.user_pairs)) if cfg.user_pairs else None
    references = []
    if cfg.real_dir and cfg.real_fraction > 0:
        references = load_references(Path(cfg.real_dir))
        if not references:
            raise ValueError(f"{cfg.real_dir}: none of the training references is there (maed.data.real_refs)")
        log(f"{len(references)} real reference images from {cfg.real_dir} ({cfg.real_fraction:.0%} of samples)")
    pass_pairs = []
    if cfg.pair_fraction > 0 and not cfg.real_dir:
        raise ValueError("--pair-fraction needs --real-refs: the folder of real scans whose passes are paired")
    if cfg.real_dir and cfg.pair_fraction > 0:
        pass_pairs = load_pass_pairs(Path(cfg.real_dir), cfg.patch)
        if not pass_pairs:
            raise ValueError(f"{cfg.real_dir}: no training-source scan has a trace/retrace pair fit to learn from (maed.data.real_pairs)")
        names = ", ".join(p.name for p in pass_pairs)
        log(f"{len(pass_pairs)} real trace/retrace pairs ({names}; {cfg.pair_fraction:.0%} of samples)")
    # Each training run gets its own seed range below the validation and test seeds.
    stream = TrainingPairs(
        cfg.patch,
        first_seed=cfg.seed * 50_000_000 + step * cfg.batch_size,
        user=user,
        references=references,
        real_fraction=cfg.real_fraction,
        pass_pairs=pass_pairs,
        pair_fraction=cfg.pair_fraction,
        background=cfg.background,
        noise_mix=cfg.noise_mix,
        levelling=cfg.levelling,
        passes=passes_taken(model),
        quiet_fraction=cfg.quiet_fraction,
    )
    loader = DataLoader(stream, batch_size=cfg.batch_size, num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    val_x, val_y = _validation_set(cfg.validation_scans, cfg.patch, cfg.levelling, stream.passes)
    val_real = _real_validation_set(stream, cfg.validation_scans) if references else None

    model.train()
    batches = iter(loader)
    # Into a log file (nohup, CI) a progress line a minute, not one per step: hours of training made megabytes.
    every = 0.1 if sys.stderr.isatty() else 60.0
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", unit="step", dynamic_ncols=True, mininterval=every)
    started = time.time()
    while step < cfg.steps:
        x, y, kind = next(batches)
        for group in optimiser.param_groups:
            group["lr"] = _learning_rate(cfg, step)
        loss = training_loss(model, x.to(device), y.to(device), cfg.grad_weight, cfg.fourier_weight, kind.to(device), cfg.relative_loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.steps_per_epoch == 0 or step == cfg.steps:
            report = validate(model, val_x, val_y, device) | {"step": step, "seconds": time.time() - started}
            line = f"step {step}: validation PSNR {report['psnr_in']:.2f} dB in -> {report['psnr_out']:.2f} dB out"
            if val_real is not None:
                real = validate(model, *val_real, device)
                report |= {"real_psnr_in": real["psnr_in"], "real_psnr_out": real["psnr_out"]}
                line += f"; real references {real['psnr_in']:.2f} -> {real['psnr_out']:.2f} dB"
            history.append(report)
            bar.write(f"{line}, loss {report['loss']:.4f}")
            save_checkpoint(
                last,
                model,
                cfg.model,
                extra={
                    "levelling": cfg.levelling,
                    "optimiser": optimiser.state_dict(),
                    "step": step,
                    "history": history,
                    "train_config": asdict(cfg),
                },
            )
    bar.close()
    return history[-1]
