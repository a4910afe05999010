"""The training loss: L1 of the error after its best-fit plane is removed.

A height map has no absolute zero and no meaningful tilt, so an output that differs from
the target by a plane is as good as the target; the evaluation metrics remove that plane
too. L1 rather than L2 because scars and tip changes leave a few large errors that should
not dominate the gradient. ``gradient_l1`` (``--grad-weight``) and ``spectral_peak_loss``
(``--fourier-weight``) are optional extra terms that weigh fine structure and lattice contrast:
product training uses them, the Table 1 protocol does not. ``row_level_l1`` (``--rows-weight``) weighs the
error's level per row on its own: a level left on whole rows (a drift or offsets kept, a profile along the slow
axis drawn) is what the network lost by on simulators it never saw (``docs/model.md``), and in plain L1 it costs
no more than scattered error of the same size. ``pass_pair_l1`` is the loss of a
real pass pair, whose target is the other, noisy pass rather than the clean surface.

``noise_weights`` (``--relative-loss``) weighs each sample by the inverse of its noise, so the loss is each
scan's error relative to its noise: the evaluation's per-scan PSNR in dB is judged that way too. Without it a
quiet scan (noise a fiftieth of its relief) adds almost nothing to a plain L1 in the network's units, and the
network trained so was 1.3 to 3.2 times worse than the raw scan on such scans (twenty-seventh session,
``docs/model.md``).
"""

from __future__ import annotations

import torch

from ..model.plane import remove_plane

NOISE_FLOOR = 0.01
"""Least noise (in the network's units, where the input has unit standard deviation) that ``noise_weights``
divides by: a scan cleaner than 1 % of its relief weighs as one at 1 %."""


def plane_free_l1(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 of the error less its plane; ``weights`` (N,) weigh each sample's mean."""
    per_sample = remove_plane(output - target).abs().mean(dim=(1, 2, 3))
    return per_sample.mean() if weights is None else (weights * per_sample).mean()


def gradient_l1(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L1 of the error's finite differences along x and y; ``weights`` as for ``plane_free_l1``.

    Atoms, vacancies and step edges live in the gradients; a smooth output that misses them
    costs little in plain L1 when they are small, so this term weighs them on their own.
    """
    error = output - target
    per_sample = error.diff(dim=-1).abs().mean(dim=(1, 2, 3)) + error.diff(dim=-2).abs().mean(dim=(1, 2, 3))
    return per_sample.mean() if weights is None else (weights * per_sample).mean()


def row_level_l1(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 of the error's level per row (its mean along the fast axis), the plane off; ``weights`` as for
    ``plane_free_l1``."""
    per_sample = remove_plane(output - target).mean(dim=-1).abs().mean(dim=(1, 2))
    return per_sample.mean() if weights is None else (weights * per_sample).mean()


def noise_weights(noisy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample (N,): 1 over the rms of the input's (first channel's) difference from the target, its plane off,
    no less than ``NOISE_FLOOR``."""
    noise = remove_plane(noisy[:, :1] - target).square().mean(dim=(1, 2, 3)).sqrt()
    return 1.0 / noise.clamp(min=NOISE_FLOOR)


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
