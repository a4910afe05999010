"""RIDNet: real image denoising with feature attention (Anwar and Barnes, ICCV 2019).

"Real Image Denoising with Feature Attention". A head convolution, four enhancement attention
modules (EAM) and a tail convolution, with a long skip from input to output. Each EAM is a
merge-and-run unit (two branches of dilated 3x3 convolutions, dilations 1-2 and 3-4, merged by a
3x3 convolution, with a local skip), a residual block, an enhanced residual block (3x3, 3x3, 1x1)
and feature (channel) attention: global average pooling, 1x1 squeeze to 64 / 16 = 4 channels,
ReLU, 1x1 expand, sigmoid. 64 channels throughout, no down-sampling. Reference implementation
followed: saeed-anwar/RIDNet ``TestCode/code/model/ridnet.py`` and ``ops.py``.

Adapted to 1 channel: the head takes 1 channel and the tail returns 1 (3 in the original, for
RGB). The original's fixed mean-shift layers (subtracting the DIV2K RGB mean before the head,
adding it back after the tail) are left out: our input is already normalised to zero mean, and
they hold no trainable parameters.
"""

from __future__ import annotations

import torch
from torch import nn

ORIGINAL_PARAMETERS = 1_499_347
ORIGINAL_SOURCE = "saeed-anwar/RIDNet, RGB, n_feats 64, reduction 16 (paper: 1.5M); counted from the reference structure"

WIDTH = 64
BLOCKS = 4
REDUCTION = 16


def _conv(in_chs: int, out_chs: int, kernel: int = 3, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel, padding=dilation * (kernel // 2), dilation=dilation)


class MergeAndRun(nn.Module):
    """Two dilated branches (dilations 1 then 2, and 3 then 4) merged by a 3x3 conv, plus the input."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        relu = nn.ReLU(inplace=True)
        self.near = nn.Sequential(_conv(chs, chs, dilation=1), relu, _conv(chs, chs, dilation=2), relu)
        self.far = nn.Sequential(_conv(chs, chs, dilation=3), relu, _conv(chs, chs, dilation=4), relu)
        self.merge = nn.Sequential(_conv(2 * chs, chs), relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([self.near(x), self.far(x)], dim=1)) + x


class ResidualBlock(nn.Module):
    """3x3, ReLU, 3x3, plus the input, ReLU."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(chs, chs), nn.ReLU(inplace=True), _conv(chs, chs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class EnhancedResidualBlock(nn.Module):
    """3x3, ReLU, 3x3, ReLU, 1x1, plus the input, ReLU."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        relu = nn.ReLU(inplace=True)
        self.body = nn.Sequential(_conv(chs, chs), relu, _conv(chs, chs), relu, _conv(chs, chs, kernel=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class FeatureAttention(nn.Module):
    """Channel attention: pooled statistics squeezed by ``reduction`` and expanded to per-channel gates."""

    def __init__(self, chs: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            _conv(chs, chs // reduction, kernel=1),
            nn.ReLU(inplace=True),
            _conv(chs // reduction, chs, kernel=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class EnhancementAttentionModule(nn.Module):
    def __init__(self, chs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(MergeAndRun(chs), ResidualBlock(chs), EnhancedResidualBlock(chs), FeatureAttention(chs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RIDNet(nn.Module):
    """Head, four EAMs, tail; the output is the input plus the tail's correction."""

    size_multiple = 1

    def __init__(self, channels: int = 1, width: int = WIDTH, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.head = nn.Sequential(_conv(channels, width), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*(EnhancementAttentionModule(width) for _ in range(blocks)))
        self.tail = _conv(width, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(self.body(self.head(x)))
