"""A batch's least-squares plane, in torch: what a height map's error is measured without.

A height map has no absolute zero and no meaningful tilt, so an error that is a plane is no error.
The training loss (``maed.training.loss``) and CBDNet's true noise level map
(``maed.model.baselines.cbdnet``) both remove it; it lives with the networks so that they need
nothing from training (docs/architecture.md).
"""

from __future__ import annotations

import torch


def _plane_basis(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Orthonormal basis (H*W, 3) of constant, x and y ramps."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, height, device=device), torch.linspace(-1, 1, width, device=device), indexing="ij")
    basis = torch.stack([torch.ones_like(x), x, y], dim=-1).reshape(-1, 3)
    q, _ = torch.linalg.qr(basis)
    return q


def remove_plane(error: torch.Tensor) -> torch.Tensor:
    """``error`` (N, 1, H, W) minus each sample's least-squares plane."""
    n, _, h, w = error.shape
    q = _plane_basis(h, w, error.device)
    flat = error.reshape(n, -1)
    return (flat - (flat @ q) @ q.T).reshape(error.shape)
