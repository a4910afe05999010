"""Helpers of the kernel and plugin tests: random layers in eval mode and the error measure."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics far from the identity, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
            elif isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.weight[0].numel() ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.5)
    return module.eval()


def error_of_range(got: np.ndarray, want: np.ndarray) -> float:
    """Largest difference over the range of ``want``; NaN (an unwritten element) is infinite."""
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(np.inf if np.isnan(diff).any() else diff.max() / max(np.ptp(want), 1e-30))
