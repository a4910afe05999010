"""MAED-CNN keeps image shapes, has the published structure, and denoises each image independently."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from maed.model import CONFIGS, MAEDCNN, ModelConfig, build_model, count_parameters
from maed.model.blocks import DSResidualBlock, MultiScaleStem, SEFusion

# Trainable parameters of the two named configurations (timm 1.0.31). A change beyond 2 % means
# the architecture changed, and trained checkpoints no longer load.
EXPECTED_PARAMETERS = {"rt": 747_687, "paper": 62_839_231}


@pytest.fixture(scope="module")
def paper_model() -> MAEDCNN:
    torch.manual_seed(0)
    return build_model("paper").eval()


def _trained_looking_rt_model() -> MAEDCNN:
    """rt model with a non-zero head and BN statistics from data, so the output is not the input."""
    torch.manual_seed(0)
    model = build_model("rt")
    torch.nn.init.normal_(model.head.weight, std=0.1)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 1, 64, 64))
    return model.eval()


def test_rt_output_shape_equals_input_shape():
    model = build_model("rt").eval()
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        assert model(x).shape == x.shape


def test_paper_output_shape_equals_input_shape(paper_model):
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert paper_model(x).shape == x.shape


@pytest.mark.parametrize("name", ["rt", "paper"])
def test_parameter_count(name, paper_model):
    model = paper_model if name == "paper" else build_model(name)
    assert count_parameters(model) == pytest.approx(EXPECTED_PARAMETERS[name], rel=0.02)


def test_size_multiple_is_the_encoder_stride(paper_model):
    assert build_model("rt").size_multiple == 16
    assert paper_model.size_multiple == 32


@pytest.mark.parametrize("shape", [(1, 1, 64, 72), (1, 1, 40, 64), (1, 3, 64, 64), (1, 64, 64)])
def test_bad_input_shape_raises(shape):
    model = build_model("rt").eval()
    with pytest.raises(ValueError, match=r"multiples of 16|\(N, 1, H, W\)"):
        model(torch.randn(*shape))


def test_untrained_model_is_identity():
    # the head starts at zero, so the global residual passes the input through unchanged
    model = build_model("rt").eval()
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_eval_is_deterministic_and_batch_independent():
    model = _trained_looking_rt_model()
    batch = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        out = model(batch)
        assert torch.equal(out, model(batch))
        assert (out - batch).abs().mean() > 1e-2  # the network really contributes
        for i in range(len(batch)):
            torch.testing.assert_close(model(batch[i : i + 1]), out[i : i + 1], rtol=0, atol=1e-5)


def test_every_encoder_weight_is_used():
    # timm's features_only encoder runs its stride-32 stages even when out_indices stops at
    # stride 16; they must be cut, not left as dead weights
    model = build_model("rt")
    torch.nn.init.normal_(model.head.weight, std=0.1)
    model(torch.randn(2, 1, 32, 32)).square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert unused == []


def test_multi_scale_stem_structure():
    stem = MultiScaleStem()
    assert [b.kernel_size for b in stem.branches] == [(k, k) for k in (1, 3, 5, 7, 9)]
    assert all(b.in_channels == 1 and b.padding_mode == "reflect" for b in stem.branches)
    assert stem.conv_expand.out_channels == 40
    assert stem.conv_expand.in_channels == sum(b.out_channels for b in stem.branches)


def test_multi_scale_stem_keeps_flat_image_flat_up_to_the_border():
    # reflect padding: a constant scan gives the same features at the border as in the middle;
    # zero padding would create a fake step that the 9x9 branch sees 4 pixels deep
    stem = MultiScaleStem().eval()
    with torch.no_grad():
        out = stem(torch.full((1, 1, 24, 24), 0.7))
    assert out.shape == (1, 40, 24, 24)
    torch.testing.assert_close(out, out[:, :, 12:13, 12:13].expand_as(out))


def test_se_fusion_is_input_times_per_channel_mask():
    torch.manual_seed(0)
    se = SEFusion(40, reduction=4)
    assert se.fc1.out_channels == 10
    for p in se.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(2, 40, 8, 8)
    # the mask by hand: global average pool, FC + ReLU, FC + sigmoid
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    mask = torch.sigmoid(F.relu(x.mean((2, 3)) @ w1.T + b1) @ w2.T + b2)
    assert ((mask > 0) & (mask < 1)).all()
    assert mask.std() > 0.1  # channels and images really get different weights
    with torch.no_grad():
        torch.testing.assert_close(se(x), x * mask[:, :, None, None])


def test_ds_residual_block_is_depthwise_then_pointwise():
    block = DSResidualBlock(24, 24, dw_kernel_size=3)
    assert block.conv_dw.groups == 24
    assert block.conv_dw.weight.shape == (24, 1, 3, 3)
    assert block.conv_pw.kernel_size == (1, 1)
    assert isinstance(block.shortcut, torch.nn.Identity)


def test_ds_residual_block_is_identity_plus_branch():
    block = DSResidualBlock(24, 24).eval()
    x = torch.rand(2, 24, 16, 16)  # non-negative, so the final ReLU keeps the identity part
    with torch.no_grad():
        assert not torch.allclose(block(x), x)
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        assert torch.equal(block(x), x)


def test_ds_residual_block_projects_when_width_changes():
    block = DSResidualBlock(24, 16).eval()
    conv, bn = block.shortcut
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (24, 16, (1, 1))
    x = torch.randn(1, 24, 8, 8)
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        torch.testing.assert_close(block(x), F.relu(bn(conv(x))))


def test_build_model_accepts_names_and_configs():
    config = dataclasses.replace(CONFIGS["rt"], decoder_channels=(32, 24, 16, 16))
    assert build_model(config).config == config
    with pytest.raises(ValueError, match="unknown model .b7-please.; known: rt, rt-both, rt1, paper"):
        build_model("b7-please")


def test_model_config_is_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIGS["rt"].encoder = "efficientnet_b0"
    with pytest.raises(ValueError, match="one decoder width per encoder level"):
        ModelConfig("efficientnet_lite0", (0, 1, 2, 3), (64, 32, 16))
