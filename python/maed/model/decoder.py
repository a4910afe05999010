"""U-Net decoder of MAED-CNN, after segmentation_models_pytorch's ``decoders/unet/decoder.py``.

Each stage doubles the resolution, concatenates the encoder skip of that resolution and mixes the
result with depthwise-separable residual blocks. The features are ordered shallow to deep as in smp;
the shallowest skip is the full-resolution 40-channel fused stem output, so the last stage ends at
the input resolution without a final upsampling of a skip-less map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import LayerType
from torch import nn

from .blocks import DSResidualBlock

__all__ = ["DecoderBlock", "UnetDecoder"]


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip, then ``num_blocks`` DSResidualBlocks.

    Args:
        in_chs: Channels of the deeper input.
        skip_chs: Channels of the skip connection.
        out_chs: Output channels.
        num_blocks: DSResidualBlocks after the concatenation; the first one projects to ``out_chs``.
        upsample_mode: ``F.interpolate`` mode. ``scale_factor=2`` keeps ONNX export shape-free
            (one Resize node with constant scales) for any input size.
        act_layer: Activation inside the residual blocks.
    """

    def __init__(
        self,
        in_chs: int,
        skip_chs: int,
        out_chs: int,
        num_blocks: int = 1,
        upsample_mode: str = "nearest",
        act_layer: LayerType = "relu",
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.upsample_mode = upsample_mode
        # align_corners only applies to the interpolating modes; False maps to half_pixel, the
        # default coordinate transformation of ONNX Resize.
        self.align_corners = False if upsample_mode in ("linear", "bilinear", "bicubic") else None
        self.blocks = nn.Sequential(
            DSResidualBlock(in_chs + skip_chs, out_chs, act_layer=act_layer),
            *(DSResidualBlock(out_chs, out_chs, act_layer=act_layer) for _ in range(num_blocks - 1)),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode=self.upsample_mode, align_corners=self.align_corners)
        return self.blocks(torch.cat([x, skip], dim=1))


class UnetDecoder(nn.Module):
    """Chain of DecoderBlocks from the deepest feature map back to the shallowest skip.

    Args:
        feature_chs: Channels of the feature maps, shallow to deep; each is half the resolution of
            the previous one. ``feature_chs[0]`` is the full-resolution stem output.
        decoder_chs: Output channels of each stage, deep to shallow; one stage per skip, i.e.
            ``len(feature_chs) - 1`` stages.
        num_blocks: DSResidualBlocks per stage.
        upsample_mode: ``F.interpolate`` mode of every stage.
        act_layer: Activation inside the residual blocks.
    """

    def __init__(
        self,
        feature_chs: Sequence[int],
        decoder_chs: Sequence[int],
        num_blocks: int = 1,
        upsample_mode: str = "nearest",
        act_layer: LayerType = "relu",
    ) -> None:
        super().__init__()
        if len(decoder_chs) != len(feature_chs) - 1:
            raise ValueError(f"need one decoder width per skip: {len(feature_chs) - 1} skips, got {len(decoder_chs)} widths")
        skip_chs = list(reversed(feature_chs[:-1]))
        in_chs = [feature_chs[-1], *decoder_chs[:-1]]
        self.stages = nn.ModuleList(
            DecoderBlock(i, s, o, num_blocks=num_blocks, upsample_mode=upsample_mode, act_layer=act_layer)
            for i, s, o in zip(in_chs, skip_chs, decoder_chs)
        )
        self.out_chs = decoder_chs[-1]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, skip in zip(self.stages, reversed(features[:-1])):
            x = stage(x, skip)
        return x
