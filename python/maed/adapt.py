"""``maed adapt``: fine-tune the model on the user's own scans, keeping it only where held-out scans say it is better.

Each scan line is recorded twice, trace and retrace, with independent white and feedback noise: the
one pass, registered onto the other, is a Noise2Noise target (``data.real_pairs``, ``training.loss
.pass_pair_l1``). What the passes share (line offsets, drift, tip changes, pick-up, turnaround
ringing) such a target cannot teach, so every batch mixes in simulated supervised pairs
(``--sim-share``, the training stream ``training.dataset.TrainingPairs``). Design: ``docs/adapt.md``.

Whole files are held out, never crops of a file trained on (two crops of one frame share its
surface). The new weights are kept only where all of these hold, else the old model stays and nothing
is written (exit status 3):

- **held-out error**: the trace/retrace error (``maed.trace_retrace``) of both passes of the held-out
  files, each pass denoised alone as ``maed denoise`` does (``denoise_guarded``): the 95 % interval of
  the relative change of E^2 (paired per row, resampled in blocks of rows, each file weighed by its own
  old E^2) lies wholly below ``-MIN_GAIN`` (1 %): a change too small to see is no reason for a new model (3 steps
  of training kept new weights for -0.05 %, its interval -0.1 % to -0.0 %);
- **no file worse**: no held-out file's new E lies above its old E's interval;
- **trust guard**: the guard falls back (wholly or in part) on no more held-out frames than before;
- **paint check**: on ``PAINT_SCANS`` simulated scans of surfaces without a lattice (the fixed test seeds of
  ``maed eval --families``), the new weights invent no more Fourier peaks that neither the input nor the
  clean surface has than the old ones, and their PSNR is not below the old one's beyond its interval.

The base weights are never written to; the new checkpoint (``maed train``'s format, with a card of
everything above) and a readable ``.json`` beside it are written whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import __version__
from .atomic import write_bytes_atomic
from .data import SIMULATOR_VERSION
from .data.columns import column_pairs
from .data.real_pairs import PassPair, make_pass_pair
from .denoise import denoise_array
from .engine.torch_backend import TorchBackend
from .export import export_onnx
from .file_hash import file_sha256
from .lattice import peak_mask, power_spectrum, significant_peaks
from .metrics import interval, psnr
from .model import passes_taken
from .model.checkpoint import load_model, save_checkpoint, weights_file, weights_sha256
from .passes import display_unit, guarded_outputs, pick_pair
from .progress import FileProgress
from .registration import register, speed_ratio
from .scanfiles import ChannelImage, ScanFileError, is_saved_scan, known_retrace, not_a_file, read_file, scanned_upwards
from .trace_retrace import Error, paired_change, row_errors, summarise
from .training.dataset import TrainingPairs
from .training.trainer import training_loss

PATCH = 96
BATCH = 8
FEW_STEPS = 300
"""Fewer training steps than this cannot be expected to earn acceptance: the gains of ``docs/results/adapt.md`` came
from 700 to 1,900 steps (5 to 15 minutes on the 2-core CPU). A refusal after fewer says so."""
LR_SHARE = 0.1
"""The learning rate: this share of the base weights' last training stage's (``DEFAULT_LR`` where unrecorded)."""
DEFAULT_LR = 5e-4
SEED_BASE = 700_000_000
"""Simulated pairs of adaptation: below the validation and test seeds, apart from ``maed train``'s own streams."""
PAINT_FAMILIES = ("adsorbates", "steps", "standing_waves")
PAINT_SCANS = 12
PAINT_SIZE = 128
INVENTED_GAIN = 2.0
"""An output peak the input lacks holds more than this times the input's power in its 3x3 bins (``invented_peaks``)."""
KEPT_OLD = 3
"""Exit status when the new weights fail a test and the old model stays."""


@dataclass
class ScanInput:
    """One file given to ``maed adapt``: its trace and, where recorded, its retrace (``passes.pick_pair``)."""

    path: Path
    trace: ChannelImage
    retrace: ChannelImage | None
    sha256: str

    @property
    def rows(self) -> np.ndarray:
        """The rows measured in every pass the file has."""
        rows = self.trace.measured_rows
        return rows & self.retrace.measured_rows if self.retrace is not None else rows

    def record(self) -> dict:
        return {
            "file": str(self.path.resolve()),
            "sha256": self.sha256,
            "channel": self.trace.name,
            "unit": self.trace.unit,
            "shape": list(self.trace.data.shape),
            "rows_measured": int(self.rows.sum()),
            "passes": 1 if self.retrace is None else 2,
        }


def read_saved(folder: Path) -> ScanInput:
    """A scan the bridge saved (``scanfiles.saved``) as a ``ScanInput``: the trace and, where any row has it, the
    retrace (rows never scanned are NaN); a ValueError says why it cannot be used."""
    try:
        saved_scan, digest = read_file(folder), file_sha256(folder)
    except (ScanFileError, OSError) as exc:
        raise ValueError(f"{folder}: cannot read the saved scan: {exc}") from None
    trace = saved_scan.images[0]
    if trace.name != "Z":
        raise ValueError(f"{folder}: channel {trace.name!r}: adapting takes the topograph (Z)")
    retrace = saved_scan.images[1] if len(saved_scan.images) > 1 else None
    scan = ScanInput(folder, trace, retrace, digest)
    if not scan.rows.any():
        raise ValueError(f"{folder}: no row measured in full{' in both passes' if scan.retrace is not None else ''}")
    return scan


def read_scans(paths: list[Path]) -> list[ScanInput]:
    """Every file read at its topograph (``pick_pair``), and every folder the bridge saved a scan to (``read_saved``);
    a ValueError names the first that does not read."""
    scans = []
    for path in paths:
        if path.is_dir():
            if is_saved_scan(path):
                scans.append(read_saved(path))
                continue
            raise ValueError(f"{path} is a folder; give the scan files in it, or folders the bridge saved scans to")
        if not path.is_file():
            raise ValueError(f"{path}: {not_a_file(path)}")
        try:
            trace, retrace = pick_pair(path)
        except ScanFileError as exc:
            raise ValueError(f"{exc} (maed adapt reads instrument files with both passes: .sxm, .dat, .sm4, .Z_mtrx, .gwy)") from None
        scans.append(ScanInput(path, trace, retrace, hashlib.sha256(path.read_bytes()).hexdigest()))
    return scans


def pass_pairs(scans: list[ScanInput]) -> dict[Path, PassPair | str]:
    """Each two-pass file's registered pass pair (``real_pairs.make_pass_pair``), or why it makes none."""
    return {
        s.path: make_pass_pair(str(s.path), s.trace.data, s.retrace.data, PATCH, speed_ratio(s.trace.header))
        for s in scans
        if s.retrace is not None
    }


def split(
    scans: list[ScanInput], held_out: list[Path], note, registered: dict[Path, PassPair | str]
) -> tuple[list[ScanInput], list[ScanInput]]:
    """(training, held-out): the files named by ``held_out``, else the two-pass file with the most rows that leaves
    another file to learn from (``registered``: which make a pass pair); the rest train. A one-pass file cannot teach
    (``note`` says so) but can be held out."""
    wanted = {p.resolve() for p in held_out}
    two_pass = [s for s in scans if s.retrace is not None]
    if len(two_pass) < 2:
        one_pass = [str(s.path) for s in scans if s.retrace is None]
        raise ValueError(
            f"{len(two_pass)} of the {len(scans)} files have both passes (trace and retrace); "
            "maed adapt needs at least two: one to learn from and one to hold out"
            + (f" (one pass only: {', '.join(one_pass)})" if one_pass else "")
        )
    if wanted:
        held = [s for s in scans if s.path.resolve() in wanted]
    else:
        largest = sorted(two_pass, key=lambda s: (int(s.rows.sum()), s.trace.data.size), reverse=True)
        teaching = [s for s in two_pass if isinstance(registered.get(s.path), PassPair)]
        # Held out, the only file that teaches would leave nothing to learn from: the next largest judges instead.
        choice = next((s for s in largest if any(t is not s for t in teaching)), largest[0])
        held = [choice]
        why = "the file with both passes and the most rows"
        if choice is not largest[0]:
            why = f"the next with both passes and the most rows: {largest[0].path}, the first, is the only one to learn from"
        note(f"held out: {choice.path} ({why}; choose with --held-out)")
    if not any(s.retrace is not None for s in held):
        raise ValueError("no held-out file has both passes: the trace/retrace error that judges the new weights needs at least one")
    training = []
    for s in scans:
        if s in held:
            continue
        if s.retrace is None:
            note(f"{s.path}: one pass only (no retrace): it cannot teach; give it with --held-out to have the trust guard check it")
            continue
        training.append(s)
    if not training:
        raise ValueError("every file with both passes is held out: none is left to learn from")
    return training, held


def training_pairs(scans: list[ScanInput], registered: dict[Path, PassPair | str], note) -> tuple[list[PassPair], dict[Path, str]]:
    """The registered pass pair of each training file (``pass_pairs``), and why each of the others cannot teach (also
    told to ``note``)."""
    pairs, left_out = [], {}
    for s in scans:
        pair = registered[s.path]
        if isinstance(pair, PassPair):
            pairs.append(pair)
        else:
            left_out[s.path] = pair
            note(f"{s.path}: not trained on: {pair}")
    if not pairs:
        why = "; ".join(f"{Path(path).name}: {reason}" for path, reason in left_out.items())
        raise ValueError(f"no training file makes a trace/retrace pair to learn from ({why}); --held-out may hold out another")
    return pairs, left_out


# ---- fine-tuning ----------------------------------------------------------------------------------------------


def fine_tune(
    model: torch.nn.Module,
    levelling: str,
    base_config: dict,
    pairs: list[PassPair],
    sim_share: float,
    seconds: float,
    max_steps: int | None,
    lr: float,
    seed: int = 0,
) -> dict:
    """Train ``model`` in place on pass pairs and simulated pairs for ``seconds`` (or ``max_steps``); what it did."""
    torch.manual_seed(seed)
    stream = TrainingPairs(
        PATCH,
        first_seed=SEED_BASE + seed * 10_000_000,
        pass_pairs=pairs,
        pair_fraction=1.0 - sim_share,
        background=bool(base_config.get("background", False)),
        noise_mix=bool(base_config.get("noise_mix", False)),
        levelling=levelling,
    )
    batches = iter(DataLoader(stream, batch_size=BATCH, num_workers=0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    grad_weight = float(base_config.get("grad_weight", 0.0))
    model.train()
    for module in model.modules():  # BatchNorm statistics stay the base's: a few files' crops would drag them
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    step, losses, started = 0, [], time.monotonic()
    bar = tqdm(
        total=1000, desc="adapt", dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
    )

    def done() -> float:
        share = (time.monotonic() - started) / seconds if seconds > 0 else 1.0
        return max(share, step / max_steps if max_steps else 0.0)

    while done() < 1.0:
        x, y, kind = next(batches)
        loss = training_loss(model, x, y, grad_weight, 0.0, kind)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        losses.append(float(loss.item()))
        bar.n = min(1000, int(1000 * done()))
        bar.set_postfix_str(f"step {step}, loss {np.mean(losses[-20:]):.4f}")
    bar.n = 1000
    bar.close()
    model.eval()
    return {
        "steps": step,
        "seconds": round(time.monotonic() - started, 1),
        "lr": lr,
        "sim_share": sim_share,
        "patch": PATCH,
        "batch": BATCH,
        "grad_weight": grad_weight,
        "levelling": levelling,
        "loss_first_20": float(np.mean(losses[:20])) if losses else None,
        "loss_last_20": float(np.mean(losses[-20:])) if losses else None,
    }


# ---- the tests the new weights must pass --------------------------------------------------------------------


def judge_held_out(scans: list[ScanInput], backends: dict) -> dict:
    """Per held-out file: the trace/retrace error of raw and of each back end (``"old"``, ``"new"``) with intervals,
    the per-row squared errors, and the frames the guard did not publish the network's output on."""
    files = []
    with FileProgress(len(scans), "held out") as progress:
        for s in scans:
            progress.stage(s.path.name, "each pass denoised by the old and the new weights")
            files.append(_judged(s, backends))
            progress.done()
    return {"files": files}


def _judged(s: ScanInput, backends: dict) -> dict:
    """``judge_held_out``'s figures of one file."""
    rows = s.rows
    trace = s.trace.data[rows]
    retrace = s.retrace.data[rows] if s.retrace is not None else None
    up = scanned_upwards(s.trace)
    lt, out_t, verdicts_t = guarded_outputs(trace, backends, retrace, up, retrace=known_retrace(s.trace))
    figures = {
        "file": str(s.path.resolve()),
        "unit": s.trace.unit,
        "guard_not_network": {name: int(v != "network") for name, v in verdicts_t.items()},
    }
    if retrace is not None:
        lr, out_r, verdicts_r = guarded_outputs(retrace, backends, trace, up, retrace=known_retrace(s.retrace))
        for name, v in verdicts_r.items():
            figures["guard_not_network"][name] += int(v != "network")
        registration = register(lt, lr, speed_ratio=speed_ratio(s.trace.header))
        figures["rows"] = {"raw": row_errors(lt, lr, lt, lr, registration)}
        for name in backends:
            figures["rows"][name] = row_errors(out_t[name], out_r[name], lt, lr, registration)
        figures["error"] = {name: summarise(r) for name, r in figures["rows"].items()}
    return figures


def held_out_change(files: list[dict]) -> Error:
    """The relative change of E^2 from old to new over the held-out files with both passes, each file weighed by its
    own old E^2 (``trace_retrace.paired_change``)."""
    new, old = [], []
    for f in files:
        if "rows" in f:
            scale = f["rows"]["old"].mean()
            new.append(f["rows"]["new"] / scale)
            old.append(f["rows"]["old"] / scale)
    return paired_change(np.concatenate(new), np.concatenate(old))


def invented_peaks(output: np.ndarray, noisy: np.ndarray, clean: np.ndarray) -> int:
    """Significant Fourier peaks of ``output`` that the input lacks: more than one bin from every peak of the input and
    of the clean surface, and with more than ``INVENTED_GAIN`` times the input's power in their 3x3 bins.

    The gain matters: a denoiser lowers the noise floor, so structure too faint to stand out of the input's spectrum
    (a step's harmonics, a standing wave) stands out of the output's without having been added; a painted
    pattern is power the input did not have.
    """
    p_out, p_in = power_spectrum(output), power_spectrum(noisy)
    known = np.concatenate([significant_peaks(p_in), significant_peaks(power_spectrum(clean))])
    allowed = peak_mask(p_out.shape, known)
    box = np.ones((3, 3))
    gain = ndimage.convolve(p_out, box, mode="wrap") / np.maximum(ndimage.convolve(p_in, box, mode="wrap"), 1e-300)
    return int(sum(not allowed[r, c] and gain[r, c] > INVENTED_GAIN for r, c in significant_peaks(p_out)))


def paint_check(backends: dict, count: int | None = None, size: int = PAINT_SIZE) -> dict:
    """Per back end, on ``count`` (``PAINT_SCANS``) simulated scans without a lattice: invented peaks (total) and PSNR
    (dB), and the new minus old PSNR with its 95 % interval."""
    count = PAINT_SCANS if count is None else count
    per_family = math.ceil(count / len(PAINT_FAMILIES))
    scans = [p for family in PAINT_FAMILIES for p in column_pairs(family, per_family, size)][:count]
    invented = {name: 0 for name in backends}
    scores: dict[str, list[float]] = {name: [] for name in backends}
    for pair in tqdm(scans, desc="paint check", unit="scan", disable=None):
        for name, backend in backends.items():
            out = denoise_array(pair.noisy, backend)
            invented[name] += invented_peaks(out, pair.noisy, pair.clean)
            scores[name].append(psnr(out, pair.clean))
    mean, low, high = interval(np.array(scores["new"]) - np.array(scores["old"]))
    return {
        "scans": len(scans),
        "families": list(PAINT_FAMILIES),
        "size": size,
        "invented_peaks": invented,
        "psnr": {name: float(np.mean(v)) for name, v in scores.items()},
        "psnr_change": {"value": float(mean), "low": float(low), "high": float(high)},
    }


MIN_GAIN = 0.01
"""The least relative drop of the held-out E^2 that the whole 95 % interval must show. E^2 holds the raw passes' own
noise (E^2 = e^2 + s^2 for a true error e), so 1 % of it is more of the error the model makes: where e^2 is a fifth
of s^2, a tenth less of e^2."""


def failed_tests(change: Error, files: list[dict], paint: dict) -> list[str]:
    """Each test the new weights fail, in words; empty: keep them."""
    failed = []
    if not change.high < -MIN_GAIN:
        failed.append(
            f"held-out error: E^2 changed by {change.value:+.1%} (95 % interval {change.low:+.1%} to "
            f"{change.high:+.1%}); the whole interval must lie below {-MIN_GAIN:+.0%}"
        )
    for f in files:
        if "error" in f and f["error"]["new"].value > f["error"]["old"].high:
            old, new = f["error"]["old"], f["error"]["new"]
            scale, unit = display_unit(f["unit"], old.value)
            failed.append(
                f"no file worse: {f['file']}: E rose from {old.value * scale:.4g} (interval "
                f"{old.low * scale:.4g} to {old.high * scale:.4g}) to {new.value * scale:.4g} {unit}"
            )
    fell_old = sum(f["guard_not_network"]["old"] for f in files)
    fell_new = sum(f["guard_not_network"]["new"] for f in files)
    if fell_new > fell_old:
        failed.append(f"trust guard: it fell back on {fell_new} held-out frames with the new weights, {fell_old} with the old")
    if paint["invented_peaks"]["new"] > paint["invented_peaks"]["old"]:
        failed.append(
            f"paint check: the new weights invent {paint['invented_peaks']['new']} Fourier peaks on "
            f"{paint['scans']} simulated scans without a lattice, the old {paint['invented_peaks']['old']}"
        )
    change_db = paint["psnr_change"]
    if change_db["high"] < 0:
        failed.append(
            f"paint check: PSNR on simulated scans fell by {-change_db['value']:.2f} dB "
            f"(interval {change_db['low']:+.2f} to {change_db['high']:+.2f} dB)"
        )
    return failed


# ---- the command ------------------------------------------------------------------------------------------------


def _held_out_record(files: list[dict]) -> list[dict]:
    out = []
    for f in files:
        record = {"file": f["file"], "unit": f["unit"], "guard_not_network_frames": f["guard_not_network"]}
        if "error" in f:
            record["trace_retrace"] = {name: e.as_dict() for name, e in f["error"].items()}
            record["rows_compared"] = len(f["rows"]["raw"])
        out.append(record)
    return out


def check_output(out: Path, base: str, force: bool) -> None:
    """Refuse an output that is not a ``.pt``, is the base weights, or exists (unless ``force``)."""
    if out.suffix != ".pt":
        raise ValueError(f"-o {out}: the checkpoint's name must end in .pt (maed denoise --model reads a path by it)")
    if out.resolve() == weights_file(base).resolve():
        raise ValueError(f"-o {out} is the base model's weights; the base is never written to: choose another name")
    for path in (out, out.with_suffix(".json"), out.with_suffix(".onnx")):
        if path.exists() and not force:
            raise ValueError(f"{path} exists; give --force to replace it")
    if not out.parent.is_dir():
        raise ValueError(f"-o {out}: no folder {out.parent}")
    if not os.access(out.parent, os.W_OK):  # found before the run, not at its end
        raise ValueError(f"-o {out}: the folder {out.parent} cannot be written to")


def write_adapted(out: Path, model: torch.nn.Module, config: str, levelling: str, card: dict) -> None:
    """The checkpoint (``maed train``'s format, the card inside) and ``<out>.json``, each written whole or not at all."""
    save_checkpoint(out, model, config, extra={"levelling": levelling, "card": card})
    text = json.dumps({**card, "weights_sha256": weights_sha256(out)}, indent=1)
    write_bytes_atomic(out.with_suffix(".json"), (text + "\n").encode())


@dataclass
class Round:
    """One adaptation and its verdict (``adapt_round``): the fine-tuned model, the tests it failed (empty: keep it)
    and the card that goes with it."""

    model: torch.nn.Module
    config: str
    levelling: str
    failed: list[str]
    card: dict

    @property
    def kept(self) -> bool:
        return not self.failed


def load_base(base: str) -> tuple[torch.nn.Module, dict]:
    """The base model and its card; a one-line ValueError for an unknown model or a file that is no checkpoint."""
    if base.endswith(".onnx") or base.endswith(".engine"):
        raise ValueError(f"--from {base}: adapting needs the torch weights (a shipped name or a .pt checkpoint)")
    model, card = load_model(base)  # a ValueError for an unknown model, a missing file or one that is no checkpoint
    if passes_taken(model) != 1:
        raise ValueError(f"--from {base}: a two-pass model; maed adapt fits one-pass models (each pass predicts the other)")
    return model, card


def adapt_round(
    scans: list[ScanInput],
    held_out: list[Path],
    base: str,
    seconds: float,
    sim_share: float,
    max_steps: int | None,
    seed: int,
    note,
    registered: dict[Path, PassPair | str] | None = None,
    why_threads: str | None = None,
) -> Round:
    """Steps 2 to 6 of ``maed adapt`` (``docs/adapt.md``) on scans already read: hold out, register, fine-tune
    ``base`` for ``seconds`` (or ``max_steps``), judge on the held-out scans and the paint check. Writes nothing.
    A ValueError (one line) where the scans cannot make a round (too few pairs); ``maed serve --adapt`` runs it too,
    passing the pass pairs it figured as each scan came (``registered``): each file is registered once.
    ``why_threads``: why torch runs on fewer threads than cores, said as the fine-tuning begins."""
    started = time.monotonic()
    model, card = load_base(base)
    base_sha = weights_sha256(weights_file(base))
    known = dict(registered or {})
    if not held_out:  # choosing the held-out file needs to know which files teach
        known |= pass_pairs([s for s in scans if s.path not in known])
    training, held = split(scans, held_out, note, known)
    known |= pass_pairs([s for s in training if s.path not in known])
    pairs, left_out = training_pairs(training, known, note)
    names = ", ".join(Path(p.name).name for p in pairs)
    note(
        f"learning from {len(pairs)} file{'s' if len(pairs) > 1 else ''} ({names}), judging on {len(held)} held out; "
        f"base {base} ({card['config']}, levelling {card['levelling']})"
    )
    if why_threads:
        note(why_threads)
    base_config = card.get("train_config") or card.get("base_train_config") or {}
    lr = LR_SHARE * float(base_config.get("lr", DEFAULT_LR))
    training_record = fine_tune(model, card["levelling"], base_config, pairs, sim_share, seconds, max_steps, lr, seed)
    with tempfile.TemporaryDirectory(prefix="maed-adapt-") as tmp:
        candidate = Path(tmp) / "candidate.pt"
        save_checkpoint(candidate, model, card["config"], extra={"levelling": card["levelling"]})
        backends = {"old": TorchBackend(base), "new": TorchBackend(str(candidate))}
        judged = judge_held_out(held, backends)
        paint = paint_check(backends)
    change = held_out_change(judged["files"])
    failed = failed_tests(change, judged["files"], paint)
    for f in judged["files"]:
        if "error" in f:
            raw, old, new = (f["error"][name] for name in ("raw", "old", "new"))
            scale, unit = display_unit(f["unit"], raw.value)
            note(
                f"held out {Path(f['file']).name}: trace/retrace error raw {raw.value * scale:.4g}, old "
                f"{old.value * scale:.4g} ({old.low * scale:.4g}-{old.high * scale:.4g}), new {new.value * scale:.4g} "
                f"({new.low * scale:.4g}-{new.high * scale:.4g}) {unit}"
            )
    note(
        f"held-out E^2 change {change.value:+.1%} (95 % interval {change.low:+.1%} to {change.high:+.1%}); paint "
        f"check: invented peaks old {paint['invented_peaks']['old']} new {paint['invented_peaks']['new']}, PSNR "
        f"change {paint['psnr_change']['value']:+.2f} dB"
    )
    card_out = {
        "adapted_from": {"model": base, "config": card["config"], "weights_sha256": base_sha, "levelling": card["levelling"]},
        "training_files": [s.record() | {"trained_on": s.path not in left_out, "why_not": left_out.get(s.path)} for s in training],
        "held_out_files": [s.record() for s in held],
        "fine_tune": training_record,
        "base_train_config": base_config,
        "held_out": {"files": _held_out_record(judged["files"]), "e2_change": change.as_dict()},
        "paint_check": paint,
        "kept": not failed,
        "simulator": SIMULATOR_VERSION,
        "maed_version": __version__,
        "seconds": round(time.monotonic() - started, 1),
    }
    return Round(model, card["config"], card["levelling"], failed, card_out)


def adapt(
    scan_paths: list[Path],
    base: str,
    out: Path,
    held_out: list[Path],
    minutes: float,
    sim_share: float,
    max_steps: int | None = None,
    seed: int = 0,
    force: bool = False,
    why_threads: str | None = None,
) -> int:
    """``maed adapt``: 0 where the new weights are kept and written, ``KEPT_OLD`` where the old model stays.
    ``why_threads``: why torch runs on fewer threads than cores, said as training begins."""
    if not 0.0 <= sim_share <= 1.0:
        raise ValueError(f"--sim-share must be between 0 and 1, got {sim_share}")
    if not minutes > 0 and not max_steps:  # NaN too: it ran no step and judged the base against itself
        raise ValueError(f"--minutes must be above 0, got {minutes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--steps must be at least 1, got {max_steps}")
    if base.endswith(".onnx") or base.endswith(".engine"):
        raise ValueError(f"--from {base}: adapting needs the torch weights (a shipped name or a .pt checkpoint)")
    check_output(out, base, force)
    started = time.monotonic()

    def note(message: str) -> None:
        tqdm.write(f"maed: {message}", file=sys.stderr)

    load_base(base)  # an unknown model or a file that is no checkpoint is refused before any scan is read
    given: dict[Path, Path] = {}
    for i, path in enumerate([*scan_paths, *held_out]):
        if path.resolve() in given and i < len(scan_paths):  # a held-out file may be among the scans too (the help)
            note(f"{path}: given twice (as {given[path.resolve()]}): read once")
        given.setdefault(path.resolve(), path)  # each file once, as first named
    count = len(given)
    note(f"reading {count} scan file{'s' if count != 1 else ''} and registering their passes")  # seconds before the first bar
    scans = read_scans(list(given.values()))
    formats = sorted({s.trace.format for s in scans})
    if len(formats) > 1:  # the command is sold as fitting one instrument: say where the files are not one
        note(
            f"the files come from {len(formats)} file formats ({', '.join(formats)}), so from more than one instrument: "
            "maed adapt fits one instrument's noise, and mixed it fits their mean, which may suit none; adapt on each "
            "instrument's files apart"
        )
    result = adapt_round(scans, held_out, base, 60.0 * minutes, sim_share, max_steps, seed, note, why_threads=why_threads)
    if result.failed:
        for reason in result.failed:
            note(f"failed: {reason}")
        steps = result.card["fine_tune"]["steps"]
        if steps < FEW_STEPS:
            note(
                f"only {steps} training steps ran; the gains of docs/results/adapt.md came from 700 to 1,900 steps "
                "(5 to 15 minutes on a 2-core CPU): give more --minutes"
            )
        note(f"kept the old model ({base}); nothing written ({time.monotonic() - started:.0f} s)")
        return KEPT_OLD
    for f in result.card["held_out"]["files"]:
        error = f.get("trace_retrace", {})
        if error and error["new"]["value"] > error["raw"]["value"]:
            note(
                f"{Path(f['file']).name}: even the new weights lie further from the other pass than the raw pass does: "
                "on such scans they still change more than the noise; compare with the raw image before trusting fine detail"
            )
    write_adapted(out, result.model, result.config, result.levelling, result.card)
    onnx_path = out.with_suffix(".onnx")
    export_onnx(str(out), onnx_path)  # the fast CPU back end: a .pt alone runs on torch, several times slower
    note(
        f"kept the new weights: {out}, {out.with_suffix('.json')} and {onnx_path} ({time.monotonic() - started:.0f} s); "
        f"maed denoise --model {shlex.quote(str(onnx_path))} runs them on ONNX Runtime, --model {shlex.quote(str(out))} on torch"
    )
    return 0
