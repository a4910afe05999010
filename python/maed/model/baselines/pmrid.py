"""PMRID: Megvii's practical mobile raw image denoiser (Wang et al., ECCV 2020).

"Practical Deep Raw Image Denoising on Mobile Devices". A U-Net built for phones: every block is
a separable 5x5 convolution pair (depthwise 5x5, pointwise 1x1) with a residual projection; four
encoder stages (16 -> 64 -> 128 -> 256 -> 512 channels, stride 2 each, 2, 2, 4 and 4 blocks with a
4x narrower middle), a separable bottleneck to 64 channels, four decoder stages that refine,
up-sample by a 2x2 transposed convolution and add a projected skip, and a global residual.
Reference implementation followed: MegEngine/PMRID ``models/net_torch.py``.

Adapted to 1 channel: the original reads a raw Bayer frame packed into four half-resolution
planes (R, Gr, Gb, B). We pack the scan the same way (2x2 space-to-depth, ``pixel_unshuffle``)
and unpack the output (``pixel_shuffle``), so the network, its parameter count and its receptive
field in input pixels are exactly the original's; the four planes are four interleaved
sub-scans rather than four colours. The original's k-sigma noise transform, which maps the
camera's ISO-dependent Poisson-Gaussian noise to a fixed level, has no STM counterpart and is
left out; our inputs are already normalised to unit standard deviation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ORIGINAL_PARAMETERS = 1_031_908
ORIGINAL_SOURCE = "MegEngine/PMRID models/net_torch.py Network(), 4-plane Bayer input, counted from the reference structure"

PACK = 2


def _conv(in_chs: int, out_chs: int, kernel: int, stride: int = 1, separable: bool = False, relu: bool = False) -> nn.Sequential:
    """A plain or separable (depthwise without bias, then pointwise with bias) convolution."""
    pad = kernel // 2
    if separable:
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, in_chs, kernel, stride, pad, groups=in_chs, bias=False),
            nn.Conv2d(in_chs, out_chs, 1),
        ]
    else:
        layers = [nn.Conv2d(in_chs, out_chs, kernel, stride, pad)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class EncoderBlock(nn.Module):
    """Two separable 5x5 convolutions plus a projection (identity where the shape is unchanged), ReLU."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(in_chs, mid_chs, 5, stride, separable=True, relu=True)
        self.conv2 = _conv(mid_chs, out_chs, 5, separable=True)
        self.proj = nn.Identity() if stride == 1 and in_chs == out_chs else _conv(in_chs, out_chs, 3, stride, separable=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.proj(x))


def encoder_stage(in_chs: int, out_chs: int, blocks: int) -> nn.Sequential:
    """A stride-2 block then ``blocks - 1`` stride-1 blocks, each with a 4x narrower middle."""
    return nn.Sequential(
        EncoderBlock(in_chs, out_chs // 4, out_chs, stride=2),
        *(EncoderBlock(out_chs, out_chs // 4, out_chs) for _ in range(blocks - 1)),
    )


class DecoderBlock(nn.Module):
    """Two separable 3x3 convolutions (ReLU between) plus the input."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.conv0 = _conv(chs, chs, 3, separable=True, relu=True)
        self.conv1 = _conv(chs, chs, 3, separable=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(self.conv0(x))


class DecoderStage(nn.Module):
    """Refine, up-sample 2x by a transposed convolution, add the projected skip."""

    def __init__(self, in_chs: int, skip_chs: int, out_chs: int) -> None:
        super().__init__()
        self.refine = DecoderBlock(in_chs)
        self.upsample = nn.ConvTranspose2d(in_chs, out_chs, 2, stride=2)
        self.skip = _conv(skip_chs, out_chs, 3, separable=True, relu=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.refine(x)) + self.skip(skip)


class PMRID(nn.Module):
    """PMRID on a 2x2-packed scan: (N, 1, H, W) -> four (H/2, W/2) planes -> network -> unpacked."""

    size_multiple = PACK * 16  # packing, then four stride-2 encoder stages

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        planes = channels * PACK * PACK
        self.conv0 = _conv(planes, 16, 3, relu=True)
        self.enc1 = encoder_stage(16, 64, 2)
        self.enc2 = encoder_stage(64, 128, 2)
        self.enc3 = encoder_stage(128, 256, 4)
        self.enc4 = encoder_stage(256, 512, 4)
        self.bottleneck = _conv(512, 64, 3, separable=True, relu=True)
        self.dec1 = DecoderStage(64, 256, 64)
        self.dec2 = DecoderStage(64, 128, 32)
        self.dec3 = DecoderStage(32, 64, 32)
        self.dec4 = DecoderStage(32, 16, 16)
        self.out0 = DecoderBlock(16)
        self.out1 = _conv(16, planes, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = F.pixel_unshuffle(x, PACK)
        s0 = self.conv0(packed)
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        y = self.bottleneck(self.enc4(s3))
        y = self.dec4(self.dec3(self.dec2(self.dec1(y, s3), s2), s1), s0)
        return F.pixel_shuffle(packed + self.out1(self.out0(y)), PACK)
