"""The training loss: L1 of the error after its best-fit plane is removed.

A height map has no absolute zero and no meaningful tilt, so an output that differs from
the target by a plane is as good as the target; the evaluation metrics remove that plane
too. L1 rather than L2 because scars and tip changes leave a few large errors that should
not dominate the gradient. ``gradient_l1`` (``--grad-weight``) and ``spectral_peak_loss``
(``--fourier-weight``) are optional extra terms that weigh fine structure and lattice contrast:
product training uses them, the Table 1 protocol does not. ``pass_pair_l1`` is the loss of a
real pass pair, whose target is the other, noisy pass rather than the clean surface.
"""

from __future__ import annotations

import torch

from ..model.plane import remove_plane


def plane_free_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return remove_plane(output - target).abs().mean()


def gradient_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 of the error's finite differences along x and y.

    Atoms, vacancies and step edges live in the gradients; a smooth output that misses them
    costs little in plain L1 when they are small, so this term weighs them on their own.
    """
    error = output - target
    return error.diff(dim=-1).abs().mean() + error.diff(dim=-2).abs().mean()


def spectral_peak_loss(output: torch.Tensor, target: torch.Tensor, share: float = 0.01) -> torch.Tensor:
    """Mean |log| of the output's power over the target's at the target's strongest ``share`` of Fourier bins.

    A lattice lives in a few Fourier peaks; an output that keeps their positions but halves their
    amplitude (softened atoms) costs little in pixel L1 and log(4) per peak bin here. Planes are
    removed first; the floor (1e-3 of the target's mean power) keeps empty bins from dominating.
    """
    power = lambda x: torch.fft.rfft2(remove_plane(x), norm="ortho").abs().square().flatten(1)  # noqa: E731
    p_out, p_target = power(output), power(target)
    k = max(1, int(share * p_target.shape[1]))
    strongest = p_target.topk(k, dim=1).indices
    floor = 1e-3 * p_target.mean(dim=1, keepdim=True)
    ratio = (p_out.gather(1, strongest) + floor) / (p_target.gather(1, strongest) + floor)
    return ratio.log().abs().mean()


def pass_pair_l1(output: torch.Tensor, other_pass: torch.Tensor) -> torch.Tensor:
    """Per sample: L1 of the error against the other pass of a real scan, each row's mean and the plane off.

    The other pass has noise of its own, independent of the input's, so the error's expectation is
    smallest at the clean surface (Noise2Noise; L1 seeks the median, which for noise symmetric
    about zero is the same). Line offsets differ between the passes whatever the surface, so they
    are not judged.
    """
    error = remove_plane(output - other_pass)
    return (error - error.mean(dim=-1, keepdim=True)).abs().mean(dim=(1, 2, 3))
