"""Whole-image editing as an episode: each step replaces the current image with the actor's image.

The env of the tasks whose action is a whole image (photo translation, style transfer): a ``BatchedEnv``
(``envs/base.py``: the step, the reward, terminated vs truncated, the same-step auto-reset). What an episode is
about comes from the sampler, how good the current image is from the scorer, so one env serves every such task:

==============================  ==================================================================
call                            returns
==============================  ==================================================================
``reset(seed=None)``            ``obs``: uint8 ``(B, C_obs, S, S)``: the episode tensors named by
                                ``obs_keys`` (e.g. the source image), then the current image
``start_episodes(episode)``     the same for given episodes (a dict as the sampler returns;
                                ``index`` defaults to -1: not from the sampler)
``step(image)``                 ``obs, reward, terminated, truncated, info``; ``image`` is float
                                ``(B, 3, S, S)`` in [0, 1]; reward/terminated/truncated ``(B,)``
``info``                        as every ``BatchedEnv`` (``score``, ``final_obs``, ``done``,
                                ``initial_score``, ``steps``), and ``index``: ``(B,)`` the sampler
                                index of each row of the step just taken (what replay stores)
``current``                     the current images, uint8 ``(B, 3, S, S)``
``episode``                     the per-episode tensors (the sampler's dict, ``(B, ...)`` each)
``observation(episode,``        the observation of other episodes and images (the learner rebuilds
``current)``                    stored observations with it)
==============================  ==================================================================

Contracts of the two plug-ins:

- ``sampler.sample(n, generator) -> dict`` of per-episode tensors ``(n, ...)`` on the env's device with at least
  ``"index"`` ``(n,)`` long; ``sampler.episode(index) -> dict`` rebuilds episodes from indices (checkpoints keep
  only the indices; without it they keep every tensor).
- ``scorer(current, episode) -> (B,)`` float, higher is better (PSNR to a target, minus a style loss, ...);
  ``current`` is uint8 ``(B, 3, S, S)``.

An episode terminates when the score reaches ``score_threshold`` (default: never); a timeout is truncation. Each
step's image is quantised to uint8 by the env, so the policy acts on exactly what the replay buffer stores. Fresh
episodes are drawn (and scored: for style, a VGG pass) only on steps where some episode can end. With no
``score_threshold`` no episode ends early, so every row starts together (``reset``, ``start_episodes``) and
times out together: a host-side count of the steps since the last start says exactly when (``may_end``, no
device read), the other steps skip the draw, and the sampler's generator advances only when episodes are replaced.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from .base import BatchedEnv
from .common import quantise

__all__ = ["ImageEditEnv", "EpisodeSampler", "Scorer"]


class EpisodeSampler(Protocol):
    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]: ...


Scorer = Callable[[torch.Tensor, dict], torch.Tensor]


class ImageEditEnv(BatchedEnv):
    """Batched whole-image editing.

    Parameters
    ----------
    sampler : draws episodes (a dict of ``(n, ...)`` tensors with ``"index"``), see the module docstring
    scorer : ``(current uint8 (B, 3, S, S), episode) -> (B,)``, higher is better
    num_envs : B, episodes stepped together
    max_steps : episode length; reaching it is truncation
    obs_keys : episode tensors (uint8 ``(B, C, S, S)``) shown to the policy before the current image
    initial : the episode tensor that is the first image (uint8 ``(B, 3, S, S)``), or a callable
        ``episode -> uint8 (B, 3, S, S)``
    reward_mode, reward_scale, done_bonus, score_threshold, auto_reset, device, seed : see ``BatchedEnv``
    """

    def __init__(self, sampler: EpisodeSampler, scorer: Scorer, num_envs: int, max_steps: int,
                 obs_keys: tuple[str, ...] = ("source",), initial: str | Callable = "source",
                 reward_mode: str = "improvement", reward_scale: float = 1.0, done_bonus: float = 1.0,
                 score_threshold: float = math.inf, auto_reset: bool = True, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(num_envs, max_steps, reward_mode, reward_scale, done_bonus, score_threshold, auto_reset,
                         device, seed)
        self.sampler, self.scorer = sampler, scorer
        self.obs_keys, self.initial = tuple(obs_keys), initial
        self._episode_keys: tuple[str, ...] = ()
        self._steps_since_start = 0  # host-side: every row started together (exact without a score threshold)

    # ------------------------------------------------------------------ BatchedEnv
    def draw(self, n: int) -> dict[str, torch.Tensor]:
        return self.sampler.sample(n, self.generator)

    def first_image(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.initial(episode) if callable(self.initial) else episode[self.initial]
        return image.contiguous()

    def start(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "index" not in episode:
            raise ValueError("a sampler's episode dict needs an 'index' (n,) long tensor")
        current = self.first_image(episode)
        if current.dtype != torch.uint8 or current.dim() != 4 or current.shape[1] != 3:
            raise ValueError(f"the first image must be uint8 (B, 3, S, S); got {tuple(current.shape)} {current.dtype}")
        self._episode_keys = tuple(episode)
        return {**episode, "current": current, "score": self.scorer(current, episode)}

    def advance(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        self._steps_since_start += 1
        current = quantise(action)
        return {"current": current, "score": self.scorer(current, {k: state[k] for k in self._episode_keys})}

    def observation(self, episode: dict[str, torch.Tensor] | None = None,
                    current: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(B, C_obs, S, S)``: ``episode[k]`` for ``k`` in ``obs_keys``, then ``current`` (default: the
        env's own episodes); the learner rebuilds stored observations with it."""
        episode = self._state if episode is None else episode
        current = self._state["current"] if current is None else current
        return torch.cat([episode[k] for k in self.obs_keys] + [current], 1)

    def transition_info(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"index": state["index"]}

    def check_action(self, action: torch.Tensor) -> None:
        expected = tuple(self._state["current"].shape)
        if tuple(action.shape) != expected:
            raise ValueError(f"action must be an image of shape {expected}; got {tuple(action.shape)}")

    def may_end(self, steps: torch.Tensor) -> bool:
        """Always with a score threshold; else exactly on the timeouts, which all rows reach together."""
        return not math.isinf(self.score_threshold) or self._steps_since_start % self.max_steps == 0

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self._steps_since_start = 0
        return super().reset(seed)

    def start_episodes(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Start episodes on given data (evaluation); ``index`` defaults to -1 (not from the sampler)."""
        if "index" not in episode:
            batch = next(iter(episode.values())).shape[0]
            episode = {**episode, "index": torch.full((batch,), -1, dtype=torch.long, device=self.device)}
        self._steps_since_start = 0
        return super().start_episodes(episode)

    # ------------------------------------------------------------------ episode state
    @property
    def episode(self) -> dict[str, torch.Tensor]:
        return {k: self._state[k] for k in self._episode_keys}

    @property
    def current(self) -> torch.Tensor:
        return self._state["current"]

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Episodes by reference (their sampler indices) when the sampler can rebuild them, else whole."""
        rebuildable = hasattr(self.sampler, "episode") and bool((self._state["index"] >= 0).all())
        kept = ("index", "current", "score", "initial_score", "steps") if rebuildable else tuple(self._state)
        return {"episodes": {k: self._state[k].clone() for k in kept}, "episode_keys": list(self._episode_keys),
                "generator": self.generator.get_state(), "steps_since_start": self._steps_since_start}

    def load_state_dict(self, state: dict) -> None:
        """Also reads checkpoints written before the refactor (a ``last_index`` entry, now in ``info``)."""
        episodes = {k: v.to(self.device) for k, v in state["episodes"].items()}
        self._episode_keys = tuple(state["episode_keys"])
        missing = [k for k in self._episode_keys if k not in episodes]
        if missing:
            rebuilt = self.sampler.episode(episodes["index"])
            episodes.update({k: rebuilt[k] for k in missing})
        self._state = episodes
        self.generator.set_state(state["generator"])
        # older checkpoints: the rows' common step count (read once, at load time)
        self._steps_since_start = state.get("steps_since_start", int(episodes["steps"].max()))
