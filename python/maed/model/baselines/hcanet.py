"""HCANet: hybrid convolution and attention network (Hu, Gao, Zhou, Dong and Du, IEEE GRSL 2024).

"Hybrid Convolutional and Attention Network for Hyperspectral Image Denoising" (arXiv 2403.10067).
A Restormer-style U-Net of CAMixing blocks over three levels (48, 96, 192 channels; 2, 3 and 3
blocks; 1, 2 and 4 heads), down-sampled by a 3x3 convolution that halves the channels and a 2x2
pixel-unshuffle, up-sampled by the mirror image, a decoder of 3 blocks at level 2 and 2 at level 1
(at 96 channels: the level-1 skip is concatenated, not reduced), one refinement block, and a global
residual: the network predicts the noise-free cube as the input plus its output. A CAMixing block
is a pre-norm (LayerNorm over channels) residual pair of

- CAFM, the convolution and attention fusion module: a 1x1 then depthwise 3x3 projection to q, k
  and v, feeding two branches that are added. The global branch is transposed (channel)
  self-attention per head: L2-normalised q and k over the pixels, a C/heads x C/heads softmax map
  scaled by a learnt per-head temperature, applied to v, then a 1x1 projection. The local branch
  mixes, per pixel, the 3 * heads groups of q, k and v into 9 channels by a fully connected layer
  (ACmix's shift-and-conv trick), shuffles them so each group of 9 belongs to one within-head
  channel, and applies a grouped 3x3 convolution back to C channels;
- MSFN, the multi-scale feed-forward network: a 1x1 expansion to 3 x 2.66 C, three depthwise 3x3
  branches of dilation 1, 2 and 3, gated as GELU(b1) * b2 * b3, and a 1x1 projection.

Reference implementation followed: summitgao/HCANet ``HCANet.py`` (defaults of ``HCANet()``);
its training code is summitgao/MAFNet (``train.py``, ``utils.py``), whose loss ``training_loss``
reproduces: L1 plus 0.001 times the paper's "global gradient regulariser", the L2 norm (over the
whole batch, not a mean) of the difference of Sobel-x responses of the band-averaged cube in three
orientations. Two orientations are the image's horizontal and vertical gradients; the third runs
across the bands, and a single band has no such gradient, so it is dropped.

Adapted to 1 channel. The original reads a hyperspectral cube of 31 bands (ICVL), and its bands
are simply the input channels: the cube is given a singleton depth axis (``unsqueeze(2)``) and
fed to ``nn.Conv3d`` layers whose input channels are the 31 bands. Our single height channel takes
the place of the 31 bands in the first layer (patch embedding, 31 -> 48 becomes 1 -> 48) and the
last (output projection, 96 -> 31 becomes 96 -> 1); nothing else depends on the band count.

Every 3x3x3 ``Conv3d`` of the original (patch embedding, q/k/v depthwise, local-branch grouped
convolution, MSFN dilation-1 branch, output) runs on that depth-1 volume with depth padding 1, so
only the centre depth slice of each kernel ever meets data; the two outer slices multiply the zero
padding, get zero gradient and never change the output. We therefore write them as ``Conv2d``
3x3 layers holding that centre slice (and the 1x1x1 ``Conv3d`` as 1x1 ``Conv2d``): the same
function, minus 0.41 M weights that are dead in the reference. This also keeps the model 4-D
throughout, so it converts to channels_last and exports without 5-D tensors.

Parameters: 4,083,311 here. The original counts 4,607,741 (``sum(p.numel())`` over the reference
``HCANet()``, 31 bands), of which 485,550 are those dead outer slices; its effective count,
4,122,191, is ``ORIGINAL_PARAMETERS`` (ratio 0.991). Against the nominal count the ratio is 0.886.

One deliberate departure: in the local branch the reference computes ``f_conv =
qkv.permute(0, 2, 3, 1)`` and then reshapes ``qkv`` rather than ``f_conv`` into (pixels,
3 * heads, C/heads). That reinterprets the channel-first memory: each "pixel" row holds 3C values
that are consecutive in memory, mostly neighbours along an image row of one feature map, so the
branch mixes positions and channels in a way that depends on the image width and is no longer
local. The paper presents the branch as the local, convolutional one, and ACmix, which it copies,
mixes channels per pixel; that is what reshaping ``f_conv`` gives, so it is our default.
``reference_local_layout=True`` reproduces the reference's arithmetic exactly (same parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ORIGINAL_PARAMETERS = 4_122_191
ORIGINAL_SOURCE = (
    "summitgao/HCANet HCANet() defaults, 31 bands, counted from the reference structure without the 485,550 "
    "dead outer depth slices of its 3x3x3 Conv3d kernels on a depth-1 volume (nominal sum(p.numel()) 4,607,741)"
)
ORIGINAL_PARAMETERS_NOMINAL = 4_607_741

DIM = 48
BLOCKS = (2, 3, 3)  # encoder levels 1-3; the decoder repeats levels 2 and 1 (the reference's fourth entry is unused)
REFINEMENT_BLOCKS = 1
HEADS = (1, 2, 4)
FFN_EXPANSION = 2.66
LOCAL_MIX = 9  # ACmix: the fully connected layer makes one channel per tap of a 3x3 kernel
GRADIENT_WEIGHT = 0.001  # MAFNet train.py: loss = L1 + 0.001 * gradient loss
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel, with weight and bias (the reference's 'WithBias')."""

    def __init__(self, chs: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(chs))
        self.bias = nn.Parameter(torch.zeros(chs))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Done in NCHW rather than by transposing to (N, HW, C) as the reference does: same
        # numbers, and no layout round trip in the exported graph.
        centred = x - x.mean(1, keepdim=True)
        var = (centred * centred).mean(1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


class ConvAttentionFusion(nn.Module):
    """CAFM: transposed multi-head self-attention (global) plus an ACmix-style convolution (local)."""

    def __init__(self, dim: int, heads: int, reference_local_layout: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.reference_local_layout = reference_local_layout
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        # The reference's fc is a 1x1x1 Conv3d over the 3 * heads axis; a 1x1 Conv2d on the same
        # axis holds the same (9, 3 * heads) weights and 9 biases.
        self.fc = nn.Conv2d(3 * heads, LOCAL_MIX, 1, bias=True)
        self.dep_conv = nn.Conv2d(LOCAL_MIX * dim // heads, dim, 3, padding=1, groups=dim // heads, bias=True)

    def _local(self, qkv: torch.Tensor) -> torch.Tensor:
        n, c3, h, w = qkv.shape
        head_chs = c3 // (3 * self.heads)
        if self.reference_local_layout:
            groups = qkv.reshape(n, h * w, 3 * self.heads, head_chs)
        else:
            groups = qkv.permute(0, 2, 3, 1).reshape(n, h * w, 3 * self.heads, head_chs)
        # (N, 3*heads, HW, C/heads): the group axis becomes the channel axis of the 1x1 mixing.
        mixed = self.fc(groups.permute(0, 2, 1, 3))
        # Shuffle: the 9 mixed values of within-head channel k become channels 9k .. 9k + 8, the
        # group the grouped convolution reads for its k-th output group.
        shuffled = mixed.permute(0, 3, 1, 2).reshape(n, LOCAL_MIX * head_chs, h, w)
        return self.dep_conv(shuffled)

    def attention_map(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(N, heads, C/heads, C/heads) softmax map between the channels of q and k, per head."""
        n, c, h, w = q.shape
        q = F.normalize(q.reshape(n, self.heads, c // self.heads, h * w), dim=-1)
        k = F.normalize(k.reshape(n, self.heads, c // self.heads, h * w), dim=-1)
        return (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x))
        q, k, v = qkv.chunk(3, dim=1)
        attn = self.attention_map(q, k)
        # Attention over channels, not pixels: the map is C/heads square whatever the image size,
        # so cost is linear in the number of pixels.
        out = (attn @ v.reshape(n, self.heads, c // self.heads, h * w)).reshape(n, c, h, w)
        return self.project_out(out) + self._local(qkv)


class MultiScaleFeedForward(nn.Module):
    """MSFN: 1x1 expansion, depthwise 3x3 at dilations 1, 2, 3, gated GELU(b1) * b2 * b3, 1x1 projection."""

    def __init__(self, dim: int, expansion: float = FFN_EXPANSION) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.dwconv1 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.dwconv2 = nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2, groups=hidden, bias=False)
        self.dwconv3 = nn.Conv2d(hidden, hidden, 3, padding=3, dilation=3, groups=hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2, x3 = self.project_in(x).chunk(3, dim=1)
        return self.project_out(F.gelu(self.dwconv1(x1)) * self.dwconv2(x2) * self.dwconv3(x3))


class CAMixingBlock(nn.Module):
    """Pre-norm residual CAFM, then pre-norm residual MSFN."""

    def __init__(self, dim: int, heads: int, reference_local_layout: bool = False) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = ConvAttentionFusion(dim, heads, reference_local_layout)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = MultiScaleFeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _stage(dim: int, heads: int, blocks: int, reference_local_layout: bool) -> nn.Sequential:
    return nn.Sequential(*(CAMixingBlock(dim, heads, reference_local_layout) for _ in range(blocks)))


class HCANet(nn.Module):
    """Three-level CAMixing U-Net with a global residual, as ``HCANet()`` of the reference, for 1 channel."""

    size_multiple = 4  # two 2x2 pixel-unshuffles

    def __init__(
        self,
        channels: int = 1,
        dim: int = DIM,
        blocks: Sequence[int] = BLOCKS,
        refinement_blocks: int = REFINEMENT_BLOCKS,
        heads: Sequence[int] = HEADS,
        reference_local_layout: bool = False,
    ) -> None:
        super().__init__()
        d1, d2, d3 = dim, 2 * dim, 4 * dim
        r = reference_local_layout
        self.patch_embed = nn.Conv2d(channels, d1, 3, padding=1, bias=False)
        self.encoder_level1 = _stage(d1, heads[0], blocks[0], r)
        self.down1_2 = nn.Sequential(nn.Conv2d(d1, d1 // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
        self.encoder_level2 = _stage(d2, heads[1], blocks[1], r)
        self.down2_3 = nn.Sequential(nn.Conv2d(d2, d2 // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
        self.encoder_level3 = _stage(d3, heads[2], blocks[2], r)
        self.up3_2 = nn.Sequential(nn.Conv2d(d3, 2 * d3, 3, padding=1, bias=False), nn.PixelShuffle(2))
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=False)
        self.decoder_level2 = _stage(d2, heads[1], blocks[1], r)
        self.up2_1 = nn.Sequential(nn.Conv2d(d2, 2 * d2, 3, padding=1, bias=False), nn.PixelShuffle(2))
        # Level 1 of the decoder keeps the 2 * dim channels of the concatenation, with one head.
        self.decoder_level1 = _stage(d2, heads[0], blocks[0], r)
        self.refinement = _stage(d2, heads[0], refinement_blocks, r)
        self.output = nn.Conv2d(d2, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(enc3), enc2], dim=1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1))
        return self.output(self.refinement(dec1)) + x

    def training_loss(
        self, noisy: torch.Tensor, clean: torch.Tensor, reconstruction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``reconstruction`` loss plus the reference's global gradient term."""
        output = self(noisy)
        return reconstruction(output, clean) + GRADIENT_WEIGHT * global_gradient_loss(output, clean)


def global_gradient_loss(output: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Sum over the two spatial orientations of the L2 norm of the Sobel-x response to ``output - clean``.

    The reference filters each image and takes the difference; the filter is linear, so filtering
    the difference is the same. Valid convolution (no padding), channels averaged first, as there.
    """
    sobel = torch.tensor(SOBEL_X, dtype=output.dtype, device=output.device)[None, None]
    diff = (output - clean).mean(1, keepdim=True)
    horizontal = F.conv2d(diff, sobel)
    vertical = F.conv2d(diff.transpose(-2, -1), sobel)
    return torch.linalg.vector_norm(horizontal) + torch.linalg.vector_norm(vertical)
