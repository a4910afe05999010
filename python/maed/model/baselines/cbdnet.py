"""CBDNet: convolutional blind denoising (Guo et al., CVPR 2019).

"Toward Convolutional Blind Denoising of Real Photographs". Two sub-networks: a noise-estimation
subnet (five plain 3x3 convolutions of 32 channels with ReLU) maps the noisy image to a noise
level map, and a non-blind U-Net (16 convolutions; two average-pool down-samplings, 64, 128 and
256 channels; transposed-convolution up-sampling added to the skip) denoises the image given that
map, with a global residual. Training adds to the reconstruction loss an asymmetric loss on the
noise map, which punishes under-estimating the noise more than over-estimating it (the paper
found under-estimation leaves noise behind), and a total-variation term that keeps the map
smooth. Reference implementation followed: IDKiro/CBDNet-pytorch ``model/cbdnet.py``.

Adapted to 1 channel: the estimation subnet takes 1 channel and returns a 1-channel map, the
U-Net takes the scan and the map (2 channels; 6 in the RGB original) and returns 1 channel.

The asymmetric loss needs the true noise level map, which our simulated pairs give: the local
root-mean-square of (noisy - clean) over a 7 x 7 window, in the network's normalised units. The
weights (0.5 for the asymmetric term with alpha 0.3, 0.05 for total variation) are the paper's;
the reconstruction term is the loss every model in our comparison is trained with.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..plane import remove_plane

ORIGINAL_PARAMETERS = 4_365_382
ORIGINAL_SOURCE = "IDKiro/CBDNet-pytorch, RGB: estimation subnet 29,507 + U-Net 4,335,875 (paper: 4.4M)"

ASYMMETRY = 0.3
ASYMMETRIC_WEIGHT = 0.5
TV_WEIGHT = 0.05
NOISE_WINDOW = 7


def _conv_relu(in_chs: int, out_chs: int) -> list[nn.Module]:
    return [nn.Conv2d(in_chs, out_chs, 3, padding=1), nn.ReLU(inplace=True)]


def _stack(in_chs: int, out_chs: int, count: int) -> nn.Sequential:
    layers = _conv_relu(in_chs, out_chs)
    for _ in range(count - 1):
        layers += _conv_relu(out_chs, out_chs)
    return nn.Sequential(*layers)


class NoiseEstimator(nn.Module):
    """Five 3x3 conv + ReLU layers: a non-negative noise level map of the input's size."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(*_stack(channels, width, 4), *_conv_relu(width, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class NonBlindUNet(nn.Module):
    """The denoising U-Net: 2 + 3 + 6 + 3 + 2 convolutions and a 1x1 output; skips are added."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.inc = _stack(in_chs, 64, 2)
        self.enc1 = _stack(64, 128, 3)
        self.bottom = _stack(128, 256, 6)
        self.up1 = nn.ConvTranspose2d(256, 128, 2, stride=2)
        self.dec1 = _stack(128, 128, 3)
        self.up2 = nn.ConvTranspose2d(128, 64, 2, stride=2)
        self.dec2 = _stack(64, 64, 2)
        self.out = nn.Conv2d(64, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.inc(x)
        half = self.enc1(F.avg_pool2d(full, 2))
        quarter = self.bottom(F.avg_pool2d(half, 2))
        half = self.dec1(self.up1(quarter) + half)
        full = self.dec2(self.up2(half) + full)
        return self.out(full)


class CBDNet(nn.Module):
    """Noise-level estimation, then non-blind denoising of the scan given that map."""

    size_multiple = 4

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.estimator = NoiseEstimator(channels)
        self.denoiser = NonBlindUNet(2 * channels, channels)

    def denoise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean estimate and the estimated noise level map."""
        level = self.estimator(x)
        return x + self.denoiser(torch.cat([x, level], dim=1)), level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoise(x)[0]

    def training_loss(
        self, noisy: torch.Tensor, clean: torch.Tensor, reconstruction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``reconstruction`` loss plus the paper's asymmetric and total-variation terms on the noise map."""
        output, level = self.denoise(noisy)
        return (
            reconstruction(output, clean)
            + ASYMMETRIC_WEIGHT * asymmetric_loss(level, noise_level_map(noisy, clean))
            + TV_WEIGHT * total_variation(level)
        )


def asymmetric_loss(estimate: torch.Tensor, truth: torch.Tensor, alpha: float = ASYMMETRY) -> torch.Tensor:
    """Squared error of the noise map, weighted 1 - alpha where it under-estimates and alpha where it over-estimates."""
    under = (estimate < truth).float()
    return (torch.abs(alpha - under) * (estimate - truth) ** 2).mean()


def total_variation(level: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring values along both axes."""
    return (level[..., 1:, :] - level[..., :-1, :]).pow(2).mean() + (level[..., 1:] - level[..., :-1]).pow(2).mean()


def noise_level_map(noisy: torch.Tensor, clean: torch.Tensor, window: int = NOISE_WINDOW) -> torch.Tensor:
    """Local RMS of the noise in a ``window`` x ``window`` neighbourhood (replicate-padded edges).

    The noise is the difference less its best-fit plane: a height map has no absolute zero or tilt
    (the loss ignores them too), and a scan's offset is not noise.
    """
    pad = window // 2
    power = F.pad(remove_plane(noisy - clean) ** 2, (pad, pad, pad, pad), mode="replicate")
    return F.avg_pool2d(power, window, stride=1).sqrt()
