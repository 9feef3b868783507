"""Convolution blocks shared by the planner, actor, critic and baselines, for 2-D and 3-D images.

No BatchNorm anywhere: acting runs at batch 1 and the learner at batch 32+, and BatchNorm's running
statistics then differ between the two (the authors' critics and targets end up in different modes).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["conv", "ConvBlock", "ConvGRUCell", "upsample"]


def conv(ndim: int, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
         bias: bool = True) -> nn.Module:
    """A same-padded ``Conv2d``/``Conv3d``."""
    cls = {2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups,
               bias=bias)


class ConvBlock(nn.Sequential):
    """conv 3x3 (stride 1 or 2) -> LeakyReLU(0.2), no normalisation.  ``(B, in, *S)`` -> ``(B, out, *S / stride)``."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__(
            conv(ndim, in_channels, out_channels, 3, stride=stride, groups=groups),
            nn.LeakyReLU(0.2, inplace=True),
        )


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling of ``(B, C, *S)``."""
    return nn.functional.interpolate(x, scale_factor=2, mode="nearest")


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell: ``(x (B, C, *S), h (B, H, *S)) -> h' (B, H, *S)``.

    Used for recurrent plans (video: a hidden state carried across steps and frames). The hidden state
    is passed in and returned explicitly, never stored on the module, so the replay buffer can hold it.
    """

    def __init__(self, ndim: int, in_channels: int, hidden_channels: int):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = conv(ndim, in_channels + hidden_channels, 2 * hidden_channels)
        self.candidate = conv(ndim, in_channels + hidden_channels, hidden_channels)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], 1)))
        return (1 - update) * h + update * candidate
