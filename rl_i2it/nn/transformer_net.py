"""A feed-forward style network after Johnson et al. (2016): the one-step baseline of image style transfer.

=====================================  ==================================================================
call                                   output
=====================================  ==================================================================
``TransformerNet(width, blocks)``      ``net(content)``: float ``(B, 3, H, W)`` in [0, 1] -> the stylised
                                       image ``(B, 3, H, W)`` in [0, 1]; H, W divisible by 4
``width_for_parameters(target, ...)``  the ``width`` whose parameter count is closest to ``target``
``parameter_count(width, blocks)``     parameters of ``TransformerNet(width, blocks)`` (exact)
=====================================  ==================================================================

Layout (Johnson et al.'s, with widths ``w, 2w, 4w``; theirs is ``w = 32``, 1.68 M parameters): a 9x9 convolution,
two stride-2 3x3 convolutions down, ``blocks`` residual blocks (two 3x3 convolutions each), two nearest-neighbour
upsamplings each followed by a 3x3 convolution (no transposed convolutions: no checkerboard artefacts), and a 9x9
convolution to RGB. Instance norm and ReLU after every convolution but the last; reflection padding; a sigmoid
maps the output to [0, 1]. The width is a parameter so the baseline can match the RL policy's size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

__all__ = ["TransformerNet", "width_for_parameters", "parameter_count"]


class _ConvNorm(nn.Sequential):
    """Reflection pad, convolution, instance norm (affine), ReLU (optional)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, relu: bool = True):
        layers = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride),
                  nn.InstanceNorm2d(out_channels, affine=True)]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if relu else []))


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_ConvNorm(channels, channels, 3), _ConvNorm(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _UpConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = _ConvNorm(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TransformerNet(nn.Module):
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; see the module docstring."""

    def __init__(self, width: int = 32, blocks: int = 5):
        super().__init__()
        if width < 1 or blocks < 0:
            raise UserError(f"transformer net needs width >= 1 and blocks >= 0; got width={width}, blocks={blocks}")
        w = width
        self.width, self.blocks = width, blocks
        self.down = nn.Sequential(_ConvNorm(3, w, 9), _ConvNorm(w, 2 * w, 3, 2), _ConvNorm(2 * w, 4 * w, 3, 2))
        self.residual = nn.Sequential(*[_Residual(4 * w) for _ in range(blocks)])
        self.up = nn.Sequential(_UpConv(4 * w, 2 * w), _UpConv(2 * w, w))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[2] % 4 or image.shape[3] % 4:
            raise ValueError(f"TransformerNet takes (B, 3, H, W) with H and W divisible by 4; got {tuple(image.shape)}")
        return torch.sigmoid(self.out(self.up(self.residual(self.down(image)))))


def parameter_count(width: int, blocks: int = 5) -> int:
    """Exact parameter count of ``TransformerNet(width, blocks)`` (convolutions with bias, affine instance norms)."""
    w = width

    def conv(cin, cout, k, norm=True):
        return cin * cout * k * k + cout + (2 * cout if norm else 0)

    total = conv(3, w, 9) + conv(w, 2 * w, 3) + conv(2 * w, 4 * w, 3)
    total += blocks * 2 * conv(4 * w, 4 * w, 3)
    total += conv(4 * w, 2 * w, 3) + conv(2 * w, w, 3) + conv(w, 3, 9, norm=False)
    return total


def width_for_parameters(target: int, blocks: int = 5) -> int:
    """The width (>= 1) whose ``TransformerNet`` parameter count is closest to ``target``."""
    if target < 1:
        raise UserError(f"target parameter count must be >= 1; got {target}")
    width = 1
    while parameter_count(width + 1, blocks) <= target:
        width += 1
    above = width + 1
    closer = abs(parameter_count(above, blocks) - target) < abs(parameter_count(width, blocks) - target)
    return above if closer else width
