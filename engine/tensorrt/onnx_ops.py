"""Would TensorRT's ONNX parser take this graph? Checked without TensorRT.

Every node's operator must be in onnx-tensorrt's support matrix (kept in
``data/onnx_tensorrt_operators.txt`` with its source), with the data types of its float tensors
among those listed for it, in an opset TensorRT 10.3 (JetPack 6) still parses; and the
restriction the matrix states for an operator MAED-CNN uses (Resize's modes) must hold.
Custom operators are allowed only where a plugin for them is named.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import onnx
from onnx import TensorProto

OPERATORS_FILE = Path(__file__).with_name("data") / "onnx_tensorrt_operators.txt"
MAX_OPSET = 20  # the newest opset TensorRT 10.3, on JetPack 6, parses

_FLOAT_TYPES = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "FP64",
}
# Restrictions of the support matrix for Resize, with ONNX's defaults for absent attributes.
_RESIZE_ALLOWED = {
    "mode": ("nearest", {"nearest", "linear"}),
    "coordinate_transformation_mode": (
        "half_pixel",
        {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"},
    ),
    "nearest_mode": ("round_prefer_floor", {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}),
}


@cache
def supported_operators() -> dict[str, frozenset[str]]:
    """Operator name -> data types TensorRT's ONNX parser supports it with."""
    table = {}
    for line in OPERATORS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            op, types = line.split("\t")
            table[op] = frozenset(types.split())
    return table


def _attribute(node: onnx.NodeProto, name: str, default: str) -> str:
    for attr in node.attribute:
        if attr.name == name:
            return attr.s.decode()
    return default


def tensorrt_problems(model: onnx.ModelProto, plugins: Iterable[str] = ()) -> list[str]:
    """What in ``model`` TensorRT's ONNX parser would reject, one line each; empty when nothing.

    Args:
        model: The ONNX model.
        plugins: Op types of custom (non-ONNX-domain) nodes for which a TensorRT plugin exists.
    """
    problems = []
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > MAX_OPSET:
            problems.append(f"opset {opset.version} is newer than TensorRT 10.3's {MAX_OPSET}")
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    table = supported_operators()
    plugins = set(plugins)
    for node in graph.node:
        where = f"{node.op_type} node {node.name!r}"
        if node.domain not in ("", "ai.onnx"):
            if node.op_type not in plugins:
                problems.append(f"{where}: custom operator of domain {node.domain!r} without a plugin")
            continue
        if node.op_type not in table:
            problems.append(f"{where}: operator not supported by TensorRT's ONNX parser")
            continue
        for name in [*node.input, *node.output]:
            kind = _FLOAT_TYPES.get(types.get(name, TensorProto.UNDEFINED))
            if kind is not None and kind not in table[node.op_type]:
                problems.append(f"{where}: {kind} tensor {name!r}, TensorRT supports {sorted(table[node.op_type])}")
        if node.op_type == "Resize":
            for attr, (default, allowed) in _RESIZE_ALLOWED.items():
                value = _attribute(node, attr, default)
                if value not in allowed:
                    problems.append(f"{where}: {attr}={value!r} is not supported")
    return problems
