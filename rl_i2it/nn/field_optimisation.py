"""Per-pair iterative registration: Adam on one displacement field per pair, no learning (the classical reference).

Used by the registration comparisons (``baselines.per_pair``) and by video style's evaluation, which estimates the
flow between real consecutive frames with it.
"""
from __future__ import annotations

import torch

from .functional import ncc, smoothness_loss, warp

__all__ = ["optimise_fields"]


def optimise_fields(moving: torch.Tensor, fixed: torch.Tensor, iterations: int = 300, lr: float = 0.05,
                    smooth_weight: float = 1.0, window: int = 9) -> torch.Tensor:
    """Minimise ``-NCC(fixed, warp(moving, u)) + smooth_weight * smoothness(u)`` over ``u`` with Adam.

    The same loss as the one-step network and the policy's auxiliary loss, directly over the field.
    ``moving``, ``fixed``: uint8 ``(B, 1, *S)``; returns ``u`` ``(B, N, *S)`` in pixels.
    """
    moving, fixed = moving.float() / 255, fixed.float() / 255
    field = torch.zeros(moving.shape[0], moving.dim() - 2, *moving.shape[2:], device=moving.device,
                        requires_grad=True)
    optimiser = torch.optim.Adam([field], lr=lr)
    for _ in range(iterations):
        loss = -ncc(fixed, warp(moving, field), window).mean() + smooth_weight * smoothness_loss(field)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return field.detach()
