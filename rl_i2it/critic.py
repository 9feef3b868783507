"""Twin critics Q(s, plan) in one module: both evaluated in one pass with grouped convolutions.

=======================  ===================  ==========================================
call                     output               meaning
=======================  ===================  ==========================================
``critic(state, plan)``  ``(q1, q2)``         each ``(B,)``: the value of the plan
=======================  ===================  ==========================================

The critic scores plans, not pixels: the plan (B, P) is reshaped to its grid and concatenated with
the state's features at that resolution. No BatchNorm (see ``nn.blocks``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .nn.blocks import ConvBlock, conv
from .planner import Planner, as_float_image

__all__ = ["TwinCritic", "make_target"]


class TwinCritic(nn.Module):
    """Two independent Q networks evaluated together (channel groups = 2).

    Parameters
    ----------
    planner : gives the state channels, the plan grid and the number of downsamplings
    widths : channels per level of each Q network's state encoder (as many levels as the planner's)
    """

    def __init__(self, planner: Planner, widths: tuple[int, ...] = (32, 64, 64)):
        super().__init__()
        if len(widths) != len(planner.widths):
            raise ValueError(f"critic widths {widths} need {len(planner.widths)} levels to reach the plan grid")
        ndim, self.plan_grid, self.plan_channels = planner.ndim, planner.plan_grid, planner.plan_channels
        twin = 2
        layers = [ConvBlock(ndim, twin * planner.in_channels, twin * widths[0], groups=twin)]
        layers += [ConvBlock(ndim, twin * widths[i - 1], twin * widths[i], stride=2, groups=twin)
                   for i in range(1, len(widths))]
        self.encoder = nn.Sequential(*layers)
        self.value = nn.Sequential(
            ConvBlock(ndim, twin * (widths[-1] + self.plan_channels), twin * widths[-1], groups=twin),
            conv(ndim, twin * widths[-1], twin, groups=twin),
        )

    def forward(self, state: torch.Tensor, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_float_image(state)
        batch = x.shape[0]
        features = self.encoder(x.repeat(1, 2, *([1] * (x.dim() - 2))))  # (B, 2W, *grid)
        features = features.view(batch, 2, -1, *self.plan_grid)
        plan_map = plan.view(batch, 1, self.plan_channels, *self.plan_grid).expand(-1, 2, -1, *self.plan_grid)
        joint = torch.cat([features, plan_map], 2).flatten(1, 2)
        q = self.value(joint).flatten(2).mean(2)  # (B, 2)
        return q[:, 0], q[:, 1]


def make_target(module: nn.Module) -> nn.Module:
    """A frozen copy for the slowly moving target (updated by ``sac.soft_update``)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target
