"""DnCNN: the 17-layer residual-learning denoiser (Zhang et al., IEEE TIP 26(7), 2017).

"Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising". The network
predicts the noise and subtracts it from its input: conv + ReLU, fifteen conv + BatchNorm +
ReLU, conv, all 3x3 with 64 channels and zero padding, so the receptive field is 35 x 35 pixels
and the output has the input's size. Reference implementation followed: cszn/KAIR
``models/network_dncnn.py`` (the PyTorch port by the first author), whose middle convolutions
carry no bias because BatchNorm follows them.

The original is a grey-scale (1-channel) model, so nothing is adapted for STM height maps.
"""

from __future__ import annotations

import torch
from torch import nn

ORIGINAL_PARAMETERS = 556_096
ORIGINAL_SOURCE = "DnCNN-S grey (17 layers, 64 channels) as in cszn/KAIR network_dncnn.py: 640 + 15 x 36,992 + 576"

DEPTH = 17
WIDTH = 64


class DnCNN(nn.Module):
    """Noise-predicting plain CNN; the output is the input minus the predicted noise."""

    size_multiple = 1

    def __init__(self, channels: int = 1, depth: int = DEPTH, width: int = WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                # KAIR's BatchNorm settings (momentum 0.1 in PyTorch's convention is the default;
                # eps 1e-4 as in the MatConvNet original).
                nn.BatchNorm2d(width, eps=1e-4),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
