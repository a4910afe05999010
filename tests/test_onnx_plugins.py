"""``maed export onnx --plugins``: the graph surgery that puts our TensorRT plugin nodes in place of
the DS residual blocks and the SE fusion.

The rewritten graph must have one custom node per block (both shortcut kinds, FP32 and FP16
graphs), leave every other node as it was, and each custom node, evaluated by the kernels' host
reference with the weights it carries, must compute what ONNX Runtime computes for the nodes it
replaced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim
import pytest
import torch
from kernel_helpers import error_of_range, randomise
from onnx import helper

from maed.cli import main
from maed.engine.onnx_fp16 import convert_to_fp16
from maed.engine.ops import PLUGIN_OPS
from maed.engine.ops.ds_block import OP_TYPE as DS_BLOCK_OP
from maed.engine.ops.library import HostReference
from maed.engine.ops.rewrite import DOMAIN, insert_plugins, plugin_weights
from maed.engine.ops.se_fusion import OP_TYPE as SE_FUSION_OP
from maed.engine.tensorrt.onnx_ops import tensorrt_problems
from maed.engine.tensorrt.plugins import LIBRARY_NAME, plugin_library, register_plugins
from maed.export import _trace
from maed.model import CONFIGS, build_model
from maed.model.blocks import DSResidualBlock
from maed.model.checkpoint import save_checkpoint

# rt with two blocks per decoder stage: the first of each projects, the second is an identity block.
TWO_BLOCK_RT = dataclasses.replace(CONFIGS["rt"], decoder_blocks=2)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return randomise(build_model(TWO_BLOCK_RT), seed=5)


@pytest.fixture(scope="module")
def graphs(model: torch.nn.Module) -> dict[str, onnx.ModelProto]:
    """The exporter's graph of ``model``, traced directly: a checkpoint records only a configuration name."""
    fp32 = onnxslim.slim(_trace(model))
    return {"fp32": fp32, "fp16": convert_to_fp16(fp32)}


def _key(node: onnx.NodeProto) -> bytes:
    return node.SerializeToString()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_every_block_becomes_one_plugin_node(graphs: dict[str, onnx.ModelProto], model: torch.nn.Module, precision: str) -> None:
    blocks = [m for m in model.modules() if isinstance(m, DSResidualBlock)]
    projections = sum(not isinstance(b.shortcut, torch.nn.Identity) for b in blocks)
    assert 0 < projections < len(blocks)  # both shortcut kinds are exercised
    rewritten, counts = insert_plugins(graphs[precision])
    assert counts == {DS_BLOCK_OP: len(blocks), SE_FUSION_OP: 1}
    plugin_nodes = [n for n in rewritten.graph.node if n.domain == DOMAIN]
    assert sorted(n.op_type for n in plugin_nodes) == sorted([DS_BLOCK_OP] * len(blocks) + [SE_FUSION_OP])
    assert sum("shortcut_weight" in {a.name for a in n.attribute} for n in plugin_nodes) == projections
    assert helper.make_opsetid(DOMAIN, 1) in rewritten.opset_import
    onnx.checker.check_model(rewritten, full_check=True)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_rest_of_the_graph_is_unchanged(graphs: dict[str, onnx.ModelProto], model: torch.nn.Module, precision: str) -> None:
    original = graphs[precision]
    rewritten, counts = insert_plugins(original)
    kept = [n for n in rewritten.graph.node if n.domain != DOMAIN]
    kept_keys = {_key(n) for n in kept}
    removed = [n for n in original.graph.node if _key(n) not in kept_keys]
    # The survivors are the original nodes, in their order.
    assert [_key(n) for n in kept] == [_key(n) for n in original.graph.node if _key(n) in kept_keys]
    blocks = [m for m in model.modules() if isinstance(m, DSResidualBlock)]
    projections = sum(not isinstance(b.shortcut, torch.nn.Identity) for b in blocks)
    # Per block: depthwise Conv, Relu, pointwise Conv, Add, Relu (+ projection Conv); SE: six nodes.
    assert len(removed) == 5 * len(blocks) + projections + 6
    assert {n.op_type for n in removed} == {"Conv", "Relu", "Add", "ReduceMean", "Sigmoid", "Mul"}
    # Plugin nodes read and write tensors of the original graph: the boundaries stay where they were.
    original_tensors = {t for n in original.graph.node for t in [*n.input, *n.output]}
    for node in rewritten.graph.node:
        if node.domain == DOMAIN:
            assert set(node.input) | set(node.output) <= original_tensors
    assert rewritten.graph.input == original.graph.input and rewritten.graph.output == original.graph.output
    assert rewritten.metadata_props == original.metadata_props
    # Only the weights of replaced nodes were dropped.
    used = {t for n in rewritten.graph.node for t in n.input}
    assert {t.name for t in rewritten.graph.initializer} == {t.name for t in original.graph.initializer} & used


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``model`` also returning the tensors ``names`` (typed from shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend(helper.make_tensor_value_info(n, types[n], None) for n in names)
    return out


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-5), ("fp16", 1e-2)])
def test_plugin_nodes_compute_what_they_replace(
    graphs: dict[str, onnx.ModelProto], reference: HostReference, precision: str, tolerance: float
) -> None:
    original = graphs[precision]
    rewritten, _ = insert_plugins(original)
    plugin_nodes = [n for n in rewritten.graph.node if n.domain == DOMAIN]
    tensors = sorted({t for n in plugin_nodes for t in [n.input[0], n.output[0]]})
    session = ort.InferenceSession(_with_outputs(original, tensors).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, 1, 48, 80)).astype(np.float32)
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: x})))
    for node in plugin_nodes:
        weights = plugin_weights(node)
        source = values[node.input[0]]
        got = reference.ds_block(source, weights) if node.op_type == DS_BLOCK_OP else reference.se_fusion(source, weights)
        assert got.dtype == source.dtype
        assert error_of_range(got, values[node.output[0]]) < tolerance, node.name


def test_a_block_whose_inside_is_read_elsewhere_is_left_alone(graphs: dict[str, onnx.ModelProto]) -> None:
    original = graphs["fp32"]
    _, counts = insert_plugins(original)
    depthwise = next(n for n in original.graph.node if n.op_type == "Conv" and "decoder" in n.name and "conv_dw" in n.name)
    exposed = _with_outputs(original, [depthwise.output[0]])
    _, exposed_counts = insert_plugins(exposed)
    assert exposed_counts == {**counts, DS_BLOCK_OP: counts[DS_BLOCK_OP] - 1}


def test_tensorrt_check_accepts_the_plugin_nodes_only_with_the_plugins(graphs: dict[str, onnx.ModelProto]) -> None:
    rewritten, _ = insert_plugins(graphs["fp16"])
    assert tensorrt_problems(rewritten, plugins=PLUGIN_OPS) == []
    assert any("without a plugin" in p for p in tensorrt_problems(rewritten))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plugins") / "random_rt.pt"
    save_checkpoint(path, randomise(build_model("rt"), seed=9), "rt")
    return path


def test_cli_export_with_plugins(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "rt.plugins.onnx"
    assert main(["export", "onnx", "--model", str(checkpoint), "--fp16", "--plugins", "-o", str(dest)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(dest)
    assert f"4 {DS_BLOCK_OP}, 1 {SE_FUSION_OP}" in captured.err and "warning" not in captured.err
    written = onnx.load(dest)
    assert [n.op_type for n in written.graph.node if n.domain == DOMAIN].count(DS_BLOCK_OP) == 4
    assert main(["export", "onnx", "--ship", "--plugins"]) == 2
    assert "--plugins" in capsys.readouterr().err


def test_plugin_library_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAED_TRT_PLUGINS", raising=False)
    with pytest.raises(FileNotFoundError, match="-DTRT_ROOT"):
        plugin_library(tmp_path)
    library = tmp_path / "cuda_kernels" / LIBRARY_NAME
    library.parent.mkdir(parents=True)
    library.touch()
    loaded: list[str] = []
    fake_trt = SimpleNamespace(get_plugin_registry=lambda: SimpleNamespace(load_library=loaded.append))
    assert register_plugins(fake_trt, tmp_path) == library and loaded == [str(library)]
