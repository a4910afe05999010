"""``maed export onnx``: a MAED-CNN (or a baseline) as a self-describing ONNX file, FP32 or FP16.

The graph has opset 17 (TensorRT 10.3 on JetPack 6 parses up to 20) and a dynamic batch, height
and width. It is written by torch's TorchScript-based exporter (``dynamo=False``: the dynamo
exporter needs onnxscript and gains nothing for a CNN without control flow) with constant
folding. onnxslim then folds what torch's folder leaves, the index arithmetic of the stem's
reflect padding (ConstantOfShape, Slice, Transpose and Cast chains), and drops the Identity and
Constant nodes: the ``rt`` graph shrinks from 268 nodes of 17 kinds to 113 of 10, every one a
plain Conv, Clip, Relu, Add, Mul, Sigmoid, Concat, Pad, Resize or ReduceMean, and each Pad gets
constant pads, which is what TensorRT's parser handles best.

The FP16 file is the FP32 graph converted by ``maed.engine.onnx_fp16`` (float32 input and output,
the residual add in float32; its docstring says why). The metadata keys are listed in
``maed.engine.onnx_model``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxslim
import torch
from torch import nn

from . import __version__
from .atomic import atomic_path
from .engine.onnx_fp16 import convert_to_fp16
from .engine.onnx_model import (
    KEY_CONFIG,
    KEY_EXPORTER,
    KEY_LEVELLING,
    KEY_MODEL,
    KEY_NORMALISATION,
    KEY_PRECISION,
    KEY_SIZE_MULTIPLE,
    KEY_TRAINING_DATA,
    KEY_WEIGHTS_SHA256,
    shipped_onnx,
)
from .engine.ops.rewrite import insert_plugins
from .model import MAEDCNN, passes_taken
from .model.checkpoint import load_model, model_name, weights_file, weights_sha256
from .normalise import PLANE, PLANE_AND_ROWS
from .zoo import display_name

OPSET = 17
INPUT, OUTPUT = "input", "output"
LEVELLED = {
    PLANE_AND_ROWS: "its best-fit plane removed, rows aligned by the median of their differences",
    PLANE: "its best-fit plane removed (line offsets stay in: the network removes them)",
}


def normalisation(levelling: str) -> str:
    """The ``maed.normalisation`` text: what the input must be for weights of this levelling."""
    return (
        f"input: a 2-D height map with {LEVELLED[levelling]}, shifted and scaled to zero mean and unit "
        "standard deviation (maed.normalise), as (N, 1, H, W) float32; output: the denoised map in the same "
        "normalised units, to be mapped back by the inverse scale and shift and the plane added back "
        "(maed.normalise.denormalise)"
    )


def _metadata(name: str, model: nn.Module, card: dict, weights: Path, precision: str) -> dict[str, str]:
    config = {"name": card["config"]}
    if isinstance(model, MAEDCNN):
        config |= dataclasses.asdict(model.config)
    training = {"simulator": "unrecorded", "maed_version": "unrecorded"}
    training.update({key: value for key, value in card.items() if key not in ("config", "levelling")})
    return {
        KEY_MODEL: name,
        KEY_CONFIG: json.dumps(config),
        KEY_SIZE_MULTIPLE: str(model.size_multiple),
        KEY_PRECISION: precision,
        KEY_NORMALISATION: normalisation(card["levelling"]),
        KEY_LEVELLING: card["levelling"],
        KEY_TRAINING_DATA: json.dumps(training, default=str),
        KEY_WEIGHTS_SHA256: weights_sha256(weights),
        KEY_EXPORTER: f"maed {__version__}, torch {torch.__version__}, onnx {onnx.__version__}, onnxslim {onnxslim.__version__}",
    }


def _trace(model: nn.Module) -> onnx.ModelProto:
    m = model.size_multiple
    sample = torch.zeros(1, passes_taken(model), 4 * m, 4 * m)
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    # The legacy exporter is chosen on purpose (see the module docstring); its deprecation notice and
    # its note that it cannot fold the reflect padding's reversed Slice (onnxslim folds it) are noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: axes, OUTPUT: axes},
        )
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(name_or_path: str, dest: Path, fp16: bool = False, plugins: bool = False) -> onnx.ModelProto:
    """Export a shipped model (by name) or a checkpoint (by path) to the ONNX file ``dest``.

    Returns the model written. The metadata names a shipped model by its name and a checkpoint by
    ``model.checkpoint.model_name``. ``plugins`` replaces the DS blocks and the SE fusion by our TensorRT plugin
    nodes (``maed.engine.ops.rewrite``): such a file is for TensorRT only.
    """
    model, card = load_model(name_or_path)
    name = model_name(name_or_path)
    graph = onnxslim.slim(_trace(model))
    if fp16:
        graph = convert_to_fp16(graph)
    if plugins:
        graph, _ = insert_plugins(graph)
    graph.doc_string = f"{display_name(card['config'])} ({card['config']}) denoiser for STM scans"
    onnx.helper.set_model_props(graph, _metadata(name, model, card, weights_file(name_or_path), "fp16" if fp16 else "fp32"))
    onnx.checker.check_model(graph, full_check=True)
    dest = Path(dest)
    with atomic_path(dest) as tmp:  # never a half-written model where a back end would load it
        onnx.save(graph, tmp)
    return graph


def check_destination(dest: Path, force: bool = False) -> Path:
    """``dest`` where ``maed export onnx -o`` may write it: not a folder (or a name ending in one), a name ending in
    ``.onnx`` (``maed denoise --model`` tells a model file by its suffix, and so never the checkpoint exported), in a
    folder that exists, and not an existing file unless ``force``: an ``-o`` mistyped over a raw scan or a
    checkpoint must not replace it."""
    if str(dest).endswith(("/", "\\")) or dest.is_dir():
        raise ValueError(f"{dest} is a folder; -o takes the ONNX file to write, e.g. {Path(dest) / 'model.onnx'}")
    if dest.suffix != ".onnx":
        raise ValueError(f"-o {dest}: an ONNX file's name ends in .onnx (maed denoise --model tells a model file by its suffix)")
    if not dest.parent.is_dir():
        raise ValueError(f"{dest}: the folder {dest.parent} does not exist")
    if dest.exists() and not force:
        raise ValueError(f"{dest} exists; give --force to replace it")
    return dest


def default_destination(name_or_path: str, fp16: bool, plugins: bool = False) -> Path:
    """``NAME.onnx``, ``NAME.fp16.onnx`` (and ``.plugins`` before ``.onnx`` with plugins): for a shipped name in the
    current folder, for a checkpoint beside it (``runs/mine/last.pt`` -> ``runs/mine/last.onnx``): every run's
    checkpoint is ``last.pt``, and two runs' exports in one folder would take one name."""
    path = Path(name_or_path)
    name = f"{path.stem}{'.fp16' if fp16 else ''}{'.plugins' if plugins else ''}.onnx"
    return path.with_name(name) if path.suffix else Path(name)


def ship_onnx(name: str) -> Path:
    """Export the shipped weights of model ``name`` to the package's ``NAME.onnx`` (FP32)."""
    if Path(name).suffix:
        raise ValueError(f"--ship takes a shipped model name such as rt, not a path: {name}")
    dest = shipped_onnx(name)
    export_onnx(name, dest)
    return dest


def onnx_vs_torch(name_or_path: str, path: Path, size: tuple[int, int], seed: int = 0) -> float:
    """Largest difference between ONNX Runtime (CPU) and torch on a random scan of ``size`` (every pass the model
    takes), over the output range."""
    from .engine.onnx_backend import OnnxBackend

    model, _ = load_model(name_or_path)
    x = np.random.default_rng(seed).standard_normal((1, passes_taken(model), *size)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    got = OnnxBackend(path, device="cpu").denoise(x)
    return float(np.abs(got - expected).max() / np.ptp(expected))
