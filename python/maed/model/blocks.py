"""Building blocks of MAED-CNN: multi-scale stem, SE feature fusion, depthwise-separable residual block.

The blocks follow the conventions of timm's ``_efficientnet_blocks.py``: every structural choice
(kernel sizes, padding, activation, norm layer) is a named constructor argument, activations are
given as a timm name or a layer class, and every convolution that feeds a BatchNorm has no bias so
the pair can be folded into one convolution for inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import LayerType, create_act_layer
from torch import nn

__all__ = ["MultiScaleStem", "SEFusion", "DSResidualBlock"]


class MultiScaleStem(nn.Module):
    """Parallel convolutions of several kernel sizes on the raw image, then a channel expansion.

    Paper Fig. 4a: five kernels (1, 3, 5, 7, 9) see the topograph at several scales at once, from
    single-pixel spikes up to a lattice period of a few pixels, before any downsampling.

    Args:
        in_chs: Channels of the input image (1 for a height map).
        branch_chs: Output channels of each branch.
        out_chs: Channels after the expansion layer (40 in the paper).
        kernel_sizes: One branch per (odd) kernel size.
        padding_mode: Padding of the branch convolutions. ``"reflect"`` avoids a fake step to zero
            at the scan borders, which the large kernels would otherwise read as a feature.
        act_layer: Activation after the expansion layer.
        norm_layer: Norm layer after the expansion convolution.
    """

    def __init__(
        self,
        in_chs: int = 1,
        branch_chs: int = 8,
        out_chs: int = 40,
        kernel_sizes: Sequence[int] = (1, 3, 5, 7, 9),
        padding_mode: str = "reflect",
        act_layer: LayerType = "relu",
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd for 'same' padding, got {tuple(kernel_sizes)}")
        # No bias: the branches are linear and feed the expansion BN, which removes any constant.
        self.branches = nn.ModuleList(
            nn.Conv2d(in_chs, branch_chs, k, padding=k // 2, padding_mode=padding_mode, bias=False) for k in kernel_sizes
        )
        self.conv_expand = nn.Conv2d(branch_chs * len(kernel_sizes), out_chs, 1, bias=False)
        self.bn = norm_layer(out_chs)
        self.act = create_act_layer(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.act(self.bn(self.conv_expand(x)))


class SEFusion(nn.Module):
    """Squeeze-and-excitation fusion of the multi-scale features (paper Fig. 4b).

    A global average pool summarises each channel, two fully connected layers (ReLU, then sigmoid)
    turn the summary into a per-channel mask in (0, 1), and the features are multiplied by it, so
    the network can weight each scale according to the content of the whole scan.

    The fully connected layers are 1x1 convolutions on the (N, C, 1, 1) pooled tensor rather than
    ``nn.Linear``: the tensor never leaves NCHW, so the ONNX graph is ReduceMean -> Conv -> Relu ->
    Conv -> Sigmoid -> Mul, with no Flatten -> Gemm -> Reshape round trip whose target shape has to
    be computed from the dynamic batch size; timm's ``SqueezeExcite`` makes the same choice.

    Args:
        chs: Channels of the features (40 in the paper).
        reduction: Squeeze ratio r; the hidden layer has ``max(1, chs // r)`` units.
        act_layer: Activation between the two layers.
        gate_layer: Activation producing the mask.
    """

    def __init__(
        self,
        chs: int = 40,
        reduction: int = 4,
        act_layer: LayerType = "relu",
        gate_layer: LayerType = "sigmoid",
    ) -> None:
        super().__init__()
        rd_chs = max(1, chs // reduction)
        self.fc1 = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = create_act_layer(act_layer, inplace=True)
        self.fc2 = nn.Conv2d(rd_chs, chs, 1, bias=True)
        self.gate = create_act_layer(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean over H, W rather than AdaptiveAvgPool2d: exports to a single ReduceMean for any size.
        mask = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * mask


class DSResidualBlock(nn.Module):
    """Depthwise-separable residual block (paper Fig. 4c).

    ``act(bn2(pw(act(bn1(dw(x))))) + shortcut(x))`` where ``dw`` is a k x k depthwise convolution and
    ``pw`` a 1x1 pointwise convolution. The shortcut is the identity when the channel count is kept,
    else a 1x1 convolution + BN projection (as in ResNet), so every convolution stays BN-foldable.

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        dw_kernel_size: Kernel size of the depthwise convolution (odd).
        padding_mode: Padding of the depthwise convolution.
        act_layer: Activation after the depthwise BN and after the residual add.
        norm_layer: Norm layer after each convolution.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        dw_kernel_size: int = 3,
        padding_mode: str = "zeros",
        act_layer: LayerType = "relu",
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if dw_kernel_size % 2 == 0:
            raise ValueError(f"dw_kernel_size must be odd for symmetric 'same' padding, got {dw_kernel_size}")
        self.conv_dw = nn.Conv2d(
            in_chs,
            in_chs,
            dw_kernel_size,
            padding=dw_kernel_size // 2,
            padding_mode=padding_mode,
            groups=in_chs,
            bias=False,
        )
        self.bn1 = norm_layer(in_chs)
        self.act1 = create_act_layer(act_layer, inplace=True)
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn2 = norm_layer(out_chs)
        self.shortcut = (
            nn.Identity() if in_chs == out_chs else nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, bias=False), norm_layer(out_chs))
        )
        self.act2 = create_act_layer(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.act1(self.bn1(self.conv_dw(x)))
        x = self.bn2(self.conv_pw(x))
        return self.act2(x + shortcut)
