"""``maed train``: fit a model on simulated (and optionally user) pairs.

One epoch is ``steps_per_epoch`` optimiser steps; after each epoch a fixed validation set
(its own seeds, disjoint from training and test) is denoised and its PSNR reported, and a
checkpoint is written. ``resume`` continues from the last checkpoint with the same data
stream, so an interrupted run ends where an uninterrupted one would have. ``init`` starts a new
run (new schedule, new optimiser) from existing weights: fine-tuning, e.g. on larger patches
or on a lab's own pairs. Started by ``torchrun``, the run is shared between its processes
(``maed.training.processes``); the first process validates, logs and writes the checkpoints.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.real_pairs import load_pass_pairs
from ..data.real_refs import MIN_REFERENCE_ROWS, is_project_folder, load_references
from ..metrics import psnr
from ..model import ARCHITECTURES, build_model, passes_taken
from ..model.checkpoint import load_checkpoint, load_model, save_checkpoint
from ..normalise import check_levelling
from ..scanfiles import SUFFIXES
from .config import TrainConfig, check_config, resumed_config
from .dataset import PASS_TARGET, USER_FRACTION, TrainingPairs, UserPairs, normalised_pair
from .loss import gradient_l1, noise_weights, pass_pair_l1, plane_free_l1, row_level_l1, spectral_peak_loss
from .processes import Processes, finish, mean_over, shared, start, wrap

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


class NotFinite(ArithmeticError):
    """The network's output holds NaN or infinite values: training has diverged."""


def _diverged(what: str, step: int, cfg: TrainConfig, saved: int | None, last: Path) -> ValueError:
    """The one-line error of a run that diverged at ``step``; ``saved``: the step of its last checkpoint, ``last``."""
    kept = f"; the last checkpoint, of step {saved}, is {last}" if saved else ""
    return ValueError(f"training diverged at step {step}: {what}; lower --lr (it is {cfg.lr:g}){kept}")


@torch.no_grad()
def validate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Mean PSNR of input and output against the clean surfaces; ``NotFinite`` where the output is not finite."""
    model.eval()
    out = torch.cat([model(b.to(device)).cpu() for b in x.split(8)])
    model.train()
    if not torch.isfinite(out).all():
        raise NotFinite("the network's output is not finite")
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
    rows_weight: float = 0.0,
) -> torch.Tensor:
    """The loss every model is trained with, plus the extra terms of its own paper where it has them.

    ``grad_weight``, ``fourier_weight`` and ``rows_weight`` add ``gradient_l1``, ``spectral_peak_loss`` and
    ``row_level_l1`` (product training; the Table 1 protocol leaves them at 0). ``kind`` (per sample, ``dataset.PASS_TARGET`` or
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
        if rows_weight:
            loss = loss + share * rows_weight * row_level_l1(out, target, weights)
    return loss


def _load_matching(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """Copy the tensors of ``weights`` whose name and shape ``model`` shares; the rest keep their
    initialisation (a widened decoder stage, a zero-initialised head). Returns (copied, of them widened, total).

    A one-pass model's first convolutions go into a two-pass one as the trace's, the retrace's starting at
    zero: the new model starts as the old one on the trace, and uses the retrace only as far as training
    finds it worth it."""
    own = model.state_dict()
    fitting, widened = {}, 0
    for k, v in weights.items():
        if k not in own:
            continue
        if own[k].shape == v.shape:
            fitting[k] = v
        elif k.startswith("stem.") and v.shape[1] == 1 and own[k].shape == (v.shape[0], own[k].shape[1], *v.shape[2:]):
            fitting[k] = torch.cat([v, v.new_zeros((v.shape[0], own[k].shape[1] - 1, *v.shape[2:]))], dim=1)
            widened += 1
    model.load_state_dict(fitting, strict=False)
    return len(fitting), widened, len(own)


def _learning_rate(cfg: TrainConfig, step: int) -> float:
    """Short linear warm-up, then cosine decay to 2% of the peak."""
    warmup = max(1, cfg.steps // 50)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


class _BatchLoss(torch.nn.Module):
    """``training_loss`` of ``model`` as a module's forward: ``DistributedDataParallel`` averages the gradients of
    what runs through a wrapped module's forward, and some networks compute their own loss (``training_loss``)."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, noisy: torch.Tensor, target: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        return training_loss(self.model, noisy, target, cfg.grad_weight, cfg.fourier_weight, kind, cfg.relative_loss, cfg.rows_weight)


def train(cfg: TrainConfig, out_dir: Path, resume: bool = False, log=print, force: bool = False) -> dict:
    """Train and return the final validation report; checkpoints go to ``out_dir``. Under ``torchrun``, on each of
    its processes (``maed.training.processes``), which all return the first process's report. A run already in
    ``out_dir`` is continued with ``resume`` (its settings but those ``CHANGEABLE_ON_RESUME`` must be the same),
    replaced with ``force``, and otherwise left alone (a one-line ``ValueError``)."""
    if cfg.model not in ARCHITECTURES:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {', '.join(ARCHITECTURES)}")
    check_levelling(cfg.levelling)
    check_config(cfg)
    out_dir = Path(out_dir)
    last = out_dir / "last.pt"
    if resume and not last.exists():
        raise ValueError(f"nothing to resume: {last} does not exist")
    if not resume and last.exists() and not force:
        raise ValueError(f"{last} holds a run already: --resume continues it, --force starts over in its place, or give another --out")
    made = not out_dir.exists()
    _check_writable(out_dir)
    processes = start(cfg.batch_size)
    try:
        return _train(cfg, out_dir, resume, log if processes.main else (lambda *_: None), processes)
    except BaseException:
        if made and processes.main:  # a run refused or stopped before its first checkpoint leaves no empty --out
            _remove_if_empty(out_dir)
        raise
    finally:
        finish(processes)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only an empty folder goes
    except OSError:
        pass


def _check_writable(out_dir: Path) -> None:
    """A one-line ``ValueError`` where checkpoints cannot be written to ``out_dir``: found before the first epoch, not
    at its end (its steps lost)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".maed-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out_dir}: checkpoints cannot be written there ({exc.strerror or exc})") from None


def _train(cfg: TrainConfig, out_dir: Path, resume: bool, log, processes: Processes) -> dict:
    device = processes.device
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    if cfg.patch % model.size_multiple:
        raise ValueError(f"--patch {cfg.patch}: {cfg.model} takes patches of a multiple of {model.size_multiple} pixels")
    if cfg.init and not resume:
        start_model, card = load_model(cfg.init)
        taken, widened, total = _load_matching(model, start_model.state_dict())
        if taken == 0:
            raise ValueError(f"--init {cfg.init} is a {card['config']!r} model: no weights fit {cfg.model!r}")
        more = f" ({widened} of them given a second pass's inputs, which start at zero)" if widened else ""
        log(f"starting from the weights of {cfg.init} ({card['config']}): {taken} of {total} tensors fit{more}")
        if card["levelling"] != cfg.levelling:
            log(f"note: {cfg.init} was trained on input levelled {card['levelling']}; this run levels it {cfg.levelling}")
    model = model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    step, history = 0, []
    last = out_dir / "last.pt"
    if resume:
        state = load_checkpoint(last)
        if state.get("config") != cfg.model:
            raise ValueError(
                f"--resume: {last} holds a {state.get('config')!r} model, not {cfg.model!r}: give --model {state.get('config')}"
            )
        if "train_config" in state:
            resumed_config(state["train_config"], asdict(cfg))  # a one-line error where a setting changed
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, history = state["step"], state["history"]
        log(f"resumed from {last} at step {step}" + (f": --steps {cfg.steps} trains nothing more" if step >= cfg.steps else ""))
    if processes.world > 1:
        log(f"{processes.world} training processes ({device.type}), {processes.share(cfg.batch_size)} samples of each batch apiece")

    user = UserPairs(Path(cfg.user_pairs), cfg.patch) if cfg.user_pairs else None
    if user is not None:
        log(f"{len(user.pairs)} user pairs from {cfg.user_pairs} ({USER_FRACTION:.0%} of samples; validation stays on simulated scans)")
    references = []
    if cfg.real_dir and cfg.real_fraction > 0:
        references = load_references(Path(cfg.real_dir))
        if not references:
            raise ValueError(
                f"{cfg.real_dir}: "
                + (
                    "none of the training sources' references is there (maed.data.real_refs.TRAINING_REFERENCES)"
                    if is_project_folder(Path(cfg.real_dir))
                    else f"no scan file that reads ({', '.join(SUFFIXES)}), at least {MIN_REFERENCE_ROWS} rows, in it "
                    "(sub-folders are not looked in)"
                )
            )
        log(f"{len(references)} real reference images from {cfg.real_dir} ({cfg.real_fraction:.0%} of samples)")
    pass_pairs = []
    if cfg.real_dir and cfg.pair_fraction > 0:
        log(f"registering the trace/retrace pairs of the scans in {cfg.real_dir} (half a minute or so)")
        pass_pairs = load_pass_pairs(Path(cfg.real_dir), cfg.patch)
        if not pass_pairs:
            raise ValueError(f"{cfg.real_dir}: no scan there has a trace/retrace pair fit to learn from (maed.data.real_pairs)")
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
        batch_size=cfg.batch_size,
        rank=processes.rank,
        world=processes.world,
    )
    share = processes.share(cfg.batch_size)
    loader = DataLoader(stream, batch_size=share, num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    if processes.main:
        log(f"drawing the validation set: {cfg.validation_scans} simulated scans of {cfg.patch} pixels")
        val_x, val_y = _validation_set(cfg.validation_scans, cfg.patch, cfg.levelling, stream.passes)
        val_real = _real_validation_set(stream, cfg.validation_scans) if references else None

    batch_loss = wrap(_BatchLoss(model, cfg), processes)
    model.train()
    batches = iter(loader)
    # Into a log file (nohup, CI) a progress line a minute, not one per step: hours of training made megabytes.
    every = 0.1 if sys.stderr.isatty() else 60.0
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"train {cfg.model}",
        unit="step",
        dynamic_ncols=True,
        mininterval=every,
        disable=not processes.main,
    )
    started = time.time()
    report = history[-1] if history else None
    saved = step if resume else None
    try:
        while step < cfg.steps:
            x, y, kind = next(batches)
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(cfg, step)
            loss = batch_loss(x.to(device), y.to(device), kind.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            step += 1
            bar.update(1)
            value = mean_over(loss, processes)
            if not math.isfinite(value):
                bar.close()
                raise _diverged(f"the loss is {value}", step, cfg, saved, last)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)  # drawn at the bar's interval
            if step % cfg.steps_per_epoch == 0 or step == cfg.steps:
                report = None
                if processes.main:
                    try:
                        report = _validation_report(model, (val_x, val_y), val_real, device)
                    except NotFinite:
                        bar.close()
                        raise _diverged("the network's output on the validation scans is not finite", step, cfg, saved, last) from None
                    report |= {"step": step, "seconds": time.time() - started}
                    history.append(report)
                    bar.write(_report_line(report))
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
                            "processes": processes.world,
                        },
                    )
                    saved = step
                report = shared(report, processes)
    except KeyboardInterrupt:
        bar.close()
        where = (
            f"the last checkpoint, of step {saved}, is {last}; --resume with the same --out continues from it"
            if saved
            else f"no checkpoint yet (one is written every {cfg.steps_per_epoch} steps, --epoch-steps)"
        )
        log(f"maed: stopped at step {step} of {cfg.steps}; {where}")
        raise
    bar.close()
    return report


def _validation_report(
    model: torch.nn.Module,
    simulated: tuple[torch.Tensor, torch.Tensor],
    real: tuple[torch.Tensor, torch.Tensor] | None,
    device: torch.device,
) -> dict:
    """The validation figures of ``model`` on the simulated set and, where there is one, the real references'."""
    report = validate(model, *simulated, device)
    if real is not None:
        figures = validate(model, *real, device)
        report |= {"real_psnr_in": figures["psnr_in"], "real_psnr_out": figures["psnr_out"]}
    return report


def _report_line(report: dict) -> str:
    line = f"step {report['step']}: validation PSNR {report['psnr_in']:.2f} dB in -> {report['psnr_out']:.2f} dB out"
    if "real_psnr_out" in report:
        line += f"; real references {report['real_psnr_in']:.2f} -> {report['real_psnr_out']:.2f} dB"
    return f"{line}, loss {report['loss']:.4f}"
