"""PDA-Net: a U-Net with pyramid attention ("PDANet", after CycleISP and PANet); identification uncertain.

Which network the MAED-CNN paper means. Its Table 1 and Fig. 5 compare against "PDA-Net" with no
citation. We found no published image-denoising paper of that name. The candidates considered:

- ``PDANet`` in a public GitHub denoising/raw-ISP code base (commented "Inspired by CycleISP and
  PaNet"; the repository's name and any paper could not be recovered): a U-Net whose encoder
  stages carry residual pyramid attention blocks taken from PANet, in a file that also defines
  CycleISP's dual attention unit (DAU). Pyramid + dual attention, "PDA". **Chosen**: the only
  image-restoration network called PDANet we found, and what code search for the name with
  "denoising" returns. Caveat: in the stored version DAU is defined but not wired into
  ``PDANet.forward``; we follow the code as stored, so our network has pyramid attention only.
- PANet, "Pyramid Attention Networks for Image Restoration" (Mei et al., arXiv 2004.13824,
  SHI-Labs/Pyramid-Attention-Networks): a published denoiser built on the same attention module,
  but named PANet, not PDA-Net.
- "PDANet: Pyramid Dual Attention Network for Semantic Segmentation" (lgqfhwy/PDANet): matches the
  name, but is a segmentation network.
- RanchOoY/PDA-Net: a low-light enhancement model (LYT-Net-based Y/UV paths, deformable
  convolutions, noise-gated blocks), unpublished and work in progress; spelled like the paper's
  "PDA-Net" but not a denoiser of single-channel images and most likely later than the paper.
- PDANet for visual emotion regression (ZizhouJia/PDANet), PDA-Net for person re-identification
  (yujheli/PDA-Net), PDANet for crowd counting: other tasks.

The network (reference: that ``PDANet`` class with PANet's ``PyramidAttention``, ``BasicBlock``
and ``ResBlock``). A head (3x3 conv to 64, PReLU, 3x3 conv); three encoder stages, each 2x2 max
pooling, a 3x3 conv + PReLU to 128, 256, 384 channels, then a residual pyramid attention block
(ResBlock, PyramidAttention, ResBlock) with pyramid levels 4, 3 and 2; three decoder stages, each
bilinear (align_corners) 2x up-sampling, concatenation with the skip, a 3x3 conv + PReLU; a long
skip adding the head's features; and a tail that up-samples 2x bilinearly, then 3x3 conv to the
output channels, ReLU, 1x1 conv. There is no image-level residual (the original's input and
output live on different grids, see below).

PyramidAttention (PANet) is non-local attention over a multi-scale pyramid of the same features:
keys and values are 3x3 patches of the features rescaled by 1, 0.9, 0.8, ... (one scale per
level), keys through a 1x1 conv + PReLU to half the channels, values through a 1x1 conv + PReLU;
every query patch (also 1x1 conv + PReLU to half the channels) is matched by dot product with
every L2-normalised key patch, a softmax at temperature 1/10 weighs them, and the value patches
are pasted back by a transposed convolution (divided by 4) and added to the input. The reference
loops over the batch, using each image's patches as convolution kernels; we compute the same thing
batched, as matrix products over unfolded patches with the transposed convolution written as an
overlap-add of nine shifted slices (``fold`` needs ONNX opset 18). Cost: the match matrix is
(pixels x all pyramid patches), about 3 (pixels)^2 at the first stage, so memory grows with the
square of the tile area: 0.2 GB for a 256 x 256 tile.

Adapted to 1 channel. The original's head takes a raw Bayer frame packed into four
half-resolution planes and its tail up-samples 2x to a full-resolution RGB image (three output
channels); this is inferred, as its channel counts come from a config we could not see, but a 2x
up-sampling tail only fits a half-resolution packed input, and the same file's other model does the
same. We pack the scan the same way (2x2 space-to-depth), so the head and everything up to
the tail are the original's, and the tail makes one output channel instead of three; the four
planes are four interleaved sub-scans rather than four colours. The tail's final ReLU then 1x1 conv
means the output is a * ReLU(z) + b per channel, bounded on one side by the learnt b: as in the
original. Because 2x2 packing and three poolings divide the sides by 16, and the decoder's skips
are then exact, the reference's padding of mismatched skips is left out. Sides must also be at
least 32 so that the last stage's 0.9-scaled pyramid level is at least one pixel.

Small departures from the reference as stored. The code base's own ``utils`` were not found, so
its ``BasicBlock``/``ResBlock`` are read as PANet's: conv with bias then PReLU, and conv, PReLU,
conv plus the input; the 3x3 kernel of the encoder/decoder ``BasicBlock`` is our reading (the call
passes no kernel size). Those take ``act=nn.PReLU()`` as a default argument, so all blocks built
with the default share one PReLU slope (one for the six 3x3 encoder/decoder blocks, one for the six
ResBlocks); we give each block its own (+10 parameters).

Training: there is no normalisation anywhere, and at the comparison's common peak rate of 1e-3 it
diverges within tens of steps, even after a warm-up and with gradients clipped to norm 1, after
which the one-channel ReLU in the tail goes dead (all negative) and the output is the constant b
for good. At 3e-4 (and at PANet's 1e-4) it trains stably, so the protocol gives it 3e-4
(``maed.training.config.STABLE_LEARNING_RATES``). Parameters: 12,042,905 here against 12,044,059 for the original
(4 planes in, RGB out, counted from the reference structure), ratio 0.9999.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ORIGINAL_PARAMETERS = 12_044_059
ORIGINAL_SOURCE = (
    "PDANet of an unattributed GitHub code base ('Inspired by CycleISP and PaNet') with PANet's blocks, "
    "4 packed Bayer planes in, RGB out (inferred), counted from the reference structure"
)

PACK = 2
FEATURES = 64
WIDTHS = (128, 256, 384)
LEVELS = (4, 3, 2)  # pyramid levels of the three encoder stages
REDUCTION = 2  # matching features have half the channels
SOFTMAX_SCALE = 10.0
PASTE_SCALE = 0.25  # the reference divides the pasted patches by 4
NORM_FLOOR = 1e-4  # the reference's escape_NaN floor on key-patch norms


def _conv(in_chs: int, out_chs: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel, padding=kernel // 2)


def _conv_prelu(in_chs: int, out_chs: int, kernel: int = 3) -> nn.Sequential:
    """PANet's BasicBlock: conv with bias, then PReLU."""
    return nn.Sequential(_conv(in_chs, out_chs, kernel), nn.PReLU())


class ResBlock(nn.Module):
    """PANet's (EDSR's) residual block: 3x3, PReLU, 3x3, plus the input."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(chs, chs), nn.PReLU(), _conv(chs, chs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def _patches(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C*9, H*W): the zero-padded 3x3 patch around every pixel, as ``unfold`` lays it out.

    Nine shifted slices rather than ``F.unfold`` so the exported graph is plain Slice/Concat.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    taps = [padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)]
    return torch.stack(taps, dim=2).reshape(n, c * 9, h * w)


def _overlap_add(cols: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse layout of ``_patches``, summing overlaps: (N, C*9, H*W) -> (N, C, H, W).

    This is ``F.fold`` with a 3x3 kernel and padding 1, i.e. the reference's
    ``conv_transpose2d(scores, patches, padding=1)`` once the scores have been multiplied into the
    patches: tap (i, j) of the patch at p lands on pixel p + (i - 1, j - 1).
    """
    n = cols.shape[0]
    taps = F.pad(cols.reshape(n, -1, 9, h, w), (1, 1, 1, 1))
    out = taps[:, :, 0, 2 : 2 + h, 2 : 2 + w]
    for t in range(1, 9):
        i, j = divmod(t, 3)
        out = out + taps[:, :, t, 2 - i : 2 - i + h, 2 - j : 2 - j + w]
    return out


class PyramidAttention(nn.Module):
    """PANet's pyramid attention: each 3x3 patch attends to every 3x3 patch of a multi-scale feature pyramid."""

    def __init__(self, chs: int, levels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        self.scales = [1 - i / 10 for i in range(levels)]
        self.match_base = _conv_prelu(chs, chs // reduction, 1)  # queries (the reference's conv_match_L_base)
        self.match = _conv_prelu(chs, chs // reduction, 1)  # keys, at every scale
        self.assembly = _conv_prelu(chs, chs, 1)  # values, at every scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        keys, values = [], []
        for scale in self.scales:
            # scale_factor, as the reference: the sampling grid follows the nominal scale, not
            # the ratio of the rounded sizes.
            ref = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            keys.append(_patches(self.match(ref)))
            values.append(_patches(self.assembly(ref)))
        key = torch.cat(keys, dim=2)  # (N, C/2*9, L): L patches over all pyramid levels
        value = torch.cat(values, dim=2)  # (N, C*9, L)
        key = key / key.norm(dim=1, keepdim=True).clamp_min(NORM_FLOOR)
        query = _patches(self.match_base(x))  # (N, C/2*9, HW); not normalised, as in the reference
        weights = torch.softmax(SOFTMAX_SCALE * (key.transpose(1, 2) @ query), dim=1)  # (N, L, HW)
        return _overlap_add(value @ weights, h, w) * PASTE_SCALE + x


class Down(nn.Module):
    """Max-pool 2x2, 3x3 conv + PReLU, residual pyramid attention block (ResBlock, attention, ResBlock)."""

    def __init__(self, in_chs: int, out_chs: int, levels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.MaxPool2d(2),
            _conv_prelu(in_chs, out_chs),
            ResBlock(out_chs),
            PyramidAttention(out_chs, levels),
            ResBlock(out_chs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Up(nn.Module):
    """Bilinear 2x up-sampling, concatenation after the skip, 3x3 conv + PReLU."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.fuse = _conv_prelu(in_chs, out_chs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.fuse(torch.cat([skip, x], dim=1))


class PDANet(nn.Module):
    """Pyramid-attention U-Net on the 2x2-packed scan, with the original's up-sampling tail, 1 channel out."""

    size_multiple = PACK * 8  # packing, then three 2x2 poolings

    def __init__(
        self,
        channels: int = 1,
        features: int = FEATURES,
        widths: Sequence[int] = WIDTHS,
        levels: Sequence[int] = LEVELS,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.head = nn.Sequential(_conv(channels * PACK**2, features), nn.PReLU(), _conv(features, features))
        self.down1 = Down(features, w1, levels[0])
        self.down2 = Down(w1, w2, levels[1])
        self.down3 = Down(w2, w3, levels[2])
        self.up3 = Up(w3 + w2, w2)
        self.up2 = Up(w2 + w1, w1)
        self.up1 = Up(w1 + features, features)
        self.tail = nn.Sequential(
            nn.Upsample(scale_factor=PACK, mode="bilinear", align_corners=True),
            _conv(features, channels),
            nn.ReLU(),
            _conv(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.head(F.pixel_unshuffle(x, PACK))
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        out = self.up1(self.up2(self.up3(x4, x3), x2), x1) + x1
        return self.tail(out)
