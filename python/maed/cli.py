"""The ``maed`` command line: ``denoise``, ``train``, ``eval``, ``export onnx`` and ``demo``.

Errors a user can cause (a bad file, an unknown model) print one line naming the problem and
exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from argparse import SUPPRESS
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .denoise_files import check_output_folder, check_writable
from .normalise import LEVELLINGS
from .scanfiles import is_saved_scan
from .training.config import TrainConfig, protocol_learning_rate
from .training.place import is_main_process
from .zoo import ARCHITECTURES, PRODUCT, TWO_PASS_PRODUCT, default_model


def _error(message: str) -> None:
    print(f"maed: error: {message}", file=sys.stderr)


PASS_CHOICES = ("trace", "retrace", "both", "forward", "backward")
EVAL_MIN_SIZE = 32
"""Smallest simulated scan ``maed eval`` scores: SSIM's window and the lattice checks need room (at 8 pixels SSIM's own
error named no option)."""


def _pass(args: argparse.Namespace) -> str:
    """``--pass`` (forward and backward read as trace and retrace), or the deprecated ``--direction``."""
    from .scanfiles import canonical_pass

    old = args.deprecated_direction
    if old is not None:
        print(
            f"maed: warning: --direction is deprecated; use --pass {canonical_pass(old)} (forward is the trace, backward the retrace)",
            file=sys.stderr,
        )
        if args.pass_ is not None and (args.pass_ == "both" or canonical_pass(args.pass_) != canonical_pass(old)):
            raise ValueError(f"--pass {args.pass_} and --direction {old} disagree; give --pass only")
    return args.pass_ or old or "trace"  # canonical, and checked against the model, in denoise.check_pass


def _cmd_denoise(args: argparse.Namespace) -> int:
    from .denoise import check_pass
    from .denoise_files import denoise_files
    from .engine import load_backend

    pass_ = _pass(args)
    if args.model is None:
        args.model = default_model(pass_)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if not args.recursive:
        folder = next((p for p in args.inputs if Path(p).is_dir() and not is_saved_scan(p)), None)
        if folder is not None:
            raise ValueError(f"{folder} is a folder; give -r to denoise the scans under it")
        if args.jobs is not None:  # one process denoises the files given; said, not silently ignored
            raise ValueError("--jobs sets the worker processes of -r; without -r the files are denoised one by one")
    backend = load_backend(args.backend, args.model, threads=args.threads)
    pass_ = check_pass(backend, pass_)
    print(f"maed: model {backend.model} on back end {backend.name}", file=sys.stderr)
    failures: list[str] = []

    def report(message: str) -> None:
        failures.append(message)
        tqdm.write(f"maed: error: {message}", file=sys.stderr)  # above the progress bar, not through it

    def note(message: str) -> None:
        tqdm.write(f"maed: {message}", file=sys.stderr)

    if args.recursive:
        return _denoise_tree(args, backend, pass_, report, note)
    inputs = list(dict.fromkeys(args.inputs))  # a file given twice is denoised once (its second run said it replaced the first)
    if len(inputs) < len(args.inputs):
        note(f"{len(args.inputs) - len(inputs)} file(s) given more than once: each denoised once")
    written = denoise_files(
        inputs, args.output, backend, report, channel=args.channel, pass_=pass_, on_note=note, trace_retrace=args.trace_retrace
    )
    for path in written:
        print(path)
    return 1 if failures else 0


def _denoise_tree(args: argparse.Namespace, backend, pass_: str, report, note) -> int:
    """``maed denoise -r``: folder trees into a mirror tree (``maed.batch``), a summary at the end."""
    from . import batch
    from .denoise_files import record_notes

    tasks, refused = batch.collect([Path(p) for p in args.inputs], args.output)
    for message in refused:
        report(message)
    if not tasks:  # nothing to run: no worker processes, no summary of no files
        return 1
    jobs = args.jobs or batch.cores()
    print(f"maed: {len(tasks)} scan files, {min(jobs, max(len(tasks), 1))} worker processes", file=sys.stderr)

    def told(outcome: batch.Outcome) -> None:
        if outcome.status == "failed":
            report(outcome.message)
        elif outcome.status == "done":
            for message in record_notes(outcome.path, outcome.record, pass_):
                note(message)

    outcomes = batch.run(tasks, backend, args.channel, pass_, jobs, args.backend, args.model, told, args.trace_retrace)
    print(batch.summary(outcomes, len(refused)))
    return 1 if any(o.status == "failed" for o in outcomes) or refused else 0


SHIP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
"""A name weights may be shipped under: a model name, never a path."""


def _ship_destination(args: argparse.Namespace, cfg: TrainConfig) -> Path | None:
    """Where ``--ship``/``--ship-as`` will write the run's weights (None: nowhere), checked before any training: a
    name, not a path; never over another architecture's shipped weights; over the same one's only with ``--force``."""
    if not (args.ship or args.ship_as):
        return None
    from .model.checkpoint import load_checkpoint, shipped_weights

    name = args.ship_as or cfg.model
    if not SHIP_NAME.fullmatch(name):
        raise ValueError(f"--ship-as {name!r}: a model name of lower-case letters, digits and '-', not a path")
    dest = shipped_weights(name)
    if dest.exists():
        shipped = load_checkpoint(dest).get("config")
        if shipped != cfg.model:
            raise ValueError(
                f"--ship-as {name}: the weights shipped as {dest.stem} are a {shipped} network and this run trains {cfg.model}; "
                "choose another name"
            )
        if not args.force:
            raise ValueError(f"{dest} holds the shipped {dest.stem} weights: add --force to replace them (and {dest.stem}.onnx)")
    return dest


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    out, cfg = _train_settings(args)
    dest = _ship_destination(args, cfg)
    report = train(cfg, out, resume=args.resume, force=args.force)
    if not is_main_process():  # under torchrun the first process reports and ships, once
        return 0
    print(f"final validation PSNR {report['psnr_out']:.2f} dB (input {report['psnr_in']:.2f} dB); checkpoint {out}/last.pt")
    if dest is not None:
        from .data import SIMULATOR_VERSION
        from .export import ship_onnx
        from .model.checkpoint import ship_weights

        ship_weights(
            out / "last.pt",
            dest,
            card={
                "train_config": vars(cfg),
                "validation": report,
                "maed_version": __version__,
                "simulator": SIMULATOR_VERSION,
            },
        )
        print(f"shipped weights written to {dest}")
        # The ONNX file is what ``maed denoise`` and the bridge run: shipped alone, the .pt would not be used.
        print(f"and their ONNX file, {ship_onnx(dest.stem)}")
    return 0


def _train_settings(args: argparse.Namespace) -> tuple[Path, TrainConfig]:
    """The checkpoint folder and the settings of ``maed train``: the options given, over the run's own settings with
    ``--resume`` (``training.config.resumed_config``), else over the defaults, the levelling of ``--init``'s weights
    where ``--levelling`` is not given, and the model's protocol learning rate where ``--lr`` is not."""
    from .training.config import OPTIONS, resumed_config

    # Options not given are absent from ``args`` (their default is ``SUPPRESS``); argparse names each by its option.
    dests = {field: option.removeprefix("--").replace("-", "_") for field, option in OPTIONS.items()}
    given = {field: getattr(args, dest) for field, dest in dests.items() if hasattr(args, dest)}
    out = Path(args.out or f"runs/{given.get('model', TrainConfig.model)}")
    if args.resume and (out / "last.pt").exists():
        from .model.checkpoint import load_checkpoint

        saved = load_checkpoint(out / "last.pt").get("train_config")
        if saved is not None:
            return out, resumed_config(saved, given)
    model = given.get("model", TrainConfig.model)
    defaults = {"lr": protocol_learning_rate(model)}
    if "init" in given:
        card = _init_card(given["init"])
        if "levelling" not in given:
            defaults["levelling"] = card["levelling"]
        _note_recipe_not_taken(given["init"], card.get("train_config") or {}, TrainConfig(**(defaults | given)), set(given))
    return out, TrainConfig(**(defaults | given))


RECIPE = ("lr", "noise_mix", "real_fraction", "grad_weight", "patch", "batch_size")
"""Settings of ``--init``'s own training that ``maed train`` names where a run starting from it differs, unasked."""


def _note_recipe_not_taken(init: str, theirs: dict, cfg: TrainConfig, given: set[str]) -> None:
    """Say which of ``--init``'s own recipe (``RECIPE``) this run leaves, where the options did not set them: only
    the weights and their levelling come with ``--init``, and the protocol's learning rate is several times a
    fine-tune's."""
    from .training.config import OPTIONS

    differ = [f for f in RECIPE if f in theirs and f not in given and theirs[f] != getattr(cfg, f)]
    left = [f"{OPTIONS[f]} {getattr(cfg, f)} (theirs: {theirs[f]})" for f in differ]
    if left and is_main_process():
        print(f"maed: note: --init {init} brings its weights and levelling, not its recipe: {'; '.join(left)}", file=sys.stderr)


def _init_card(init: str) -> dict:
    """The card of the weights of ``--init`` (their levelling, and their training settings where recorded)."""
    if Path(init).suffix in (".onnx", ".engine"):
        raise ValueError(f"--init {init}: training starts from torch weights (a shipped name or a .pt checkpoint), not an export")
    from .model.checkpoint import model_card

    return model_card(init)


def _cmd_adapt(args: argparse.Namespace) -> int:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0  # before this command's own work adds to it
    if not args.scans:
        if args.held_out:
            raise ValueError(
                f"no scans to learn from: --held-out took every file after it ({' '.join(args.held_out)}); "
                "give the scans first (maed adapt SCAN... --held-out FILE) or write --held-out=FILE"
            )
        raise ValueError("no scans given: maed adapt SCAN... -o FILE.pt")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    import torch

    from .adapt import adapt
    from .batch import cores
    from .training.place import free_threads

    available = cores()
    threads = args.threads or free_threads(available, load)
    why_threads = None
    if args.threads is None and threads < available:
        why_threads = (
            f"other work keeps about {round(load)} of this computer's {available} cores busy (load {load:.1f}): "
            f"training on {threads} thread{'s' if threads > 1 else ''}, which shares no busy core (--threads to choose)"
        )
    torch.set_num_threads(threads)
    try:
        return adapt(
            [Path(p) for p in args.scans],
            args.base,
            Path(args.output),
            [Path(p) for p in args.held_out or []],
            minutes=args.minutes,
            sim_share=args.sim_share,
            max_steps=args.steps,
            seed=args.seed,
            force=args.force,
            why_threads=why_threads,
        )
    except KeyboardInterrupt:
        # The weights and their records are written only once the verdict is in; a run stopped before has written none.
        if not Path(args.output).exists():
            print(f"maed: adapt stopped before its verdict: nothing written ({args.output} not made)", file=sys.stderr)
        raise


def _cmd_eval(args: argparse.Namespace) -> int:
    # Checked before any model loads or scan is scored: a mistake here is said in one line, not found at the end.
    fewest = 2 if args.families or args.passes else 1  # an interval needs two scans a column
    if args.count is not None and args.count < fewest:
        raise ValueError(f"--count must be at least {fewest}{' for an interval' if fewest > 1 else ''}, got {args.count}")
    if args.size is not None and args.size < EVAL_MIN_SIZE:
        raise ValueError(f"--size must be at least {EVAL_MIN_SIZE} pixels, got {args.size}")
    check_writable(check_output_folder(Path(args.out), "--out"), "--out")
    if args.real:
        from .research.evaluate_real import evaluate_real

        evaluate_real(Path(args.real_dir) if args.real_dir else None, Path(args.out), models=args.models)
        return 0
    # The pages' own defaults where not given (data.columns): the CLI does not load the simulator to learn them.
    columns = {name: value for name, value in (("count", args.count), ("size", args.size)) if value is not None}
    if args.passes:
        from .engine import load_backend
        from .research.evaluate_passes import evaluate_passes

        models = args.models if args.models != [PRODUCT] else [PRODUCT, TWO_PASS_PRODUCT]
        if len(models) != 2:
            raise ValueError(f"--passes compares two models, a one-pass one and a two-pass one; got {len(models)}")
        one_pass, two_pass = (load_backend("auto", name) for name in models)
        evaluate_passes(Path(args.out), one_pass, two_pass, **columns)
        return 0
    if args.families:
        from .engine import load_backend
        from .research.evaluate_families import evaluate_families

        backends = {name: load_backend("auto", name) for name in args.models}
        evaluate_families(Path(args.out), backends, **columns)
        return 0
    from .research.evaluate import evaluate

    evaluate(Path(args.out), models=args.models, count=args.count or 24, size=args.size or 256)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    folder = run_demo(Path(args.out), frames=args.frames, line_rate=args.line_rate, backend=args.backend)
    print(f"demo report written to {folder}")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    import onnx

    from .engine.ops import PLUGIN_OPS
    from .engine.tensorrt.onnx_ops import tensorrt_problems
    from .export import check_destination, default_destination, export_onnx, onnx_vs_torch, ship_onnx

    if args.ship and (args.output or args.fp16 or args.plugins):
        raise ValueError("--ship writes the package's FP32 NAME.onnx; it takes neither -o, --fp16 nor --plugins")
    if args.ship:
        dest = ship_onnx(args.model)
    else:
        dest = Path(args.output) if args.output else default_destination(args.model, args.fp16, args.plugins)
        dest = check_destination(dest, args.force)
        export_onnx(args.model, dest, fp16=args.fp16, plugins=args.plugins)
    for problem in tensorrt_problems(onnx.load(dest), plugins=PLUGIN_OPS if args.plugins else ()):
        print(f"maed: warning: TensorRT would reject it: {problem}", file=sys.stderr)
    if args.plugins:
        counts = Counter(node.op_type for node in onnx.load(dest).graph.node if node.op_type in PLUGIN_OPS)
        print(
            f"maed: ONNX with TensorRT plugin nodes written ({', '.join(f'{counts[op]} {op}' for op in PLUGIN_OPS)}); "
            "ONNX Runtime cannot run them, so it is not compared with torch",
            file=sys.stderr,
        )
        print(dest)
        return 0
    error = onnx_vs_torch(args.model, dest, (64, 96))
    print(
        f"maed: {'FP16' if args.fp16 else 'FP32'} ONNX written; ONNX Runtime vs torch on a 64x96 scan: "
        f"largest difference {error:.1e} of the output range",
        file=sys.stderr,
    )
    print(dest)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maed", description="MAED-RT: real-time denoising of STM scans")
    parser.add_argument("--version", action="version", version=f"maed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("denoise", help="denoise scan files into OUTDIR/<stem>.npy (and <stem>.gwy for instrument files)")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=".npy, .png or .tif scans, or Nanonis .sxm, Createc .dat, RHK .sm4, "
        "Omicron MATRIX .Z_mtrx/.I_mtrx or Gwyddion .gwy files "
        "(recognised by content); with -r, folders",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTDIR",
        help="folder for the denoised .npy files; instrument files also get a Gwyddion .gwy with raw and denoised image",
    )
    p.add_argument(
        "--channel",
        metavar="NAME",
        help="channel of instrument files, e.g. Z or Current (default: the topograph, or the current of a constant-height scan, said so)",
    )
    p.add_argument(
        "--pass",
        dest="pass_",
        choices=PASS_CHOICES,
        help="pass of instrument files: trace or retrace (forward and backward, the vendors' words, "
        f"are accepted), or both: the trace and the retrace into the two-pass model ({TWO_PASS_PRODUCT} "
        "unless --model names another), one frame out (default: trace)",
    )
    p.add_argument(
        "--direction",
        dest="deprecated_direction",
        choices=("forward", "backward"),
        help="deprecated: --pass trace (forward) or --pass retrace (backward)",
    )
    p.add_argument("--backend", default="auto", help="inference back end: auto, tensorrt, onnx or torch (default: auto)")
    p.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help=f"shipped model name, checkpoint or .onnx file (default: {PRODUCT}; with --pass both {TWO_PASS_PRODUCT})",
    )
    p.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads of the back end (default: one per core; with -r each worker process has one)"
    )
    p.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="INPUTs are folders: denoise every scan under them into the same tree in OUTDIR "
        "(OUTDIR/sub/scan.sxm.npy, ...), skip what an earlier run did with the same input and model, "
        "then print a summary",
    )
    p.add_argument("--jobs", type=int, metavar="N", help="with -r: worker processes (default: one per core)")
    p.add_argument(
        "--trace-retrace",
        action="store_true",
        help="for files with both passes: figure the trace/retrace error (each pass denoised alone against the other "
        "raw pass, the model's beside plane + rows + Gaussian's and raw's) into <stem>.json and say it, with a warning "
        "where the model's output is further from the other pass than raw (intervals apart); about doubles the time per file",
    )
    p.set_defaults(run=_cmd_denoise)

    p = sub.add_parser(
        "train",
        help="train a model on simulated (and optional user) pairs",
        description="The defaults are the protocol every model of the Table 1 comparison is trained "
        "with (docs/baselines.md); the shipped product weights (rt-plane) were trained longer, from the shipped rt (docs/model.md).",
    )
    p.add_argument("--model", default=SUPPRESS, help=f"architecture: {', '.join(ARCHITECTURES)} (default: rt)")
    p.add_argument("--steps", type=int, default=SUPPRESS, help=f"optimiser steps in all (default: {TrainConfig.steps})")
    p.add_argument(
        "--epoch-steps",
        type=int,
        default=SUPPRESS,
        help=f"steps between validation reports and checkpoints (default: {TrainConfig.steps_per_epoch})",
    )
    p.add_argument("--batch-size", type=int, default=SUPPRESS, help=f"samples per step (default: {TrainConfig.batch_size})")
    p.add_argument("--patch", type=int, default=SUPPRESS, help=f"side of the square samples, pixels (default: {TrainConfig.patch})")
    p.add_argument(
        "--lr",
        type=float,
        default=SUPPRESS,
        help=f"peak learning rate (default: {TrainConfig.lr:g}; lower for networks unstable at it, docs/baselines.md)",
    )
    p.add_argument("--seed", type=int, default=SUPPRESS, help="the simulated samples' seed stream (default: 0)")
    p.add_argument("--workers", type=int, default=SUPPRESS, help=f"data-generating processes (default: {TrainConfig.workers})")
    p.add_argument("--pairs", metavar="DIR", default=SUPPRESS, help="user pairs: DIR/noisy/*.npy and DIR/clean/*.npy, half of the samples")
    p.add_argument(
        "--real-refs",
        metavar="DIR",
        default=SUPPRESS,
        help="folder of real scans that become references with simulated artefacts: every scan file in it, or in "
        "this project's folder of real scans (its PROVENANCE.md) the training sources' clean ones, never a test "
        "source's (maed.data.real_refs)",
    )
    p.add_argument(
        "--real-fraction",
        type=float,
        default=SUPPRESS,
        help=f"share of samples drawn from --real-refs (default: {TrainConfig.real_fraction})",
    )
    p.add_argument(
        "--pair-fraction",
        type=float,
        default=SUPPRESS,
        help="share of samples that are trace/retrace pairs of --real-refs's scans (as --real-refs chooses them), one "
        f"pass the input and the other the target (Noise2Noise: maed.data.real_pairs; default: {TrainConfig.pair_fraction})",
    )
    p.add_argument(
        "--background",
        action="store_true",
        default=SUPPRESS,
        help="put half of the simulated surfaces on a smooth random height field, structure to keep",
    )
    p.add_argument(
        "--levelling",
        choices=LEVELLINGS,
        default=SUPPRESS,
        help="what comes off the input before the network: the plane and the line offsets (median of row "
        "differences), or the plane alone, the network then taking the offsets out itself; recorded "
        f"with the weights (maed.normalise; default: {TrainConfig.levelling}, or --init's)",
    )
    p.add_argument(
        "--noise-mix",
        action="store_true",
        default=SUPPRESS,
        help="simulated artefacts in per-sample mixes: each kind present or absent, white noise from "
        "nearly none to the range's top (maed.training.noise_mix), so quiet scans are seen too",
    )
    p.add_argument(
        "--relative-loss",
        action="store_true",
        default=SUPPRESS,
        help="each sample's loss over its noise, so quiet scans (noise far below their relief) count as much as "
        "noisy ones (maed.training.loss.noise_weights)",
    )
    p.add_argument(
        "--quiet-fraction",
        type=float,
        default=SUPPRESS,
        help="share of simulated scans with every artefact but the line offsets scaled down 3 to 200 times, so scans "
        f"whose relief stands far above their noise are seen (maed.training.noise_mix.quiet_ranges; default: {TrainConfig.quiet_fraction})",
    )
    p.add_argument(
        "--grad-weight",
        type=float,
        default=SUPPRESS,
        help=f"weight of the gradient L1 term (default: {TrainConfig.grad_weight}, the Table 1 protocol)",
    )
    p.add_argument(
        "--fourier-weight",
        type=float,
        default=SUPPRESS,
        help="weight of the spectral-peak term, the log power ratio at the clean surface's strongest "
        f"Fourier bins (default: {TrainConfig.fourier_weight}, the Table 1 protocol)",
    )
    p.add_argument(
        "--rows-weight",
        type=float,
        default=SUPPRESS,
        help="weight of the error's level per row, a term of its own beside the pixels' L1: a level left on whole "
        f"rows is what the network lost by on simulators it never saw (default: {TrainConfig.rows_weight})",
    )
    p.add_argument("--out", help="checkpoint folder (default: runs/MODEL)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT/last.pt with its own settings (--steps, --epoch-steps and --workers may change)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out that holds a run, replacing its last.pt (not with --resume); with --ship, replace "
        "the shipped weights of that name",
    )
    p.add_argument(
        "--init",
        metavar="NAME_OR_PATH",
        default=SUPPRESS,
        help="start from these weights (fine-tuning) with a fresh schedule, and their levelling unless --levelling says",
    )
    p.add_argument(
        "--ship", action="store_true", help="write the result as the package's shipped weights (.pt and .onnx), checked before training"
    )
    p.add_argument("--ship-as", metavar="NAME", help="ship under this name instead of the model's (e.g. rt-equal); implies --ship")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser(
        "adapt",
        help="fine-tune a model on your own scans' trace/retrace pairs; kept only where held-out scans improve",
        description="Self-supervised fine-tuning on your scans: each pass predicts the other, registered "
        "(Noise2Noise), mixed with simulated supervised pairs. Whole files are held out; the new weights are kept "
        "only where the held-out trace/retrace error drops beyond its 95 % interval, no held-out file gets worse, "
        "the trust guard falls back no more often and a paint check on simulated scans passes. Otherwise it says "
        "which test failed, writes nothing and exits with status 3 (docs/adapt.md).",
    )
    p.add_argument(
        "scans",
        # "*", not "+": --held-out before the scans takes them all, and _cmd_adapt says so where argparse could not.
        nargs="*",
        metavar="SCAN",
        help="instrument files with both passes (.sxm, .dat, .sm4, .Z_mtrx, .gwy), or folders maed serve saved scans "
        "to; a one-pass scan can only be held out",
    )
    p.add_argument(
        "--from",
        dest="base",
        default=PRODUCT,
        metavar="NAME_OR_PATH",
        help=f"the weights to start from: a shipped name or a .pt checkpoint, never written to (default: {PRODUCT})",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE.pt",
        help="the adapted checkpoint FILE.pt, with FILE.json and FILE.onnx (the fast CPU back end: maed denoise --model "
        "FILE.onnx) beside it",
    )
    p.add_argument(
        "--held-out",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="files to judge on and never train on, among SCANS or besides them; it takes every file after it, so give it "
        "after the scans (default: the file with both passes and the most rows that leaves another to learn from)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: the cores other work leaves free, by the load average: threads that share a busy "
        "core run several times slower)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=5.0,
        help="wall time of the fine-tuning (default: %(default)s); reading the files before it and judging the new weights "
        "after it (each held-out file denoised by both models, a paint check on 12 simulated scans) take a minute or two more",
    )
    p.add_argument("--steps", type=int, metavar="N", help="stop after N steps if the time is not up first")
    p.add_argument("--sim-share", type=float, default=0.5, help="share of simulated supervised pairs in each batch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated pairs and the crops (default: 0)")
    p.add_argument("--force", action="store_true", help="replace an existing FILE.pt and FILE.json")
    p.set_defaults(run=_cmd_adapt)

    p = sub.add_parser("eval", help="PSNR/SSIM/UQI of classical pipelines and models on the simulated test set")
    p.add_argument("--models", nargs="+", default=[PRODUCT], help=f"models to evaluate (default: {PRODUCT})")
    p.add_argument("--count", type=int, help="scans per test column (default: 24; 51 with --families or --passes)")
    p.add_argument("--size", type=int, help="scan size in pixels (default: 256; 128 with --families or --passes)")
    p.add_argument(
        "--families",
        action="store_true",
        help="instead: every surface family and the held-out ones as columns, with 95%% intervals (docs/results/families.md)",
    )
    p.add_argument(
        "--passes",
        action="store_true",
        help=f"instead: every column of --families recorded in both passes, the two-pass model (the second "
        f"of --models, default {TWO_PASS_PRODUCT}) against one pass and the mean of one-pass outputs "
        "(docs/results/passes.md)",
    )
    p.add_argument("--out", default="docs/results", help="folder for the table and figures (default: docs/results)")
    p.add_argument("--real", action="store_true", help="instead: no-reference checks on real instrument scans (docs/results/real.md)")
    p.add_argument(
        "--real-dir", metavar="DIR", help="folder of real scans for --real (default: ../shared/data/real-stm beside the repository)"
    )
    p.set_defaults(run=_cmd_eval)

    p = sub.add_parser("export", help="export a model for other runtimes")
    formats = p.add_subparsers(dest="format", required=True)
    p = formats.add_parser("onnx", help="write the model as ONNX (dynamic batch, height and width; opset 17)")
    p.add_argument("--model", default=PRODUCT, metavar="NAME_OR_PATH", help=f"shipped model name or checkpoint (default: {PRODUCT})")
    p.add_argument("--fp16", action="store_true", help="float16 weights and activations (input and output stay float32)")
    p.add_argument("-o", "--output", metavar="PATH", help="ONNX file to write (default: NAME.onnx or NAME.fp16.onnx here)")
    p.add_argument("--ship", action="store_true", help="write the shipped weights as the package's NAME.onnx")
    p.add_argument("--force", action="store_true", help="replace an existing ONNX file at PATH")
    p.add_argument(
        "--plugins", action="store_true", help="replace the DS blocks and SE fusion by MAED TensorRT plugin nodes (for TensorRT only)"
    )
    p.set_defaults(run=_cmd_export_onnx)

    p = sub.add_parser("demo", help="a simulated STM streams scans through the live bridge; preview and report")
    p.add_argument("--frames", type=int, default=1, help="frames to scan (default: 1)")
    p.add_argument("--line-rate", type=float, default=10.0, help="lines per second, a line being one row's trace and retrace (default: 10)")
    p.add_argument("--backend", default="auto", help="inference back end (default: auto)")
    p.add_argument("--out", default="out/demo", help="report folder (default: out/demo)")
    p.set_defaults(run=_cmd_demo)

    from maed.bridge.commands import add_commands  # serve, listen, control, keys, push-sim, sim-nanonis

    add_commands(sub)
    from maed.engine.tensorrt.commands import add_commands as add_engine_commands  # engine build

    from .research.bench import add_command as add_bench_command

    add_engine_commands(sub)
    add_bench_command(sub)
    return parser


STOPPED = "maed: stopped (Ctrl-C)"


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """The command ``args`` names, its user mistakes and a Ctrl-C each said in one line; its exit status."""
    try:
        return args.run(args)
    except ValueError as exc:  # user mistakes (unknown model, bad option values) are ValueErrors
        if is_main_process():  # under torchrun, said once, not by every copy
            _error(str(exc))
        return 2
    except KeyboardInterrupt:  # Ctrl-C: how a server is stopped, and a long run cut short; no error either way
        if is_main_process():
            tqdm.write(STOPPED, file=sys.stderr)  # on a line of its own, below a progress bar cut short
        return 130


if __name__ == "__main__":
    sys.exit(main())
