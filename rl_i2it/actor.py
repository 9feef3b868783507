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

Two plan-authority designs live here: ``gate=True`` scales a flow step by a gain in [0, 1] read from the plan
alone (``Actor.gain``: how far to go, 0 = stop), and ``drop_skips`` zeroes the skips of random items during
learner updates, so the actor must also act from the plan.
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import UserError
from .nn.blocks import ConvBlock, conv, upsample
from .planner import Planner

__all__ = ["Actor", "drop_skips", "GATE_INIT_BIAS"]

GATE_INIT_BIAS = 3.0  #: an untrained gate lets sigmoid(3) = 95 % of the step through


def drop_skips(skips: list[torch.Tensor], rate: float, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Each item's skips (every tensor of the list, ``(B, C_k, *S_k)``) zeroed with probability ``rate``, one draw
    per item shared by all levels; the rest untouched (no rescaling: a dropped skip is absent, not scaled)."""
    if rate <= 0:
        return skips
    first = skips[0]
    keep = (torch.rand(first.shape[0], generator=generator, device=first.device) >= rate).to(first.dtype)
    return [s * keep.view(-1, *([1] * (s.dim() - 1))).to(s.dtype) for s in skips]


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
    gate : ``head="flow"`` only: multiply the step by ``gain(plan)`` in [0, 1], a linear read of the plan alone
    """

    def __init__(self, planner: Planner, out_channels: int, head: str = "flow", max_step: float = 1.0,
                 use_skips: bool = True, gate: bool = False):
        super().__init__()
        if head not in ("flow", "image"):
            raise ValueError(f"unknown actor head {head!r}; use 'flow' or 'image'")
        if gate and head != "flow":
            raise UserError("plan_gate scales a step and needs a step-type action (digits, brain2d, image_style, "
                            "video_style); this task's actor outputs a whole image: set plan_gate=false")
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
        self.gate = None
        if gate:
            self.gate = nn.Linear(planner.plan_dim, 1)
            nn.init.normal_(self.gate.weight, std=1e-3)
            nn.init.constant_(self.gate.bias, GATE_INIT_BIAS)

    def gain(self, plan: torch.Tensor) -> torch.Tensor:
        """``(B, P) -> (B,)`` in [0, 1]: the fraction of the decoded step taken (all ones without a gate)."""
        if self.gate is None:
            return plan.new_ones(plan.shape[0])
        return torch.sigmoid(self.gate(plan.float())).squeeze(1)

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
            step = self.max_step * torch.tanh(x)
            if self.gate is not None:
                step = step * self.gain(plan).view(-1, *([1] * (step.dim() - 1))).to(step.dtype)
            return step
        return torch.sigmoid(x)
