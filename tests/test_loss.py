"""The plane-free training loss ignores offset and tilt, and nothing else."""

import torch

from maed.training.loss import plane_free_l1, remove_plane


def test_a_plane_costs_nothing():
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    target = torch.randn(2, 1, 32, 48)
    output = target + (0.3 + 0.01 * x - 0.02 * y)[None, None]
    assert plane_free_l1(output, target) < 1e-5


def test_structure_is_penalised():
    target = torch.zeros(1, 1, 32, 32)
    output = target.clone()
    output[..., 10:20, 10:20] = 1.0
    loss = plane_free_l1(output, target)
    assert loss > 0.1
    # the residual keeps the square's shape
    r = remove_plane(output - target)[0, 0]
    assert r[15, 15] - r[0, 0] > 0.9
