"""Properties of the N-d registration operations (2-D and 3-D)."""
import pytest
import torch
import torch.nn.functional as F

from rl_i2it.nn.functional import (compose_flow, dice_score, folding_fraction, identity_grid, jacobian_determinant,
                                   ncc, psnr, smoothness_loss, warp)

SHAPES = [(12, 14), (8, 9, 10)]


def smooth_field(shape, amplitude, batch=2):
    """A random smooth displacement (pixels): coarse noise upsampled."""
    ndim = len(shape)
    coarse = torch.randn(batch, ndim, *[3] * ndim)
    mode = "bilinear" if ndim == 2 else "trilinear"
    return amplitude * F.interpolate(coarse, size=shape, mode=mode, align_corners=True)


def smooth_image(shape, batch=2):
    ndim = len(shape)
    mode = "bilinear" if ndim == 2 else "trilinear"
    return F.interpolate(torch.rand(batch, 1, *[4] * ndim), size=shape, mode=mode, align_corners=True)


@pytest.mark.parametrize("shape", SHAPES)
def test_warp_with_zero_flow_is_identity(shape):
    image = torch.rand(2, 3, *shape)
    assert torch.allclose(warp(image, torch.zeros(2, len(shape), *shape)), image, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_warp_integer_shift_moves_content(shape):
    image = torch.rand(1, 1, *shape)
    flow = torch.zeros(1, len(shape), *shape)
    flow[:, 0] = 1.0  # sample one pixel further along axis 0
    shifted = warp(image, flow)
    assert torch.allclose(shifted[:, :, :-1], image[:, :, 1:], atol=1e-5)
    assert torch.all(shifted[:, :, -1] == 0)  # zeros padding outside


@pytest.mark.parametrize("axis", [0, 1])
def test_warp_channel_order_matches_spatial_axes_2d(axis):
    image = torch.rand(1, 1, 10, 11)
    flow = torch.zeros(1, 2, 10, 11)
    flow[:, axis] = 2.0
    expected = image.narrow(2 + axis, 2, image.shape[2 + axis] - 2)
    assert torch.allclose(warp(image, flow).narrow(2 + axis, 0, image.shape[2 + axis] - 2), expected, atol=1e-5)


@pytest.mark.parametrize("shape", [(32, 32), (16, 18, 20)])
def test_compose_equals_two_successive_warps(shape):
    image = torch.sin(identity_grid(shape).sum(0) / 4).expand(2, 1, *shape)  # smooth, so interpolation is mild
    first, second = smooth_field(shape, 1.5), smooth_field(shape, 1.5)
    twice = warp(warp(image, first), second)
    inner = (..., *[slice(4, -4)] * len(shape))
    composed_error = (twice - warp(image, compose_flow(first, second)))[inner].abs().max()
    summed_error = (twice - warp(image, first + second))[inner].abs().max()
    reversed_error = (twice - warp(image, compose_flow(second, first)))[inner].abs().max()
    assert composed_error < 0.05  # what is left is interpolation error
    assert composed_error < 0.3 * summed_error and composed_error < 0.3 * reversed_error  # order matters


@pytest.mark.parametrize("shape", SHAPES)
def test_jacobian_of_identity_is_one(shape):
    det = jacobian_determinant(torch.zeros(2, len(shape), *shape))
    assert det.shape == (2, *shape)
    assert torch.allclose(det, torch.ones_like(det))
    assert torch.all(folding_fraction(torch.zeros(2, len(shape), *shape)) == 0)


def test_jacobian_of_uniform_scaling():
    shape = (9, 9)
    grid = identity_grid(shape).unsqueeze(0)
    flow = 0.5 * grid  # x -> 1.5 x: det = 1.5^2
    assert torch.allclose(jacobian_determinant(flow), torch.full((1, *shape), 2.25), atol=1e-5)
    folded = -2.0 * grid  # x -> -x: det = 1 in 2-D (two reflections) ... use one axis to fold
    folded[:, 1] = 0
    assert torch.all(folding_fraction(folded) == 1)


@pytest.mark.parametrize("shape", SHAPES)
def test_ncc_self_is_one_and_bounded(shape):
    image = torch.rand(3, 1, *shape)
    assert torch.allclose(ncc(image, image), torch.ones(3), atol=1e-5)
    other = torch.rand(3, 1, *shape)
    values = torch.cat([ncc(image, other), ncc(image, 1 - image), ncc(image, torch.zeros_like(image))])
    assert torch.all(values >= -1) and torch.all(values <= 1)
    assert ncc(image, 1 - image).mean() < -0.9  # anti-correlated
    assert ncc(image, other).abs().mean() < 0.3


def test_ncc_is_differentiable():
    a, b = torch.rand(2, 1, 10, 10), torch.rand(2, 1, 10, 10, requires_grad=True)
    (-ncc(a, b).mean()).backward()
    assert torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0


def test_dice():
    a = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[0, :, :2] = True
    b[0, :, 1:3] = True
    score = dice_score(a, b)
    assert score[0] == pytest.approx(0.5) and score[1] == 1.0  # both empty counts as a match


def test_smoothness_and_psnr():
    assert smoothness_loss(torch.ones(1, 2, 5, 5)) == 0
    assert smoothness_loss(smooth_field((8, 8), 1.0)) > 0
    x = torch.rand(2, 3, 8, 8)
    assert torch.isinf(psnr(x, x)).sum() == 0 and psnr(x, x + 0.1).mean() == pytest.approx(20.0, abs=0.01)


def test_bad_flow_shape_is_reported():
    with pytest.raises(ValueError, match="disagree"):
        warp(torch.rand(1, 1, 5, 5), torch.zeros(1, 2, 6, 5))
