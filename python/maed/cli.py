"""The ``maed`` command line: ``denoise``, ``train``, ``eval``, ``export onnx`` and ``demo``.

Errors a user can cause (a bad file, an unknown model) print one line naming the problem and
exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from . import __version__


def _error(message: str) -> None:
    print(f"maed: error: {message}", file=sys.stderr)


def _cmd_denoise(args: argparse.Namespace) -> int:
    from .denoise import denoise_files
    from .engine import load_backend

    backend = load_backend(args.backend, args.model, threads=args.threads)
    print(f"maed: model {backend.model} on back end {backend.name}", file=sys.stderr)
    failures: list[str] = []

    def report(message: str) -> None:
        failures.append(message)
        _error(message)

    written = denoise_files(args.inputs, args.output, backend, report)
    for path in written:
        print(path)
    return 1 if failures else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    cfg = TrainConfig(
        model=args.model, steps=args.steps, steps_per_epoch=args.epoch_steps, batch_size=args.batch_size,
        patch=args.patch, lr=args.lr, seed=args.seed, workers=args.workers, user_pairs=args.pairs, init=args.init,
    )
    report = train(cfg, Path(args.out), resume=args.resume)
    print(f"final validation PSNR {report['psnr_out']:.2f} dB (input {report['psnr_in']:.2f} dB); checkpoint {args.out}/last.pt")
    if args.ship:
        from .data import SIMULATOR_VERSION
        from .model.checkpoint import ship_weights, shipped_weights

        dest = shipped_weights(args.model)
        ship_weights(Path(args.out) / "last.pt", dest, card={
            "train_config": vars(cfg), "validation": report, "maed_version": __version__, "simulator": SIMULATOR_VERSION,
        })
        print(f"shipped weights written to {dest}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    evaluate(Path(args.out), models=args.models, count=args.count, size=args.size)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    folder = run_demo(Path(args.out), frames=args.frames, line_rate=args.line_rate, backend=args.backend)
    print(f"demo report written to {folder}")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    import onnx

    from .engine.onnx_plugins import PLUGIN_OPS
    from .engine.trt_ops import tensorrt_problems
    from .export import default_destination, export_onnx, onnx_vs_torch, ship_onnx

    if args.ship and (args.output or args.fp16 or args.plugins):
        raise ValueError("--ship writes the package's FP32 NAME.onnx; it takes neither -o, --fp16 nor --plugins")
    if args.ship:
        dest = ship_onnx(args.model)
    else:
        dest = Path(args.output) if args.output else default_destination(args.model, args.fp16, args.plugins)
        export_onnx(args.model, dest, fp16=args.fp16, plugins=args.plugins)
    for problem in tensorrt_problems(onnx.load(dest), plugins=PLUGIN_OPS if args.plugins else ()):
        print(f"maed: warning: TensorRT would reject it: {problem}", file=sys.stderr)
    if args.plugins:
        counts = Counter(node.op_type for node in onnx.load(dest).graph.node if node.op_type in PLUGIN_OPS)
        print(f"maed: ONNX with TensorRT plugin nodes written ({', '.join(f'{counts[op]} {op}' for op in PLUGIN_OPS)}); "
              "ONNX Runtime cannot run them, so it is not compared with torch", file=sys.stderr)
        print(dest)
        return 0
    error = onnx_vs_torch(args.model, dest, (1, 1, 64, 96))
    print(f"maed: {'FP16' if args.fp16 else 'FP32'} ONNX written; ONNX Runtime vs torch on a 64x96 scan: "
          f"largest difference {error:.1e} of the output range", file=sys.stderr)
    print(dest)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maed", description="MAED-RT: real-time denoising of STM scans")
    parser.add_argument("--version", action="version", version=f"maed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("denoise", help="denoise scan files into OUTDIR/<stem>.npy")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy, .png or .tif scans")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the denoised .npy files")
    p.add_argument("--backend", default="auto", help="inference back end: auto, tensorrt, onnx or torch (default: auto)")
    p.add_argument("--model", default="rt", metavar="NAME_OR_PATH", help="shipped model name, checkpoint or .onnx file (default: rt)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads of the back end (default: one per core)")
    p.set_defaults(run=_cmd_denoise)

    p = sub.add_parser("train", help="train a model on simulated (and optional user) pairs")
    p.add_argument("--model", default="rt", help="configuration name: rt or paper (default: rt)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--epoch-steps", type=int, default=250, help="steps between validation reports and checkpoints")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="data-generating processes")
    p.add_argument("--pairs", metavar="DIR", help="user pairs: DIR/noisy/*.npy and DIR/clean/*.npy")
    p.add_argument("--out", default="runs/train", help="checkpoint folder (default: runs/train)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", metavar="NAME_OR_PATH", help="start from these weights (fine-tuning) with a fresh schedule")
    p.add_argument("--ship", action="store_true", help="write the result as the package's shipped weights")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser("eval", help="PSNR/SSIM/UQI of classical pipelines and models on the simulated test set")
    p.add_argument("--models", nargs="+", default=["rt"], help="models to evaluate (default: rt)")
    p.add_argument("--count", type=int, default=24, help="scans per test column (default: 24)")
    p.add_argument("--size", type=int, default=256, help="scan size in pixels (default: 256)")
    p.add_argument("--out", default="docs/results", help="folder for the table and figures (default: docs/results)")
    p.set_defaults(run=_cmd_eval)

    p = sub.add_parser("export", help="export a model for other runtimes")
    formats = p.add_subparsers(dest="format", required=True)
    p = formats.add_parser("onnx", help="write the model as ONNX (dynamic batch, height and width; opset 17)")
    p.add_argument("--model", default="rt", metavar="NAME_OR_PATH", help="shipped model name or checkpoint (default: rt)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and activations (input and output stay float32)")
    p.add_argument("-o", "--output", metavar="PATH", help="ONNX file to write (default: NAME.onnx or NAME.fp16.onnx here)")
    p.add_argument("--ship", action="store_true", help="write the shipped weights as the package's NAME.onnx")
    p.add_argument("--plugins", action="store_true",
                   help="replace the DS blocks and SE fusion by MAED TensorRT plugin nodes (for TensorRT only)")
    p.set_defaults(run=_cmd_export_onnx)

    p = sub.add_parser("demo", help="a simulated STM streams scans through the live bridge; preview and report")
    p.add_argument("--frames", type=int, default=1, help="frames to scan (default: 1)")
    p.add_argument("--line-rate", type=float, default=10.0, help="lines per second (default: 10)")
    p.add_argument("--backend", default="auto", help="inference back end (default: auto)")
    p.add_argument("--out", default="out/demo", help="report folder (default: out/demo)")
    p.set_defaults(run=_cmd_demo)

    from maed.bridge.commands import add_commands  # serve, listen, push-sim

    add_commands(sub)
    from maed.engine.commands import add_commands as add_engine_commands  # engine build
    from .bench import add_command as add_bench_command

    add_engine_commands(sub)
    add_bench_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as exc:  # user mistakes (unknown model, bad option values) are ValueErrors
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
