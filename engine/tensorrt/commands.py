"""The ``maed engine build`` command: a TensorRT engine for this GPU from a model's ONNX file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from maed.zoo import PRODUCT

from .profiles import BAND, CONTEXT_ROWS, FRAME, Profile, default_profiles, parse_profile, parse_shape


def _shape(text: str) -> tuple[int, int]:
    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def profiles_from_args(args: argparse.Namespace, size_multiple: int) -> tuple[Profile, ...]:
    """The profiles asked for: ``--shapes`` as given, else the band and frame profiles."""
    if args.shapes:
        if args.band != BAND or args.frame != FRAME:
            raise ValueError("--shapes gives every profile; it takes neither --band nor --frame")
        return tuple(parse_profile(text, f"profile{i}", size_multiple, args.max_batch) for i, text in enumerate(args.shapes))
    return tuple(default_profiles(size_multiple, args.band, args.frame, args.max_batch))


def _cmd_build(args: argparse.Namespace) -> int:
    from .available import import_tensorrt
    from .build import BuildSettings, EngineBuildError, OnnxSource, build_engine

    def make_settings(size_multiple: int) -> BuildSettings:
        return BuildSettings(
            profiles=profiles_from_args(args, size_multiple),
            precision=args.precision,
            workspace_mb=args.workspace_mb,
            opt_level=args.opt_level,
            timing_cache=Path(args.timing_cache) if args.timing_cache else None,
        )

    # Mistakes in the arguments first, then whether TensorRT runs here, then the model's own sizes.
    make_settings(1)
    import_tensorrt()
    source = OnnxSource.find(args.model)
    settings = make_settings(source.size_multiple)
    start = time.perf_counter()
    try:
        dest = build_engine(args.model, settings, Path(args.output) if args.output else None)
    except EngineBuildError as exc:
        print(f"maed: error: {exc}", file=sys.stderr)
        return 1
    shapes = ", ".join(p.describe() for p in settings.profiles)
    print(
        f"maed: {settings.precision.upper()} engine of {source.model} built in {time.perf_counter() - start:.0f} s; "
        f"profiles (min:opt:max) {shapes}",
        file=sys.stderr,
    )
    print(dest)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``engine build`` to the ``maed`` command line."""
    p = sub.add_parser("engine", help="TensorRT engines")
    actions = p.add_subparsers(dest="action", required=True)
    p = actions.add_parser(
        "build",
        help="build a TensorRT engine for this GPU from the model's ONNX file",
        description="Build a TensorRT engine from the model's ONNX file, into the engine cache where "
        "`--backend tensorrt` finds it (or -o). FP16 engines are strongly typed, from the FP16 graph.",
    )
    p.add_argument("--model", default=PRODUCT, metavar="NAME_OR_PATH", help=f"shipped model name or .onnx file (default: {PRODUCT})")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="FP16 engine (default)")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32", help="FP32 engine")
    p.set_defaults(precision="fp16")
    p.add_argument(
        "--band",
        type=_shape,
        default=BAND,
        metavar="ROWSxCOLS",
        help=f"streaming band: new rows per update x scan width; the profile adds the {CONTEXT_ROWS} "
        f"rows of context (default: {BAND[0]}x{BAND[1]})",
    )
    p.add_argument("--frame", type=_shape, default=FRAME, metavar="HxW", help=f"largest full frame (default: {FRAME[0]}x{FRAME[1]})")
    p.add_argument(
        "--shapes", nargs="+", metavar="MIN:OPT:MAX", help="profiles given in full instead, one per argument, e.g. 16x16:160x256:320x512"
    )
    p.add_argument("--max-batch", type=int, default=1, metavar="N", help="largest batch (default: 1)")
    p.add_argument("--workspace-mb", type=int, default=1024, metavar="MB", help="builder workspace limit in MiB (default: 1024)")
    p.add_argument(
        "--opt-level",
        type=int,
        default=3,
        metavar="0-5",
        help="builder optimisation level: higher builds longer, may run faster (default: 3)",
    )
    p.add_argument(
        "--timing-cache",
        metavar="PATH",
        help="timing cache to reuse and update (default: one per GPU and TensorRT version in the engine cache)",
    )
    p.add_argument(
        "-o", "--output", metavar="PATH", help="engine file (default: the engine cache, $MAED_ENGINE_CACHE or ~/.cache/maed/engines)"
    )
    p.set_defaults(run=_cmd_build)
