"""The actor φ: (plan, skips) -> the high-dimensional action (a flow field, a patch, an image).

=====================  ==============================  ==============================================
input / output         shape                           meaning
=====================  ==============================  ==============================================
``plan``               ``(B, P)``                      a sample (or the mean) of the planner's dist
``skips``              as returned by the planner      fine-to-coarse encoder features
``action``             ``(B, out_channels, *S)``       ``head="flow"``: ``max_step * tanh(.)`` pixels;
                                                       ``head="image"``: ``sigmoid(.)`` in [0, 1]
=====================  ==============================  ==============================================

The output layer starts near zero, so an untrained flow actor's first warp is the identity.
"""
from __future__ import annotations

import torch
from torch import nn

from .nn.blocks import ConvBlock, conv, upsample
from .planner import Planner

__all__ = ["Actor"]


class Actor(nn.Module):
    """A U-Net decoder mirroring ``planner``'s encoder.

    Parameters
    ----------
    planner : the planner whose plan grid and skip channels this actor decodes
    out_channels : action channels (N for an N-d flow, 3 for an RGB image)
    head : ``"flow"`` (bounded displacement, ``max_step * tanh``) or ``"image"`` (sigmoid)
    max_step : the largest displacement per step, in pixels, for ``head="flow"``
    use_skips : decode from the plan *and* the planner's skip features (the authors' U-Net), or from the
        plan alone (``False``), which forces every bit of the action through the plan
    """

    def __init__(self, planner: Planner, out_channels: int, head: str = "flow", max_step: float = 1.0,
                 use_skips: bool = True):
        super().__init__()
        if head not in ("flow", "image"):
            raise ValueError(f"unknown actor head {head!r}; use 'flow' or 'image'")
        ndim = planner.ndim
        widths = planner.widths  # the decoder mirrors the encoder level by level
        skip_channels = planner.skip_channels if use_skips else (0,) * len(planner.skip_channels)
        self.use_skips = use_skips
        self.head, self.max_step, self.plan_grid = head, float(max_step), planner.plan_grid
        self.plan_channels = planner.plan_channels
        self.inlet = ConvBlock(ndim, planner.plan_channels, widths[-1])
        ups = []
        channels = widths[-1]
        for level in range(len(widths) - 2, -1, -1):  # coarse -> fine
            ups.append(ConvBlock(ndim, channels + skip_channels[level + 1], widths[level]))
            channels = widths[level]
        self.ups = nn.ModuleList(ups)
        self.out = conv(ndim, channels + skip_channels[0], out_channels)
        nn.init.normal_(self.out.weight, std=1e-5)
        nn.init.zeros_(self.out.bias)

    def forward(self, plan: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.inlet(plan.view(plan.shape[0], self.plan_channels, *self.plan_grid))
        if not self.use_skips:  # nothing but the plan reaches the action
            for up in self.ups:
                x = up(upsample(x))
            x = self.out(x)
        else:
            for up, skip in zip(self.ups, reversed(skips[1:])):
                x = up(torch.cat([upsample(x), skip], 1))
            x = self.out(torch.cat([x, skips[0]], 1))
        if self.head == "flow":
            return self.max_step * torch.tanh(x)
        return torch.sigmoid(x)
