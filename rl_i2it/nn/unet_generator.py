"""pix2pix's U-Net generator: the one-step baseline of paired photo translation (Isola et al., 2017).

==========================  ==========================  ================================================
call                        output                      meaning
==========================  ==========================  ================================================
``UNetGenerator(widths)``   a module                    ``len(widths)`` stride-2 4x4 convolutions down,
                                                        as many 4x4 transposed convolutions up, with a
                                                        skip connection at every level
``gen(source)``             ``(B, 3, S, S)`` in [0, 1]  the translated image of ``source`` (B, C, S, S),
                                                        uint8 or float in [0, 1]
==========================  ==========================  ================================================

As pix2pix's ``UnetGenerator``: encoder LeakyReLU(0.2) -> conv 4x4/2 -> norm (no norm on the first and the
innermost), decoder ReLU -> transposed conv 4x4/2 -> norm, dropout 0.5 on the innermost decoder levels
(``dropout_levels``), and ``tanh`` out (here rescaled to [0, 1]: ``(tanh + 1) / 2``). One change: GroupNorm
instead of BatchNorm, so the network computes the same thing at batch 1 and batch 32 and in train and eval
mode (``nn/blocks.py``). pix2pix's 256 px generator is ``widths=(64, 128, 256, 512, 512, 512, 512, 512)``
(54.4 M parameters); the presets pick widths that give a parameter count close to the RL planner + actor.
"""
from __future__ import annotations

import torch
from torch import nn

from ..planner import as_float_image

__all__ = ["UNetGenerator"]


def _norm(channels: int) -> nn.Module:
    return nn.GroupNorm(min(8, channels), channels)


class UNetGenerator(nn.Module):
    """``(B, in_channels, S, S)`` -> ``(B, out_channels, S, S)`` in [0, 1]; ``S`` divisible by ``2 ** len(widths)``.

    Parameters
    ----------
    widths : encoder channels per level, fine to coarse; the bottleneck is ``S / 2^len(widths)``
    in_channels, out_channels : image channels in and out
    dropout : dropout probability on the ``dropout_levels`` innermost decoder levels (pix2pix: 0.5 on 3)
    """

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), in_channels: int = 3, out_channels: int = 3,
                 dropout: float = 0.0, dropout_levels: int = 3):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"a U-Net needs at least two levels; got widths {widths}")
        self.widths, self.in_channels = tuple(widths), in_channels
        n = len(widths)
        downs, channels = [], in_channels
        for k, width in enumerate(widths):
            layers = [] if k == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(channels, width, 4, stride=2, padding=1))
            if 0 < k < n - 1:
                layers.append(_norm(width))
            downs.append(nn.Sequential(*layers))
            channels = width
        ups = []
        for k in range(n - 1, 0, -1):  # innermost first: input widths[k] (+ skip), output widths[k - 1]
            in_ch = widths[k] if k == n - 1 else 2 * widths[k]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_ch, widths[k - 1], 4, stride=2, padding=1),
                      _norm(widths[k - 1])]
            if dropout > 0 and (n - 1 - k) < dropout_levels:
                layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.downs, self.ups = nn.ModuleList(downs), nn.ModuleList(ups)
        self.out = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], out_channels, 4, stride=2, padding=1),
                                 nn.Tanh())

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        factor = 2 ** len(self.widths)
        if source.shape[-1] % factor or source.shape[-2] % factor:
            raise ValueError(f"image size {tuple(source.shape[-2:])} must be divisible by {factor} for widths "
                             f"{self.widths}")
        x = as_float_image(source) * 2 - 1
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], 1)
        return (self.out(x) + 1) / 2
