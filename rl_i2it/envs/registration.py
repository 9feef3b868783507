"""Deformable registration as an episode: warp a moving image onto a fixed one, one small flow per step.

B episodes step together on one device, torch only; the step itself is ``BatchedEnv``'s (envs/base.py). What
registration adds:

==========================  ==================================================================
call                        returns
==========================  ==================================================================
``reset(seed=None)``        ``obs``: uint8 ``(B, 2, *S)``, channel 0 fixed, channel 1 moved
``step(flow)``              ``obs, reward, terminated, truncated, info``; ``flow`` is
                            ``(B, N, *S)`` pixels; reward/terminated/truncated are ``(B,)``
``info["score"]``           ``(B,)`` Dice after this step (before any auto-reset)
``start_episodes(pairs)``   start episodes on given pairs (``moving``, ``fixed`` uint8
                            ``(B, 1, *S)``, and whatever the scorer needs): evaluation
``reset_to(moving, fixed)`` the same, as two arguments (the chapters' hand-driven episodes)
``flow``                    ``(B, N, *S)`` the accumulated displacement of the current episodes
``transition(moving, flow,  the env's own transition (compose, then warp the original), which
step_flow)``                the auxiliary loss reuses
==========================  ==================================================================

The env composes each step's flow into one accumulated field and warps the *original* moving image with
it, so interpolation blur does not build up over steps. Observations are quantised to uint8 by the env
itself, so the policy acts on exactly what the buffer stores. An episode terminates when its Dice reaches
``dice_threshold``; a timeout is truncation, never termination.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..nn.functional import compose_flow, dice_score, warp
from .base import BatchedEnv
from .common import quantise

__all__ = ["RegistrationEnv", "PairSampler", "as_pair_dict"]


class PairSampler(Protocol):
    """Draws registration pairs: ``sample(n, generator) -> (moving, fixed)``, each uint8 ``(n, 1, *S)``.

    A sampler may instead return a dict with ``moving``, ``fixed`` and extra per-pair tensors (label maps,
    the true field, ...); the env keeps them in its episode state, auto-resets them with the rest and
    hands them to ``score_pairs``.
    """

    image_shape: tuple[int, ...]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | dict: ...


def as_pair_dict(pair) -> dict[str, torch.Tensor]:
    """A sampler's ``(moving, fixed)`` tuple or dict -> a dict with at least ``moving`` and ``fixed``."""
    if isinstance(pair, dict):
        return dict(pair)
    moving, fixed = pair
    return {"moving": moving, "fixed": fixed}


class RegistrationEnv(BatchedEnv):
    """Batched deformable registration.

    Parameters
    ----------
    sampler : draws (moving, fixed) pairs on ``device``
    num_envs : B, episodes stepped together
    max_steps : episode length; reaching it is truncation
    reward_mode : ``"improvement"``: ``reward_scale * (Dice_t - Dice_{t-1}) + done_bonus * terminated``;
        ``"absolute"``: the authors' ``reward_scale * Dice_t`` (+ the done bonus) every step (punishes finishing
        early)
    dice_threshold : the episode terminates once Dice reaches it
    mask_threshold : a pixel is foreground when its uint8 value is above this (0: the authors' ``> 0``)
    auto_reset : replace finished episodes in the same step (training); off for evaluation
    """

    def __init__(self, sampler: PairSampler, num_envs: int, max_steps: int, reward_mode: str = "improvement",
                 reward_scale: float = 10.0, done_bonus: float = 1.0, dice_threshold: float = 0.96,
                 mask_threshold: int = 0, auto_reset: bool = True, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(num_envs, max_steps, reward_mode=reward_mode, reward_scale=reward_scale,
                         done_bonus=done_bonus, score_threshold=dice_threshold, auto_reset=auto_reset, device=device,
                         seed=seed)
        self.sampler = sampler
        self.dice_threshold, self.mask_threshold = float(dice_threshold), int(mask_threshold)
        self.image_shape = tuple(sampler.image_shape)
        self.ndim = len(self.image_shape)

    # ------------------------------------------------------------------ scoring
    def score(self, moved: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Dice of the foreground masks, ``(B,)``."""
        return dice_score(moved > self.mask_threshold, fixed > self.mask_threshold)

    def score_pairs(self, state: dict[str, torch.Tensor], moved: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The reward's score, ``(B,)``, of ``moved`` (uint8) reached by the accumulated ``flow``.

        Here Dice of the intensity masks; a subclass scores label maps kept in ``state`` instead.
        """
        return self.score(moved, state["fixed"])

    # ------------------------------------------------------------------ BatchedEnv
    def draw(self, n: int) -> dict[str, torch.Tensor]:
        return as_pair_dict(self.sampler.sample(n, self.generator))

    def start(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moving = episode["moving"]
        flow = torch.zeros(moving.shape[0], self.ndim, *self.image_shape, device=self.device)
        state = {**episode, "moved": moving.clone(), "flow": flow}
        state["score"] = self.score_pairs(state, moving, flow)
        return state

    def advance(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        flow, moved_float = self.transition(state["moving"], state["flow"], action)
        moved = quantise(moved_float)
        return {"flow": flow, "moved": moved, "score": self.score_pairs(state, moved, flow)}

    def observation(self) -> torch.Tensor:
        return torch.cat([self._state["fixed"], self._state["moved"]], 1)

    def check_action(self, action: torch.Tensor) -> None:
        expected = self._state["flow"].shape
        if action.shape != expected:
            raise ValueError(f"action must be a flow of shape {tuple(expected)}; got {tuple(action.shape)}")

    def start_episodes(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Start episodes on given pairs: ``moving`` and ``fixed`` uint8 ``(B, 1, *S)`` (plus any extras the
        scorer needs, e.g. label maps)."""
        moving, fixed = episode["moving"], episode["fixed"]
        if moving.shape != fixed.shape or moving.dtype != torch.uint8 or tuple(moving.shape[2:]) != self.image_shape:
            raise ValueError(f"pairs must be uint8 (B, 1, {self.image_shape}); got moving {tuple(moving.shape)} "
                             f"{moving.dtype}, fixed {tuple(fixed.shape)} {fixed.dtype}")
        return super().start_episodes(episode)

    def reset_to(self, moving: torch.Tensor, fixed: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """``start_episodes`` on ``moving`` and ``fixed`` (uint8 ``(B, 1, *S)``) and any extras."""
        return self.start_episodes({"moving": moving, "fixed": fixed, **extra})

    # ------------------------------------------------------------------ registration
    @property
    def flow(self) -> torch.Tensor:
        """The accumulated displacement ``(B, N, *S)`` of the current episodes."""
        return self._state["flow"]

    def transition(self, moving: torch.Tensor, flow: torch.Tensor, step_flow: torch.Tensor):
        """The env's own transition, also used by the auxiliary loss: compose, then warp the original.

        Returns the new accumulated flow and the warped moving image as float in [0, 1].
        """
        total = compose_flow(flow, step_flow)
        return total, warp(moving.float() / 255.0, total)
