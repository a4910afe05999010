"""Building any model ``maed`` knows, MAED-CNN or baseline, from its name."""

from __future__ import annotations

import torch
from torch import nn

from ..zoo import ARCHITECTURES, resolve
from .baselines import BASELINES
from .maed_cnn import CONFIGS, MAEDCNN, ModelConfig


def build_model(name_or_config: str | ModelConfig) -> nn.Module:
    """A model with random weights, from an architecture name (or alias) or a MAED-CNN ``ModelConfig``."""
    if isinstance(name_or_config, ModelConfig):
        return MAEDCNN(name_or_config)
    name = resolve(name_or_config)
    if name in CONFIGS:
        return MAEDCNN(CONFIGS[name])
    if name in BASELINES:
        # NHWC, as MAED-CNN: oneDNN's NHWC kernels are the faster ones on CPU, for the baselines'
        # depthwise layers (PMRID) by far; every model is timed and trained alike.
        return BASELINES[name].network().to(memory_format=torch.channels_last)
    raise ValueError(f"unknown model {name_or_config!r}; known: {', '.join(ARCHITECTURES)}")
