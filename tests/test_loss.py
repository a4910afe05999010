"""The plane-free training loss ignores offset and tilt, and nothing else; its row term sees whole rows' levels only."""

import torch

from maed.training.loss import plane_free_l1, remove_plane, row_level_l1


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


def test_the_row_term_weighs_a_level_left_on_whole_rows_and_nothing_that_averages_out_along_them():
    target = torch.randn(2, 1, 32, 48)
    levels = torch.sin(torch.arange(32.0) / 3)[None, None, :, None]
    along_rows = target + levels  # a profile across the rows, every column alike
    assert abs(row_level_l1(along_rows, target) - remove_plane(levels.expand(1, 1, 32, 48)).mean(dim=-1).abs().mean()) < 1e-5
    checkers = target + 0.5 * (-1.0) ** torch.arange(48.0)  # as large, but each row's mean unmoved
    assert row_level_l1(checkers, target) < 1e-5 < plane_free_l1(checkers, target)
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    assert row_level_l1(target + (0.3 + 0.01 * x - 0.02 * y)[None, None], target) < 1e-5  # nor a plane


def test_training_adds_the_row_term_at_its_weight():
    from maed.training.trainer import training_loss

    target = torch.randn(2, 1, 32, 48)
    noisy = target + torch.linspace(-1, 1, 32).square()[None, None, :, None]  # a bow across the rows
    plain = training_loss(torch.nn.Identity(), noisy, target)
    weighed = training_loss(torch.nn.Identity(), noisy, target, rows_weight=2.0)
    assert abs(weighed - plain - 2.0 * row_level_l1(noisy, target)) < 1e-5 and row_level_l1(noisy, target) > 0.1
