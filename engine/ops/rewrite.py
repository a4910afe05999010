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
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .library import DSBlockWeights, SEWeights

DOMAIN = "maed"
DS_BLOCK_OP = "MaedDSResidualBlock"
SE_FUSION_OP = "MaedSEFusion"
PLUGIN_OPS = (DS_BLOCK_OP, SE_FUSION_OP)


@dataclass
class _Graph:
    """Look-ups over a graph: producers, consumers and constant weights of tensors."""

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


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _conv_weights(g: _Graph, conv: onnx.NodeProto | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Weight and bias (zeros when absent) of a stride-1, undilated Conv with constant weights."""
    if conv is None or len(conv.input) < 2:
        return None
    weight = g.weight(conv.input[1])
    if weight is None or weight.ndim != 4:
        return None
    if any(s != 1 for s in _attr(conv, "strides", [1, 1])) or any(d != 1 for d in _attr(conv, "dilations", [1, 1])):
        return None
    if _attr(conv, "auto_pad", b"NOTSET") != b"NOTSET":
        return None
    bias = g.weight(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0], np.float32)
    return (weight, bias) if bias is not None else None


def _pointwise(g: _Graph, conv: onnx.NodeProto | None) -> tuple[np.ndarray, np.ndarray] | None:
    wb = _conv_weights(g, conv)
    if wb is None or wb[0].shape[2:] != (1, 1) or _attr(conv, "group", 1) != 1:
        return None
    if any(_attr(conv, "pads", [0, 0, 0, 0])):
        return None
    return wb[0][:, :, 0, 0], wb[1]


def _depthwise(g: _Graph, conv: onnx.NodeProto | None) -> tuple[np.ndarray, np.ndarray] | None:
    wb = _conv_weights(g, conv)
    if wb is None:
        return None
    weight, bias = wb
    c, one, k, k2 = weight.shape
    if one != 1 or k != k2 or k % 2 == 0 or _attr(conv, "group", 1) != c:
        return None
    if list(_attr(conv, "pads", [0, 0, 0, 0])) != [k // 2] * 4:
        return None
    return weight[:, 0], bias


@dataclass
class _Match:
    nodes: list[onnx.NodeProto]  # the nodes replaced; the last one is the pattern's output
    source: str  # the pattern's input tensor
    op_type: str
    attributes: dict[str, object]


def _match_ds_block(g: _Graph, relu2: onnx.NodeProto) -> _Match | None:
    add = g.producer_of(relu2.input[0], "Add")
    if add is None or not g.only_feeds(add.output[0], relu2):
        return None
    for pw_in, other in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
        pw_conv = g.producer_of(pw_in, "Conv")
        if pw_conv is None or not g.only_feeds(pw_in, add):
            continue
        relu1 = g.producer_of(pw_conv.input[0], "Relu")
        if relu1 is None or not g.only_feeds(relu1.output[0], pw_conv):
            continue
        dw_conv = g.producer_of(relu1.input[0], "Conv")
        if dw_conv is None or not g.only_feeds(dw_conv.output[0], relu1):
            continue
        source = dw_conv.input[0]
        dw, pw = _depthwise(g, dw_conv), _pointwise(g, pw_conv)
        if dw is None or pw is None or dw[0].shape[0] != pw[0].shape[1]:
            continue
        nodes = [dw_conv, relu1, pw_conv]
        shortcut_weight, bias = None, pw[1]
        if other != source:
            sc_conv = g.producer_of(other, "Conv")
            sc = _pointwise(g, sc_conv)
            if sc is None or sc_conv.input[0] != source or not g.only_feeds(other, add) or sc[0].shape != pw[0].shape:
                continue
            shortcut_weight, bias = sc[0], bias + sc[1]
            nodes.append(sc_conv)
        try:
            weights = DSBlockWeights(dw[0], dw[1], pw[0], shortcut_weight, bias)
        except ValueError:  # a kernel size or channel pairing the fused kernel does not take
            continue
        return _Match([*nodes, add, relu2], source, DS_BLOCK_OP, ds_block_attributes(weights))
    return None


def _reduce_axes(g: _Graph, node: onnx.NodeProto) -> list[int] | None:
    if len(node.input) > 1:  # opset 18+: axes as an input
        axes = g.weight(node.input[1])
        return None if axes is None else [int(a) for a in axes]
    return list(_attr(node, "axes", []))


def _match_se_fusion(g: _Graph, mul: onnx.NodeProto) -> _Match | None:
    for source, gate_in in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
        sigmoid = g.producer_of(gate_in, "Sigmoid")
        if sigmoid is None or not g.only_feeds(gate_in, mul):
            continue
        fc2 = g.producer_of(sigmoid.input[0], "Conv")
        relu = fc2 and g.producer_of(fc2.input[0], "Relu")
        fc1 = relu and g.producer_of(relu.input[0], "Conv")
        mean = fc1 and g.producer_of(fc1.input[0], "ReduceMean")
        if mean is None or mean.input[0] != source:
            continue
        chain = [(mean, fc1), (fc1, relu), (relu, fc2), (fc2, sigmoid)]
        if not all(g.only_feeds(a.output[0], b) for a, b in chain):
            continue
        if sorted(a % 4 for a in _reduce_axes(g, mean) or []) != [2, 3] or _attr(mean, "keepdims", 1) != 1:
            continue
        w1, w2 = _pointwise(g, fc1), _pointwise(g, fc2)
        if w1 is None or w2 is None or w1[0].shape[::-1] != w2[0].shape:
            continue
        weights = SEWeights(w1[0], w1[1], w2[0], w2[1])
        return _Match([mean, fc1, relu, fc2, sigmoid, mul], source, SE_FUSION_OP, se_fusion_attributes(weights))
    return None


def ds_block_attributes(w: DSBlockWeights) -> dict[str, object]:
    """The attributes of a ``MaedDSResidualBlock`` node; the plugin reads fields of these names."""
    attributes: dict[str, object] = {
        "in_channels": w.cin, "out_channels": w.cout, "kernel_size": w.ksize,
        "dw_weight": w.dw_weight.ravel().tolist(), "dw_bias": w.dw_bias.tolist(),
        "pw_weight": w.pw_weight.ravel().tolist(), "bias": w.bias.tolist(),
    }
    if w.shortcut_weight is not None:  # absent: identity shortcut
        attributes["shortcut_weight"] = w.shortcut_weight.ravel().tolist()
    return attributes


def se_fusion_attributes(w: SEWeights) -> dict[str, object]:
    """The attributes of a ``MaedSEFusion`` node; the plugin reads fields of these names."""
    return {
        "channels": w.channels, "reduced_channels": w.reduced,
        "fc1_weight": w.fc1_weight.ravel().tolist(), "fc1_bias": w.fc1_bias.tolist(),
        "fc2_weight": w.fc2_weight.ravel().tolist(), "fc2_bias": w.fc2_bias.tolist(),
    }


def plugin_weights(node: onnx.NodeProto) -> DSBlockWeights | SEWeights:
    """The weights a plugin node carries, e.g. to evaluate it with the host reference."""
    a = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
    if node.op_type == DS_BLOCK_OP:
        cin, cout, k = a["in_channels"], a["out_channels"], a["kernel_size"]
        shortcut = a.get("shortcut_weight")
        return DSBlockWeights(
            np.reshape(a["dw_weight"], (cin, k, k)), np.array(a["dw_bias"]), np.reshape(a["pw_weight"], (cout, cin)),
            None if shortcut is None else np.reshape(shortcut, (cout, cin)), np.array(a["bias"]),
        )
    if node.op_type == SE_FUSION_OP:
        c, r = a["channels"], a["reduced_channels"]
        return SEWeights(np.reshape(a["fc1_weight"], (r, c)), np.array(a["fc1_bias"]),
                         np.reshape(a["fc2_weight"], (c, r)), np.array(a["fc2_bias"]))
    raise ValueError(f"{node.op_type} is not a MAED plugin node")


_MATCHERS: dict[str, Callable[[_Graph, onnx.NodeProto], _Match | None]] = {
    "Relu": _match_ds_block, "Mul": _match_se_fusion,
}


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
            nodes.append(helper.make_node(match.op_type, [match.source], [node.output[0]], name=name, domain=DOMAIN,
                                          **match.attributes))
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
