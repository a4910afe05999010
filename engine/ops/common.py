"""What the custom ops' Python modules share: float32 weight arrays, the look-ups over an exported
graph that their ONNX patterns match with, and what a match returns.

``Graph`` is implemented with onnx by ``maed.engine.ops.rewrite``; the ops' modules only call it, so
they import no onnx, and their weights stay importable where numpy alone is (the kernels' ctypes
bindings, the TensorRT back end). Nodes are ``onnx.NodeProto`` (``op_type``, ``input``, ``output``,
``name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Node = Any
"""An ``onnx.NodeProto``."""


def f32(a: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``a`` as a contiguous float32 array of ``shape``; ValueError naming ``what`` otherwise."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {a.shape}")
    return a


class Graph(Protocol):
    """Look-ups over a graph: producers, consumers, attributes and constant weights."""

    def only_feeds(self, tensor: str, node: Node) -> bool:
        """``tensor`` is internal to a match: read by ``node`` alone and not a graph output."""

    def producer_of(self, tensor: str, op_type: str) -> Node | None:
        """The node of ``op_type`` that writes ``tensor``; None where another kind of node (or none) does."""

    def weight(self, name: str) -> np.ndarray | None:
        """The initializer ``name`` as float32; None where ``name`` is not a constant."""

    def attr(self, node: Node, name: str, default: object) -> object:
        """The value of ``node``'s attribute ``name`` (strings as bytes); ``default`` where absent."""


@dataclass
class Match:
    """Nodes of the exported graph that one plugin node replaces."""

    nodes: list[Node]  # the nodes replaced; the last one is the pattern's output
    source: str  # the pattern's input tensor
    op_type: str
    attributes: dict[str, object]


def conv_weights(g: Graph, conv: Node | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Weight and bias (zeros when absent) of a stride-1, undilated Conv with constant weights."""
    if conv is None or len(conv.input) < 2:
        return None
    weight = g.weight(conv.input[1])
    if weight is None or weight.ndim != 4:
        return None
    if any(s != 1 for s in g.attr(conv, "strides", [1, 1])) or any(d != 1 for d in g.attr(conv, "dilations", [1, 1])):
        return None
    if g.attr(conv, "auto_pad", b"NOTSET") != b"NOTSET":
        return None
    bias = g.weight(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0], np.float32)
    return (weight, bias) if bias is not None else None


def pointwise(g: Graph, conv: Node | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Weight (out, in) and bias of an ungrouped, unpadded 1x1 Conv."""
    wb = conv_weights(g, conv)
    if wb is None or wb[0].shape[2:] != (1, 1) or g.attr(conv, "group", 1) != 1:
        return None
    if any(g.attr(conv, "pads", [0, 0, 0, 0])):
        return None
    return wb[0][:, :, 0, 0], wb[1]
