"""The planner ψ: state -> a distribution over a low-dimensional plan, plus skip features for the actor.

==========================  ==========================================  ===============================
call                        output                                      meaning
==========================  ==========================================  ===============================
``planner(state)``          ``dist``: ``Independent(Normal(mu, std))``  distribution over plans,
                            with event shape ``(P,)``                   ``P = plan_channels * prod(grid)``
                            ``skips``: list of ``(B, C_k, *S_k)``       encoder features, fine to coarse;
                                                                        ``skips[0]`` is the state itself
                            ``hidden``: as given (``None``)             passed through: the ``Policy``
                                                                        convention (video's planner
                                                                        returns its recurrent state)
``planner.plan_grid``       e.g. ``(7, 7)``                             the plan as a coarse map
==========================  ==========================================  ===============================

The bottleneck design (``condition``): the skips come from a second encoder that reads only what a step is
conditioned on (the fixed image of a registration pair, the source of a translation, the masked image of an
inpainting), never the current image; then the current image reaches the actor only through the plan.

The state may be uint8 (as the env emits and the buffer stores) or float in [0, 1].
A diagonal Normal, never a full-covariance MultivariateNormal: the latter is 10-1000x slower for the
same numbers (upstream.md §8.3).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, Normal

from .nn.blocks import ConvBlock, conv

__all__ = ["Planner", "ChannelSlice", "MaskedImage", "as_float_image", "sample_plan", "LOG_STD_MIN", "LOG_STD_MAX"]

LOG_STD_MIN, LOG_STD_MAX = -5.0, 0.0  # sigma <= 1: plan noise never exceeds the N(0, I) prior


def as_float_image(state: torch.Tensor) -> torch.Tensor:
    """uint8 in 0..255 -> float in [0, 1]; float passes through."""
    return state.float().div_(255.0) if state.dtype == torch.uint8 else state


def sample_plan(dist: Independent, generator: torch.Generator | None = None) -> torch.Tensor:
    """A reparameterised sample ``mu + std * eps`` (like ``dist.rsample()``) drawn from ``generator``.

    A trainer owns its generator, so two trainers in one process never share (or disturb) random numbers.
    """
    base = dist.base_dist
    eps = torch.randn(base.loc.shape, generator=generator, device=base.loc.device, dtype=base.loc.dtype)
    return base.loc + base.scale * eps


class ChannelSlice(nn.Module):
    """``(B, C, *S) -> (B, stop - start, *S)``: the state's channels ``start:stop`` (the conditioning image)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = int(start), int(stop)
        self.channels = self.stop - self.start

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, self.start:self.stop]


class MaskedImage(nn.Module):
    """Inpainting's condition: ``(B, 4, S, S)`` [image (3), hole mask (1)] -> the image with its hole zeroed and
    the mask, ``(B, 4, S, S)``: what the episode started from, whatever the policy has painted since."""

    channels = 4

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        mask = state[:, 3:4]
        return torch.cat([state[:, :3] * (1 - mask), mask], 1)


class Planner(nn.Module):
    """Encoder from a state ``(B, in_channels, *S)`` to a plan distribution.

    Parameters
    ----------
    in_channels : channels of the state (2 for registration: fixed and moved)
    image_shape : spatial size ``S``, each divisible by ``2 ** (len(widths) - 1)``
    widths : channels per resolution level; ``len(widths) - 1`` stride-2 downsamplings
    plan_channels : channels of the plan map; the plan has ``plan_channels * prod(grid)`` numbers
    condition : ``None`` (the skips are the state's encoder features, the authors' U-Net) or a module
        ``(B, in_channels, *S) -> (B, condition.channels, *S)`` picking what a step is conditioned on: the skips
        then come from a second encoder of that alone (the bottleneck design)
    """

    def __init__(self, in_channels: int, image_shape: tuple[int, ...], widths: tuple[int, ...] = (16, 32, 32),
                 plan_channels: int = 1, condition: nn.Module | None = None):
        super().__init__()
        ndim = len(image_shape)
        factor = 2 ** (len(widths) - 1)
        if any(n % factor for n in image_shape):
            raise ValueError(f"image shape {image_shape} must be divisible by {factor} for widths {widths}")
        self.ndim, self.in_channels, self.image_shape = ndim, in_channels, tuple(image_shape)
        self.widths, self.plan_channels = tuple(widths), plan_channels
        self.plan_grid = tuple(n // factor for n in image_shape)
        self.plan_dim = plan_channels * int(torch.tensor(self.plan_grid).prod())
        levels = [ConvBlock(ndim, in_channels, widths[0])]
        levels += [ConvBlock(ndim, widths[i - 1], widths[i], stride=2) for i in range(1, len(widths))]
        self.levels = nn.ModuleList(levels)
        self.head = conv(ndim, widths[-1], 2 * plan_channels)
        self.condition = condition
        if condition is not None:  # the skips' own encoder: every level but the last, on the condition alone
            cond = [ConvBlock(ndim, condition.channels, widths[0])]
            cond += [ConvBlock(ndim, widths[i - 1], widths[i], stride=2) for i in range(1, len(widths) - 1)]
            self.condition_levels = nn.ModuleList(cond)

    @property
    def skip_channels(self) -> tuple[int, ...]:
        """Channels of ``skips`` as returned by ``forward``: the state (or its condition), then every level but the
        last."""
        first = self.in_channels if self.condition is None else self.condition.channels
        return (first,) + self.widths[:-1]

    def forward(self, state: torch.Tensor, hidden: torch.Tensor | None = None):
        x = as_float_image(state)
        skips = [x]
        for level in self.levels:
            x = level(x)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip: it reaches the actor only through the plan
        if self.condition is not None:  # the bottleneck design: skips of the condition only
            c = self.condition(skips[0])
            skips = [c]
            for level in self.condition_levels:
                c = level(c)
                skips.append(c)
        mu, log_std_raw = self.head(x).float().chunk(2, dim=1)  # float32 plans, also under bf16 autocast
        # a smooth squash into [LOG_STD_MIN, LOG_STD_MAX] instead of a clamp, which has no gradient outside
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std_raw) + 1)
        dist = Independent(Normal(mu.flatten(1), log_std.flatten(1).exp()), 1)
        return dist, skips, hidden
