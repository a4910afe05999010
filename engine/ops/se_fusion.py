"""The SE fusion (``cuda_kernels/ops/se_fusion/``) on the Python side: its weights, the attributes of
its ONNX node and the ONNX pattern that node replaces.

MAED-CNN's ``SEFusion`` exports as ``ReduceMean`` -> ``Conv`` 1x1 -> ``Relu`` -> ``Conv`` 1x1 ->
``Sigmoid`` -> ``Mul`` with the input; one ``MaedSEFusion`` node takes its place. numpy only (the
graph look-ups come from ``maed.engine.ops.rewrite``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import Graph, Match, Node, f32, pointwise

OP_TYPE = "MaedSEFusion"
PATTERN_END = "Mul"
"""Op type of the pattern's last node, where a match is tried."""


@dataclass(frozen=True)
class SEWeights:
    """An SEFusion (api.h, ``MaedSeFusion``): fc1 (reduced, channels), fc2 (channels, reduced)."""

    fc1_weight: np.ndarray
    fc1_bias: np.ndarray
    fc2_weight: np.ndarray
    fc2_bias: np.ndarray

    def __post_init__(self) -> None:
        reduced, channels = self.fc1_weight.shape
        object.__setattr__(self, "fc1_weight", f32(self.fc1_weight, (reduced, channels), "fc1_weight"))
        object.__setattr__(self, "fc1_bias", f32(self.fc1_bias, (reduced,), "fc1_bias"))
        object.__setattr__(self, "fc2_weight", f32(self.fc2_weight, (channels, reduced), "fc2_weight"))
        object.__setattr__(self, "fc2_bias", f32(self.fc2_bias, (channels,), "fc2_bias"))

    @property
    def channels(self) -> int:
        return self.fc1_weight.shape[1]

    @property
    def reduced(self) -> int:
        return self.fc1_weight.shape[0]


def attributes(w: SEWeights) -> dict[str, object]:
    """The attributes of a ``MaedSEFusion`` node; the plugin reads fields of these names."""
    return {
        "channels": w.channels,
        "reduced_channels": w.reduced,
        "fc1_weight": w.fc1_weight.ravel().tolist(),
        "fc1_bias": w.fc1_bias.tolist(),
        "fc2_weight": w.fc2_weight.ravel().tolist(),
        "fc2_bias": w.fc2_bias.tolist(),
    }


def weights(a: dict[str, object]) -> SEWeights:
    """The weights a node's attributes carry (the reverse of ``attributes``)."""
    c, r = a["channels"], a["reduced_channels"]
    return SEWeights(
        np.reshape(a["fc1_weight"], (r, c)), np.array(a["fc1_bias"]), np.reshape(a["fc2_weight"], (c, r)), np.array(a["fc2_bias"])
    )


def _reduce_axes(g: Graph, node: Node) -> list[int] | None:
    if len(node.input) > 1:  # opset 18+: axes as an input
        axes = g.weight(node.input[1])
        return None if axes is None else [int(a) for a in axes]
    return list(g.attr(node, "axes", []))


def match(g: Graph, mul: Node) -> Match | None:
    """The SE fusion whose final ``Mul`` is ``mul``, if the nodes before it are one."""
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
        if sorted(a % 4 for a in _reduce_axes(g, mean) or []) != [2, 3] or g.attr(mean, "keepdims", 1) != 1:
            continue
        w1, w2 = pointwise(g, fc1), pointwise(g, fc2)
        if w1 is None or w2 is None or w1[0].shape[::-1] != w2[0].shape:
            continue
        w = SEWeights(w1[0], w1[1], w2[0], w2[1])
        return Match([mean, fc1, relu, fc2, sigmoid, mul], source, OP_TYPE, attributes(w))
    return None
