"""What is particular to the HCANet and PDA-Net baselines: their attention, and how they were adapted."""

import torch
import torch.nn.functional as F

from maed.model.baselines.hcanet import ConvAttentionFusion, HCANet
from maed.model.baselines.pdanet import PDANet, PyramidAttention, _overlap_add, _patches


def _randomise(module: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)
    return module.eval()


def test_a_depth_one_conv3d_is_its_centre_slice_in_2d():
    """Why HCANet's 3x3x3 kernels became 3x3: on the reference's depth-1 volume only the centre slice meets data."""
    torch.manual_seed(0)
    conv3d = torch.nn.Conv3d(6, 4, 3, padding=1, groups=2)
    x = torch.randn(2, 6, 9, 7)
    with torch.no_grad():
        expected = conv3d(x.unsqueeze(2)).squeeze(2)
        actual = F.conv2d(x, conv3d.weight[:, :, 1], conv3d.bias, padding=1, groups=2)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_hcanet_channel_attention_ignores_pixel_order():
    """The global branch attends between channels: permuting the pixels of q and k leaves its map unchanged."""
    cafm = _randomise(ConvAttentionFusion(8, heads=2))
    q, k = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    perm = torch.randperm(30)

    def shuffled(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(2)[:, :, perm].reshape(t.shape)

    with torch.no_grad():
        torch.testing.assert_close(cafm.attention_map(shuffled(q), shuffled(k)), cafm.attention_map(q, k))


def test_hcanet_local_branch_is_local_unless_the_reference_layout_is_asked_for():
    """Our local branch sees a 3x3 neighbourhood; the reference's reshape of qkv mixes distant pixels."""
    qkv = torch.randn(1, 24, 12, 12)
    far = qkv.clone()
    far[:, :, 11, 11] += 5.0  # a change in one corner
    for reference_layout, stays_local in ((False, True), (True, False)):
        cafm = _randomise(ConvAttentionFusion(8, heads=2, reference_local_layout=reference_layout))
        with torch.no_grad():
            change = (cafm._local(far) - cafm._local(qkv)).abs()
        assert (change[:, :, :9, :9].max() == 0) == stays_local


def test_hcanet_images_in_a_batch_do_not_interact():
    model = _randomise(HCANet(dim=8), std=0.1)
    x = torch.randn(3, 1, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:2], model(x[1:2]), rtol=1e-4, atol=1e-5)


def test_patch_helpers_are_unfold_and_fold():
    x = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(_patches(x), F.unfold(x, 3, padding=1))
    cols = torch.randn(2, 27, 35)
    torch.testing.assert_close(_overlap_add(cols, 5, 7), F.fold(cols, (5, 7), 3, padding=1))


def _reference_pyramid_attention(attn: PyramidAttention, x: torch.Tensor) -> torch.Tensor:
    """PANet's forward, image by image: that image's key patches as convolution kernels, value patches as transposed ones."""
    out = []
    for image in x.split(1):
        refs = [image if s == 1 else F.interpolate(image, scale_factor=s, mode="bilinear") for s in attn.scales]
        keys = torch.cat([F.unfold(attn.match(r), 3, padding=1)[0].T for r in refs]).reshape(-1, 4, 3, 3)
        values = torch.cat([F.unfold(attn.assembly(r), 3, padding=1)[0].T for r in refs]).reshape(-1, 8, 3, 3)
        norms = keys.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-4)
        scores = F.conv2d(attn.match_base(image), keys / norms, padding=1)
        out.append(F.conv_transpose2d(F.softmax(10 * scores, dim=1), values, padding=1) / 4 + image)
    return torch.cat(out)


def test_pdanet_batched_pyramid_attention_matches_the_per_image_reference():
    attn = _randomise(PyramidAttention(8, levels=4))
    x = torch.randn(2, 8, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), _reference_pyramid_attention(attn, x), rtol=1e-4, atol=1e-4)


def test_pdanet_images_in_a_batch_do_not_interact():
    model = _randomise(PDANet(features=8, widths=(8, 8, 8)), std=0.1)
    x = torch.randn(3, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:2], model(x[1:2]), rtol=1e-4, atol=1e-5)
