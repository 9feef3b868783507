"""Pieces every batched env shares: the reward of a step, same-step auto-reset, uint8 quantisation, setting checks.

=====================================================  ==========================================================
function                                               returns
=====================================================  ==========================================================
``step_reward(score, previous, terminated, mode, ...)``  ``(B,)`` rewards: score gain (or the score) + done bonus
``replace_finished(state, fresh, done)``               in place: rows of ``state`` where ``done`` take ``fresh``'s
``quantise(image)``                                    float [0, 1] -> uint8 0..255, rounded
``check_episode_settings(mode, num_envs, max_steps)``  a one-line ``UserError`` for a bad setting
=====================================================  ==========================================================
"""
from __future__ import annotations

import torch

from ..config import REWARD_MODES
from ..errors import UserError

__all__ = ["REWARD_MODES", "step_reward", "replace_finished", "quantise", "check_episode_settings"]


def step_reward(score: torch.Tensor, previous: torch.Tensor, terminated: torch.Tensor, mode: str, scale: float,
                done_bonus: float) -> torch.Tensor:
    """``(B,)`` rewards: ``"improvement"``: ``scale * (score - previous) + done_bonus * terminated``;
    ``"absolute"`` (the authors'): ``scale * score + done_bonus * terminated``."""
    bonus = done_bonus * terminated.float()
    return scale * (score - previous) + bonus if mode == "improvement" else scale * score + bonus


def replace_finished(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], done: torch.Tensor) -> None:
    """Same-step auto-reset: every ``state`` tensor ``(B, ...)`` takes ``fresh``'s row where ``done`` ``(B,)``.

    Selected with ``where``, so no data-dependent shapes and no host synchronisation.
    """
    for name, value in state.items():
        mask = done.view(-1, *([1] * (value.dim() - 1)))
        state[name] = torch.where(mask, fresh[name], value)


def quantise(image: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 0..255, rounded (the authors truncate, which darkens every step)."""
    return image.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def check_episode_settings(reward_mode: str, num_envs: int, max_steps: int) -> None:
    """The settings every env shares: a one-line ``UserError`` for an unknown reward mode or a count below 1."""
    if reward_mode not in REWARD_MODES:
        raise UserError(f"unknown reward mode {reward_mode!r}; use one of {REWARD_MODES}")
    if num_envs < 1:
        raise UserError(f"num_envs must be >= 1; got {num_envs}")
    if max_steps < 1:
        raise UserError(f"max_steps (the episode length) must be >= 1; got {max_steps}")
