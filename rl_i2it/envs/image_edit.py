"""Whole-image editing as an episode: each step replaces the current image with the actor's image.

The env of the tasks whose action is a whole image (photo translation, style transfer): B episodes step
together on one device, torch only. What an episode is about comes from the sampler, how good the current
image is from the scorer, so one env serves every such task:

==============================  ==================================================================
call                            returns
==============================  ==================================================================
``reset(seed=None)``            ``obs``: uint8 ``(B, C_obs, S, S)``: the episode tensors named by
                                ``obs_keys`` (e.g. the source image), then the current image
``reset_to(episode)``           the same for given episodes (a dict as the sampler returns)
``step(image)``                 ``obs, reward, terminated, truncated, info``; ``image`` is float
                                ``(B, 3, S, S)`` in [0, 1]; reward/terminated/truncated ``(B,)``
``info["score"]``               ``(B,)`` the scorer's value after this step (before auto-reset)
``info["final_obs"]``           the observation this step produced, before auto-reset
``info["done"]``                ``(B,)`` terminated | truncated
``info["initial_score"]``       ``(B,)`` the score of the finished episode's first image
``info["steps"]``               ``(B,)`` steps taken in the episode
``current``                     the current images, uint8 ``(B, 3, S, S)``
``episode``                     the per-episode tensors (the sampler's dict, ``(B, ...)`` each)
``last_index``                  ``(B,)`` the sampler index of each row of the step just taken
==============================  ==================================================================

Contracts of the two plug-ins:

- ``sampler.sample(n, generator) -> dict`` of per-episode tensors ``(n, ...)`` on the env's device with at least
  ``"index"`` ``(n,)`` long; ``sampler.episode(index) -> dict`` rebuilds episodes from indices (checkpoints keep
  only the indices; without it they keep every tensor).
- ``scorer(current, episode) -> (B,)`` float, higher is better (PSNR to a target, minus a style loss, ...);
  ``current`` is uint8 ``(B, 3, S, S)``.

Reward ``"improvement"``: ``reward_scale * (score_t - score_{t-1}) + done_bonus * terminated``; ``"absolute"``:
``reward_scale * score_t + done_bonus * terminated``. An episode terminates when the score reaches
``score_threshold`` (default: never); a timeout is truncation. Each step's image is quantised to uint8 by the
env, so the policy acts on exactly what the replay buffer stores; finished episodes are replaced in the same
step with ``where`` (no data-dependent shapes). Fresh episodes are drawn (and scored: for style, a VGG pass)
only on steps where some episode can end: with no ``score_threshold`` that is known before the step (a timeout),
so the other steps skip the draw and the sampler's generator advances only when episodes are replaced.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from .registration import check_episode_settings, quantise, replace_finished, step_reward

__all__ = ["ImageEditEnv", "EpisodeSampler", "Scorer"]


class EpisodeSampler(Protocol):
    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]: ...


Scorer = Callable[[torch.Tensor, dict], torch.Tensor]


class ImageEditEnv:
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
    reward_mode, reward_scale, done_bonus, score_threshold : see the module docstring
    auto_reset : replace finished episodes in the same step (training); off for evaluation
    """

    def __init__(self, sampler: EpisodeSampler, scorer: Scorer, num_envs: int, max_steps: int,
                 obs_keys: tuple[str, ...] = ("source",), initial: str | Callable = "source",
                 reward_mode: str = "improvement", reward_scale: float = 1.0, done_bonus: float = 1.0,
                 score_threshold: float = math.inf, auto_reset: bool = True, device: torch.device | str = "cpu",
                 seed: int = 0):
        check_episode_settings(reward_mode, num_envs, max_steps)
        self.sampler, self.scorer = sampler, scorer
        self.num_envs, self.max_steps = int(num_envs), int(max_steps)
        self.obs_keys, self.initial = tuple(obs_keys), initial
        self.reward_mode, self.reward_scale, self.done_bonus = reward_mode, float(reward_scale), float(done_bonus)
        self.score_threshold = float(score_threshold)
        self.auto_reset, self.device = auto_reset, torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._state: dict[str, torch.Tensor] = {}
        self._episode_keys: tuple[str, ...] = ()
        self.last_index = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ episode state
    def first_image(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.initial(episode) if callable(self.initial) else episode[self.initial]
        return image.contiguous()

    def _start(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "index" not in episode:
            raise ValueError("a sampler's episode dict needs an 'index' (n,) long tensor")
        current = self.first_image(episode)
        if current.dtype != torch.uint8 or current.dim() != 4 or current.shape[1] != 3:
            raise ValueError(f"the first image must be uint8 (B, 3, S, S); got {tuple(current.shape)} {current.dtype}")
        score = self.scorer(current, episode)
        batch = current.shape[0]
        self._episode_keys = tuple(episode)
        return {**episode, "current": current, "score": score, "initial_score": score.clone(),
                "steps": torch.zeros(batch, dtype=torch.long, device=current.device)}

    @property
    def episode(self) -> dict[str, torch.Tensor]:
        return {k: self._state[k] for k in self._episode_keys}

    @property
    def current(self) -> torch.Tensor:
        return self._state["current"]

    def observation(self, episode: dict[str, torch.Tensor] | None = None,
                    current: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(B, C_obs, S, S)``: ``episode[k]`` for ``k`` in ``obs_keys``, then ``current`` (default: the
        env's own episodes); the learner rebuilds stored observations with it."""
        episode = self._state if episode is None else episode
        current = self._state["current"] if current is None else current
        return torch.cat([episode[k] for k in self.obs_keys] + [current], 1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._state = self._start(self.sampler.sample(self.num_envs, self.generator))
        self.last_index = self._state["index"]
        return self.observation()

    def reset_to(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Start episodes on given data (evaluation); ``index`` defaults to -1 (not from the sampler)."""
        episode = {k: v.to(self.device) for k, v in episode.items()}
        if "index" not in episode:
            batch = next(iter(episode.values())).shape[0]
            episode["index"] = torch.full((batch,), -1, dtype=torch.long, device=self.device)
        self._state = self._start(episode)
        self.last_index = self._state["index"]
        return self.observation()

    # ------------------------------------------------------------------ transition
    def step(self, image: torch.Tensor):
        s = self._state
        if tuple(image.shape) != tuple(s["current"].shape):
            raise ValueError(f"action must be an image of shape {tuple(s['current'].shape)}; got {tuple(image.shape)}")
        self.last_index = s["index"]
        current = quantise(image.detach())
        score = self.scorer(current, self.episode)
        steps = s["steps"] + 1
        terminated = score >= self.score_threshold
        truncated = (steps >= self.max_steps) & ~terminated
        reward = step_reward(score, s["score"], terminated, self.reward_mode, self.reward_scale, self.done_bonus)
        s.update(current=current, steps=steps, score=score)
        final_obs = self.observation()
        done = terminated | truncated
        info = {"score": score, "final_obs": final_obs, "done": done, "initial_score": s["initial_score"],
                "steps": steps}
        if not self.auto_reset or not self._may_end(steps):
            return final_obs, reward, terminated, truncated, info
        replace_finished(s, self._start(self.sampler.sample(self.num_envs, self.generator)), done)
        return self.observation(), reward, terminated, truncated, info

    def _may_end(self, steps: torch.Tensor) -> bool:
        """Whether an episode may have ended at this step: always with a score threshold, else on a timeout."""
        return not math.isinf(self.score_threshold) or bool((steps >= self.max_steps).any())

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Episodes by reference (their sampler indices) when the sampler can rebuild them, else whole."""
        rebuildable = hasattr(self.sampler, "episode") and bool((self._state["index"] >= 0).all())
        kept = ("index", "current", "score", "initial_score", "steps") if rebuildable else tuple(self._state)
        return {"episodes": {k: self._state[k].clone() for k in kept}, "episode_keys": list(self._episode_keys),
                "generator": self.generator.get_state(), "last_index": self.last_index.clone()}

    def load_state_dict(self, state: dict) -> None:
        episodes = {k: v.to(self.device) for k, v in state["episodes"].items()}
        self._episode_keys = tuple(state["episode_keys"])
        missing = [k for k in self._episode_keys if k not in episodes]
        if missing:
            rebuilt = self.sampler.episode(episodes["index"])
            episodes.update({k: rebuilt[k] for k in missing})
        self._state = episodes
        self.generator.set_state(state["generator"])
        self.last_index = state["last_index"].to(self.device)
