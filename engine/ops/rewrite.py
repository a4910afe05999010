"""Rewrite an exported MAED-CNN graph so that our CUDA kernels run its DS blocks and SE fusion.

Each depthwise-separable residual block (``Conv`` depthwise -> ``Relu`` -> ``Conv`` 1x1 ->
``Add`` with the input or its 1x1 ``Conv`` projection -> ``Relu``) becomes one
``MaedDSResidualBlock`` node, and the SE fusion (``ReduceMean`` -> ``Conv`` -> ``Relu`` ->
``Conv`` -> ``Sigmoid`` -> ``Mul``) one ``MaedSEFusion`` node, in the ``maed`` domain. TensorRT's
ONNX parser maps a node of an unknown op type to the plugin creator of that name (version "1",
namespace ""), i.e. to the plugins of ``cuda_kernels/ops/``. The folded weights travel as float
attributes (``floats``, float32 even in an FP16 graph: the kernels compute in FP32), which the
parser hands to the creator as plugin fields, so the plugin owns its weights and the node has one
input.

The patterns are matched on the graph the exporter writes (BatchNorm already folded into the
convolutions, onnxslim applied), in FP32 or after the FP16 conversion; every intermediate tensor
of a match must have no other consumer. Everything else is left as it is. Only onnx and numpy:
the rewrite also runs on a shipped ONNX file on the machine that builds the engine.

Each op's pattern, weights and attributes are in its module (``ds_block``, ``se_fusion``); this module
holds the graph look-ups they match with, and replaces every match.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import OPS, PLUGIN_OPS
from .ds_block import DSBlockWeights
from .se_fusion import SEWeights

DOMAIN = "maed"


@dataclass
class _Graph:
    """Look-ups over a graph: producers, consumers and constant weights of tensors (``common.Graph``)."""

    graph: onnx.GraphProto

    def __post_init__(self) -> None:
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.outputs = {o.name for o in self.graph.output}

    def only_feeds(self, tensor: str, node: onnx.NodeProto) -> bool:
        """``tensor`` is internal to a match: read by ``node`` alone and not a graph output."""
        return tensor not in self.outputs and [id(n) for n in self.consumers[tensor]] == [id(node)]

    def producer_of(self, tensor: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def weight(self, name: str) -> np.ndarray | None:
        tensor = self.initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor).astype(np.float32)

    def attr(self, node: onnx.NodeProto, name: str, default: object) -> object:
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default


_MATCHERS = {op.PATTERN_END: op.match for op in OPS}
_BY_TYPE = {op.OP_TYPE: op for op in OPS}


def plugin_weights(node: onnx.NodeProto) -> DSBlockWeights | SEWeights:
    """The weights a plugin node carries, e.g. to evaluate it with the host reference."""
    op = _BY_TYPE.get(node.op_type)
    if op is None:
        raise ValueError(f"{node.op_type} is not a MAED plugin node")
    return op.weights({attr.name: helper.get_attribute_value(attr) for attr in node.attribute})


def insert_plugins(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """A copy of ``model`` with the DS blocks and SE fusions replaced by plugin nodes.

    Returns the copy and how many nodes of each plugin op type it has. Initializers only the
    replaced nodes used are dropped, as are the shape annotations of the removed tensors.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    g = _Graph(graph)
    matches = [m for node in graph.node if node.op_type in _MATCHERS for m in [_MATCHERS[node.op_type](g, node)] if m]

    replaced = {id(n) for m in matches for n in m.nodes}
    plugin_at = {id(m.nodes[-1]): m for m in matches}
    nodes = []
    for node in graph.node:
        match = plugin_at.get(id(node))
        if match is not None:
            # In the place of the pattern's last node: its input is computed before, its readers after.
            scope = os.path.commonprefix([n.name for n in match.nodes]).rpartition("/")[0]
            name = f"{scope}/{match.op_type}" if scope else f"{node.output[0]}_{match.op_type}"
            nodes.append(helper.make_node(match.op_type, [match.source], [node.output[0]], name=name, domain=DOMAIN, **match.attributes))
        elif id(node) not in replaced:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)

    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    removed = {out for m in matches for n in m.nodes[:-1] for out in n.output}
    kept_info = [v for v in graph.value_info if v.name not in removed]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    if matches and all(o.domain != DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    counts = {op: sum(m.op_type == op for m in matches) for op in PLUGIN_OPS}
    return out, counts
