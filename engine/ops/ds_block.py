"""The fused depthwise-separable residual block (``cuda_kernels/ops/ds_block/``) on the Python side:
its folded weights, the attributes of its ONNX node and the ONNX pattern that node replaces.

MAED-CNN's ``DSResidualBlock`` exports (BatchNorm folded into the convolutions) as ``Conv``
depthwise -> ``Relu`` -> ``Conv`` 1x1 -> ``Add`` with the input or its 1x1 ``Conv`` projection ->
``Relu``; one ``MaedDSResidualBlock`` node takes its place. numpy only (the graph look-ups come from
``maed.engine.ops.rewrite``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import Graph, Match, Node, conv_weights, f32, pointwise

OP_TYPE = "MaedDSResidualBlock"
PATTERN_END = "Relu"
"""Op type of the pattern's last node, where a match is tried."""
MAX_DW_KERNEL = 9  # MAED_MAX_DW_KERNEL in api.h


@dataclass(frozen=True)
class DSBlockWeights:
    """A DSResidualBlock with its BatchNorms folded in (api.h, ``MaedDsBlock``).

    ``shortcut_weight`` is None for the identity shortcut; ``bias`` is the pointwise BN bias plus
    the projection BN bias.
    """

    dw_weight: np.ndarray  # (cin, k, k)
    dw_bias: np.ndarray  # (cin,)
    pw_weight: np.ndarray  # (cout, cin)
    shortcut_weight: np.ndarray | None  # (cout, cin)
    bias: np.ndarray  # (cout,)

    def __post_init__(self) -> None:
        cin, k = self.dw_weight.shape[0], self.dw_weight.shape[-1]
        cout = self.pw_weight.shape[0]
        if k % 2 == 0 or not 1 <= k <= MAX_DW_KERNEL:
            raise ValueError(f"the fused kernel takes odd depthwise kernels up to {MAX_DW_KERNEL}, got {k}")
        if self.shortcut_weight is None and cin != cout:
            raise ValueError(f"an identity shortcut needs as many outputs as inputs, got {cin} -> {cout}")
        object.__setattr__(self, "dw_weight", f32(self.dw_weight, (cin, k, k), "dw_weight"))
        object.__setattr__(self, "dw_bias", f32(self.dw_bias, (cin,), "dw_bias"))
        object.__setattr__(self, "pw_weight", f32(self.pw_weight, (cout, cin), "pw_weight"))
        if self.shortcut_weight is not None:
            object.__setattr__(self, "shortcut_weight", f32(self.shortcut_weight, (cout, cin), "shortcut_weight"))
        object.__setattr__(self, "bias", f32(self.bias, (cout,), "bias"))

    @property
    def cin(self) -> int:
        return self.dw_weight.shape[0]

    @property
    def cout(self) -> int:
        return self.pw_weight.shape[0]

    @property
    def ksize(self) -> int:
        return self.dw_weight.shape[-1]


def attributes(w: DSBlockWeights) -> dict[str, object]:
    """The attributes of a ``MaedDSResidualBlock`` node; the plugin reads fields of these names."""
    attributes: dict[str, object] = {
        "in_channels": w.cin,
        "out_channels": w.cout,
        "kernel_size": w.ksize,
        "dw_weight": w.dw_weight.ravel().tolist(),
        "dw_bias": w.dw_bias.tolist(),
        "pw_weight": w.pw_weight.ravel().tolist(),
        "bias": w.bias.tolist(),
    }
    if w.shortcut_weight is not None:  # absent: identity shortcut
        attributes["shortcut_weight"] = w.shortcut_weight.ravel().tolist()
    return attributes


def weights(a: dict[str, object]) -> DSBlockWeights:
    """The weights a node's attributes carry (the reverse of ``attributes``)."""
    cin, cout, k = a["in_channels"], a["out_channels"], a["kernel_size"]
    shortcut = a.get("shortcut_weight")
    return DSBlockWeights(
        np.reshape(a["dw_weight"], (cin, k, k)),
        np.array(a["dw_bias"]),
        np.reshape(a["pw_weight"], (cout, cin)),
        None if shortcut is None else np.reshape(shortcut, (cout, cin)),
        np.array(a["bias"]),
    )


def _depthwise(g: Graph, conv: Node | None) -> tuple[np.ndarray, np.ndarray] | None:
    wb = conv_weights(g, conv)
    if wb is None:
        return None
    weight, bias = wb
    c, one, k, k2 = weight.shape
    if one != 1 or k != k2 or k % 2 == 0 or g.attr(conv, "group", 1) != c:
        return None
    if list(g.attr(conv, "pads", [0, 0, 0, 0])) != [k // 2] * 4:
        return None
    return weight[:, 0], bias


def match(g: Graph, relu2: Node) -> Match | None:
    """The DS block whose final ``Relu`` is ``relu2``, if the nodes before it are one."""
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
        dw, pw = _depthwise(g, dw_conv), pointwise(g, pw_conv)
        if dw is None or pw is None or dw[0].shape[0] != pw[0].shape[1]:
            continue
        nodes = [dw_conv, relu1, pw_conv]
        shortcut_weight, bias = None, pw[1]
        if other != source:
            sc_conv = g.producer_of(other, "Conv")
            sc = pointwise(g, sc_conv)
            if sc is None or sc_conv.input[0] != source or not g.only_feeds(other, add) or sc[0].shape != pw[0].shape:
                continue
            shortcut_weight, bias = sc[0], bias + sc[1]
            nodes.append(sc_conv)
        try:
            w = DSBlockWeights(dw[0], dw[1], pw[0], shortcut_weight, bias)
        except ValueError:  # a kernel size or channel pairing the fused kernel does not take
            continue
        return Match([*nodes, add, relu2], source, OP_TYPE, attributes(w))
    return None
