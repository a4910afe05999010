"""Fold MAED-CNN's BatchNorms into its convolutions, for the fused CUDA kernels.

``ds_block_weights`` and ``se_weights`` turn a ``DSResidualBlock`` or ``SEFusion`` in eval mode
into the float32 arrays the kernels take (``maed.engine.ops``). The folding is done in
float64, so the only rounding is the final one to float32, as in the ONNX exporter's
constant folding. Like the torch back end it needs torch and the networks' blocks (a back end may
import the networks, never the reverse: docs/architecture.md); the kernels' tests and benchmarks use it.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.layers.activations import Sigmoid as TimmSigmoid
from torch import nn

from maed.model.blocks import DSResidualBlock, SEFusion

from .ops.ds_block import DSBlockWeights
from .ops.se_fusion import SEWeights

__all__ = ["fold_batchnorm", "ds_block_weights", "se_weights"]


def fold_batchnorm(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of a bias-free convolution followed by ``bn`` in eval mode, as one convolution."""
    if not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"the kernels fold BatchNorm2d only, got {type(bn).__name__}")
    scale = bn.weight.detach().cpu().double() / torch.sqrt(bn.running_var.cpu().double() + bn.eps)
    folded = weight.detach().cpu().double() * scale.view(-1, *([1] * (weight.dim() - 1)))
    bias = bn.bias.detach().cpu().double() - bn.running_mean.cpu().double() * scale
    return folded.numpy(), bias.numpy()


def _require_relu(*layers: nn.Module) -> None:
    for layer in layers:
        if not isinstance(layer, nn.ReLU):
            raise ValueError(f"the fused kernels implement ReLU only, got {type(layer).__name__}")


def ds_block_weights(block: DSResidualBlock) -> DSBlockWeights:
    """The folded weights of ``block`` (zero padding and ReLU, as every block of MAED-CNN has)."""
    _require_relu(block.act1, block.act2)
    if block.conv_dw.padding_mode != "zeros":
        raise ValueError(f"the fused kernel pads with zeros, the block with {block.conv_dw.padding_mode!r}")
    dw, dw_bias = fold_batchnorm(block.conv_dw.weight, block.bn1)
    pw, bias = fold_batchnorm(block.conv_pw.weight, block.bn2)
    shortcut = None
    if not isinstance(block.shortcut, nn.Identity):
        shortcut, shortcut_bias = fold_batchnorm(block.shortcut[0].weight, block.shortcut[1])
        shortcut = shortcut[:, :, 0, 0]
        bias = bias + shortcut_bias
    return DSBlockWeights(dw[:, 0], dw_bias, pw[:, :, 0, 0], shortcut, bias)


def se_weights(se: SEFusion) -> SEWeights:
    """The weights of ``se`` (ReLU between the layers, sigmoid gate)."""
    _require_relu(se.act)
    if not isinstance(se.gate, (nn.Sigmoid, TimmSigmoid)):
        raise ValueError(f"the SE kernel gates with a sigmoid, got {type(se.gate).__name__}")
    fc1, fc2 = (fc.weight.detach().cpu().double().numpy()[:, :, 0, 0] for fc in (se.fc1, se.fc2))
    return SEWeights(fc1, se.fc1.bias.detach().cpu().double().numpy(), fc2, se.fc2.bias.detach().cpu().double().numpy())
