"""The training loss: L1 of the error after its best-fit plane is removed.

A height map has no absolute zero and no meaningful tilt, so an output that differs from
the target by a plane is as good as the target; the evaluation metrics remove that plane
too. L1 rather than L2 because scars and tip changes leave a few large errors that should
not dominate the gradient. ``gradient_l1`` is an optional extra term (``--grad-weight``) that
weighs fine structure: product training uses it, the Table 1 protocol does not.
"""

from __future__ import annotations

import torch


def _plane_basis(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Orthonormal basis (H*W, 3) of constant, x and y ramps."""
    y, x = torch.meshgrid(
        torch.linspace(-1, 1, height, device=device), torch.linspace(-1, 1, width, device=device), indexing="ij"
    )
    basis = torch.stack([torch.ones_like(x), x, y], dim=-1).reshape(-1, 3)
    q, _ = torch.linalg.qr(basis)
    return q


def remove_plane(error: torch.Tensor) -> torch.Tensor:
    """``error`` (N, 1, H, W) minus each sample's least-squares plane."""
    n, _, h, w = error.shape
    q = _plane_basis(h, w, error.device)
    flat = error.reshape(n, -1)
    return (flat - (flat @ q) @ q.T).reshape(error.shape)


def plane_free_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return remove_plane(output - target).abs().mean()


def gradient_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 of the error's finite differences along x and y.

    Atoms, vacancies and step edges live in the gradients; a smooth output that misses them
    costs little in plain L1 when they are small, so this term weighs them on their own.
    """
    error = output - target
    return error.diff(dim=-1).abs().mean() + error.diff(dim=-2).abs().mean()
