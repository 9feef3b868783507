"""Deformable registration as an episode: warp a moving image onto a fixed one, one small flow per step.

B episodes step together on one device, torch only. The contract (DESIGN §3):

==========================  ==================================================================
call                        returns
==========================  ==================================================================
``reset(seed=None)``        ``obs``: uint8 ``(B, 2, *S)``, channel 0 fixed, channel 1 moved
``step(flow)``              ``obs, reward, terminated, truncated, info``; ``flow`` is
                            ``(B, N, *S)`` pixels; reward/terminated/truncated are ``(B,)``
``info["score"]``           ``(B,)`` Dice after this step (before any auto-reset)
``info["final_obs"]``       ``(B, 2, *S)`` the observation this step produced, before auto-reset:
                            what the buffer stores as s'
``info["done"]``            ``(B,)`` terminated | truncated
``info["initial_score"]``   ``(B,)`` Dice of the finished episode's pair before any step
==========================  ==================================================================

The env composes each step's flow into one accumulated field and warps the *original* moving image with
it, so interpolation blur does not build up over steps. Observations are quantised to uint8 by the env
itself, so the policy acts on exactly what the buffer stores. Finished episodes are replaced in the same
step (new pairs for every row are drawn and kept where an episode ended, so the step has no
data-dependent shapes and no host synchronisation). A timeout is truncation, never termination.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..errors import UserError
from ..nn.functional import compose_flow, dice_score, warp

__all__ = ["RegistrationEnv", "PairSampler", "REWARD_MODES", "quantise", "replace_finished", "check_episode_settings",
           "step_reward"]

REWARD_MODES = ("improvement", "absolute")


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


def replace_finished(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], done: torch.Tensor) -> None:
    """Same-step auto-reset: every ``state`` tensor ``(B, ...)`` takes ``fresh``'s row where ``done`` ``(B,)``.

    Selected with ``where``, so no data-dependent shapes and no host synchronisation.
    """
    for name, value in state.items():
        mask = done.view(-1, *([1] * (value.dim() - 1)))
        state[name] = torch.where(mask, fresh[name], value)


def check_episode_settings(reward_mode: str, num_envs: int, max_steps: int) -> None:
    """The settings every env shares: a one-line ``UserError`` for an unknown reward mode or a count below 1."""
    if reward_mode not in REWARD_MODES:
        raise UserError(f"unknown reward mode {reward_mode!r}; use one of {REWARD_MODES}")
    if num_envs < 1:
        raise UserError(f"num_envs must be >= 1; got {num_envs}")
    if max_steps < 1:
        raise UserError(f"max_steps (the episode length) must be >= 1; got {max_steps}")


def step_reward(score: torch.Tensor, previous: torch.Tensor, terminated: torch.Tensor, mode: str, scale: float,
                done_bonus: float) -> torch.Tensor:
    """``(B,)`` rewards of the image envs: ``"improvement"``: ``scale * (score - previous) + done_bonus *
    terminated``; ``"absolute"``: ``scale * score + done_bonus * terminated``."""
    bonus = done_bonus * terminated.float()
    return scale * (score - previous) + bonus if mode == "improvement" else scale * score + bonus


def quantise(image: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 0..255, rounded (the authors truncate, which darkens every step)."""
    return image.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class RegistrationEnv:
    """Batched deformable registration.

    Parameters
    ----------
    sampler : draws (moving, fixed) pairs on ``device``
    num_envs : B, episodes stepped together
    max_steps : episode length; reaching it is truncation
    reward_mode : ``"improvement"``: ``reward_scale * (Dice_t - Dice_{t-1}) + done_bonus * terminated``;
        ``"absolute"``: the authors' ``reward_scale * Dice_t`` every step (punishes finishing early)
    dice_threshold : the episode terminates once Dice reaches it
    mask_threshold : a pixel is foreground when its uint8 value is above this (0: the authors' ``> 0``)
    auto_reset : replace finished episodes in the same step (training); off for evaluation
    """

    def __init__(self, sampler: PairSampler, num_envs: int, max_steps: int, reward_mode: str = "improvement",
                 reward_scale: float = 10.0, done_bonus: float = 1.0, dice_threshold: float = 0.96,
                 mask_threshold: int = 0, auto_reset: bool = True, device: torch.device | str = "cpu",
                 seed: int = 0):
        check_episode_settings(reward_mode, num_envs, max_steps)
        self.sampler, self.num_envs, self.max_steps = sampler, int(num_envs), int(max_steps)
        self.reward_mode, self.reward_scale, self.done_bonus = reward_mode, float(reward_scale), float(done_bonus)
        self.dice_threshold, self.mask_threshold = float(dice_threshold), int(mask_threshold)
        self.auto_reset, self.device = auto_reset, torch.device(device)
        self.image_shape = tuple(sampler.image_shape)
        self.ndim = len(self.image_shape)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._state: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ episode state
    def _start(self, pair: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moving = pair["moving"]
        batch = moving.shape[0]
        state = {
            **pair, "moved": moving.clone(),
            "flow": torch.zeros(batch, self.ndim, *self.image_shape, device=self.device),
            "steps": torch.zeros(batch, dtype=torch.long, device=self.device),
        }
        score = self.score_pairs(state, moving, state["flow"])
        state.update(score=score, initial_score=score.clone())
        return state

    def score(self, moved: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Dice of the foreground masks, ``(B,)``."""
        return dice_score(moved > self.mask_threshold, fixed > self.mask_threshold)

    def score_pairs(self, state: dict[str, torch.Tensor], moved: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The reward's score, ``(B,)``, of ``moved`` (uint8) reached by the accumulated ``flow``.

        Here Dice of the intensity masks; a subclass scores label maps kept in ``state`` instead.
        """
        return self.score(moved, state["fixed"])

    def observation(self) -> torch.Tensor:
        return torch.cat([self._state["fixed"], self._state["moved"]], 1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._state = self._start(as_pair_dict(self.sampler.sample(self.num_envs, self.generator)))
        return self.observation()

    def reset_to(self, moving: torch.Tensor, fixed: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Start episodes on given pairs (uint8 ``(B, 1, *S)``, plus any extras the scorer needs)."""
        if moving.shape != fixed.shape or moving.dtype != torch.uint8 or tuple(moving.shape[2:]) != self.image_shape:
            raise ValueError(f"pairs must be uint8 (B, 1, {self.image_shape}); got moving {tuple(moving.shape)} "
                             f"{moving.dtype}, fixed {tuple(fixed.shape)} {fixed.dtype}")
        pair = {"moving": moving, "fixed": fixed, **extra}
        self._state = self._start({k: v.to(self.device) for k, v in pair.items()})
        return self.observation()

    @property
    def flow(self) -> torch.Tensor:
        """The accumulated displacement ``(B, N, *S)`` of the current episodes."""
        return self._state["flow"]

    # ------------------------------------------------------------------ transition
    def transition(self, moving: torch.Tensor, flow: torch.Tensor, step_flow: torch.Tensor):
        """The env's own transition, also used by the auxiliary loss: compose, then warp the original.

        Returns the new accumulated flow and the warped moving image as float in [0, 1].
        """
        total = compose_flow(flow, step_flow)
        return total, warp(moving.float() / 255.0, total)

    def step(self, step_flow: torch.Tensor):
        s = self._state
        if step_flow.shape != s["flow"].shape:
            raise ValueError(f"action must be a flow of shape {tuple(s['flow'].shape)}; got {tuple(step_flow.shape)}")
        flow, moved_float = self.transition(s["moving"], s["flow"], step_flow.detach())
        moved = quantise(moved_float)
        score = self.score_pairs(s, moved, flow)
        steps = s["steps"] + 1
        terminated = score >= self.dice_threshold
        truncated = (steps >= self.max_steps) & ~terminated
        if self.reward_mode == "improvement":
            reward = self.reward_scale * (score - s["score"]) + self.done_bonus * terminated.float()
        else:
            reward = self.reward_scale * score
        s.update(flow=flow, moved=moved, steps=steps, score=score)
        final_obs = self.observation()
        done = terminated | truncated
        info = {"score": score, "final_obs": final_obs, "done": done, "initial_score": s["initial_score"],
                "steps": steps}
        if not self.auto_reset:
            return final_obs, reward, terminated, truncated, info
        replace_finished(s, self._start(as_pair_dict(self.sampler.sample(self.num_envs, self.generator))), done)
        return self.observation(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        return {"episodes": {k: v.clone() for k, v in self._state.items()}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._state = {k: v.to(self.device) for k, v in state["episodes"].items()}
        self.generator.set_state(state["generator"])
