"""The paper's six baselines: shapes, sizes against the originals, training, and the name registry."""

import numpy as np
import pytest
import torch

from maed import zoo
from maed.data import make_pair
from maed.model import CONFIGS, MAEDCNN, build_model, count_parameters
from maed.model.baselines import BASELINES
from maed.model.baselines.cbdnet import asymmetric_loss, noise_level_map
from maed.training.config import protocol_learning_rate
from maed.training.dataset import normalised_pair
from maed.training.trainer import training_loss


def test_every_architecture_has_a_builder_and_a_label():
    assert set(zoo.ARCHITECTURES) == set(CONFIGS) | set(BASELINES)
    assert set(zoo.BASELINE_NAMES) == set(BASELINES)
    assert all(zoo.display_name(name) != name for name in zoo.ARCHITECTURES)


def test_maed_names_the_product_weights_of_the_rt_configuration():
    from maed.model.checkpoint import load_model

    model, _ = load_model("maed")
    assert zoo.resolve("maed") == zoo.PRODUCT
    assert isinstance(model, MAEDCNN) and model.config == CONFIGS["rt"]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'unet'.*dncnn"):
        build_model("unet")


@pytest.mark.parametrize("name", zoo.BASELINE_NAMES)
def test_output_has_the_input_shape(name):
    model = build_model(name).eval()
    m = model.size_multiple
    x = torch.randn(2, 1, 2 * m if m > 8 else 24, 3 * m if m > 8 else 40)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("name", zoo.BASELINE_NAMES)
def test_parameter_count_is_within_ten_percent_of_the_original(name):
    ours = count_parameters(build_model(name))
    original = BASELINES[name].original_parameters
    assert abs(ours - original) <= 0.1 * original, f"{name}: {ours:,} vs the original's {original:,}"


def _batch(size: int, count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [normalised_pair(p.noisy, p.clean) for p in (make_pair(100 + i, size) for i in range(count))]
    return (torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None], torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None])


@pytest.mark.parametrize("name", zoo.BASELINE_NAMES)
def test_a_few_training_steps_lower_the_loss(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    m = model.size_multiple
    x, y = _batch(-(-48 // m) * m, count=2)  # small, to keep the heavy networks quick
    # The trainer's optimiser, clipping and the protocol's peak learning rate for this network.
    optimiser = torch.optim.AdamW(model.parameters(), lr=protocol_learning_rate(name), weight_decay=1e-4)
    losses = []
    for _ in range(12):
        loss = training_loss(model, x, y)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
    # One fixed batch, so nothing but learning moves the loss.
    assert np.mean(losses[-3:]) < 0.98 * np.mean(losses[:3]), losses


def test_cbdnet_noise_map_measures_the_local_noise_level():
    rng = np.random.default_rng(0)
    clean = torch.zeros(1, 1, 64, 64)
    sigma = torch.full_like(clean, 0.1)
    sigma[..., 32:] = 0.4  # a scan whose right half is four times as noisy
    noisy = clean + sigma * torch.from_numpy(rng.standard_normal(clean.shape).astype(np.float32))
    level = noise_level_map(noisy, clean)
    assert abs(float(level[..., 8:-8, 4:24].mean()) - 0.1) < 0.01
    assert abs(float(level[..., 8:-8, 40:60].mean()) - 0.4) < 0.04


def test_cbdnet_loss_punishes_underestimated_noise_more():
    truth = noise_level_map(*reversed(_batch(64, count=2)))
    assert asymmetric_loss(0.5 * truth, truth) > 2 * asymmetric_loss(1.5 * truth, truth) > 0
    assert float(asymmetric_loss(truth, truth)) == 0.0
