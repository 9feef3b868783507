"""``BatchedEnv``: the step every env shares, written once; a task family's env overrides a few small methods.

B episodes step together on one device, torch only (DESIGN §3):

==========================  ==================================================================
call                        returns
==========================  ==================================================================
``reset(seed=None)``        ``obs`` uint8 ``(B, C, *S)`` of fresh episodes
``step(action)``            ``obs, reward, terminated, truncated, info``; ``(B,)`` each but obs
``info["score"]``           ``(B,)`` the task metric after this step (before any auto-reset)
``info["final_obs"]``       the observation this step produced, before auto-reset: the buffer's s'
``info["done"]``            ``(B,)`` terminated | truncated
``info["initial_score"]``   ``(B,)`` the finished episode's score before its first step
``info["steps"]``           ``(B,)`` steps taken in the episode, this one included
``info[...]``               whatever ``transition_info`` adds: everything a replayed transition needs
                            besides the observations (an episode index, a frame position), so a
                            task's ``pack`` never reads the env
==========================  ==================================================================

The skeleton of ``step``: ``advance`` (the task's transition; returns the changed episode state and its
``score``), terminated when the score reaches ``score_threshold``, truncated at ``max_steps`` (a timeout is
truncation, never termination), the reward from ``common.step_reward`` (improvement or the authors'
absolute score, plus the done bonus in both), then the same-step auto-reset of finished rows with
``common.replace_finished`` (no data-dependent shapes, no host synchronisation).

A subclass implements ``draw(n)`` (fresh episodes from its sampler), ``start(episode)`` (the episode state,
with ``score``), ``advance(state, action)`` and ``observation()``, and may override ``transition_info``,
``settle`` (what follows a scored step inside an episode, before its observation), ``may_end``, ``check_action``,
``state_dict`` and ``load_state_dict`` (e.g. to store episodes by reference).
"""
from __future__ import annotations

import math

import torch

from .common import check_episode_settings, replace_finished, step_reward

__all__ = ["BatchedEnv"]


class BatchedEnv:
    """The shared step of every env (see the module docstring).

    Parameters
    ----------
    num_envs : B, episodes stepped together
    max_steps : episode length; reaching it is truncation
    reward_mode, reward_scale, done_bonus : see ``common.step_reward``
    score_threshold : an episode terminates once its score reaches it (``inf``: never)
    auto_reset : replace finished episodes in the same step (training); off for evaluation
    device, seed : where the episodes live; the seed of the env's own generator (draws episodes)
    """

    def __init__(self, num_envs: int, max_steps: int, reward_mode: str = "improvement", reward_scale: float = 1.0,
                 done_bonus: float = 1.0, score_threshold: float = math.inf, auto_reset: bool = True,
                 device: torch.device | str = "cpu", seed: int = 0):
        check_episode_settings(reward_mode, num_envs, max_steps)
        self.num_envs, self.max_steps = int(num_envs), int(max_steps)
        self.reward_mode, self.reward_scale, self.done_bonus = reward_mode, float(reward_scale), float(done_bonus)
        self.score_threshold = float(score_threshold)
        self.auto_reset, self.device = auto_reset, torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._state: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ what a subclass implements
    def draw(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` fresh episodes from the sampler, drawn with ``self.generator``."""
        raise NotImplementedError

    def start(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state of episodes about to take their first step; must hold ``score`` ``(B,)``."""
        raise NotImplementedError

    def advance(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        """The task's transition: the state entries that change, with the new ``score`` ``(B,)``."""
        raise NotImplementedError

    def observation(self) -> torch.Tensor:
        """uint8 ``(B, C, *S)`` of the current episodes."""
        raise NotImplementedError

    # ------------------------------------------------------------------ what a subclass may override
    def transition_info(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-row tensors of the step about to be taken that a stored transition needs (default none)."""
        return {}

    def check_action(self, action: torch.Tensor) -> None:
        """A clear error for an action of the wrong shape."""

    def settle(self, state: dict[str, torch.Tensor]) -> None:
        """In place, after a step is scored and rewarded and before its observation: what follows inside an
        episode (video: a frame's last step starts the next frame, with a new score to improve on). Default
        none."""

    def may_end(self, steps: torch.Tensor) -> bool:
        """Whether an episode may end at this step; ``False`` skips drawing fresh episodes (a host-side answer:
        never read a device tensor here)."""
        return True

    # ------------------------------------------------------------------ the shared skeleton
    @property
    def state(self) -> dict[str, torch.Tensor]:
        """The episodes' state (read-only use: figures, tests)."""
        return self._state

    def _begin(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = self.start(episode)
        batch = state["score"].shape[0]
        state.setdefault("steps", torch.zeros(batch, dtype=torch.long, device=self.device))
        state.setdefault("initial_score", state["score"].clone())
        return state

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._state = self._begin(self.draw(self.num_envs))
        return self.observation()

    def start_episodes(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Start episodes on given data (evaluation): ``episode`` as ``draw`` would return it."""
        self._state = self._begin({k: v.to(self.device) for k, v in episode.items()})
        return self.observation()

    def step(self, action: torch.Tensor):
        s = self._state
        self.check_action(action)
        info_before = self.transition_info(s)
        changed = self.advance(s, action.detach())
        score = changed["score"]
        steps = s["steps"] + 1
        terminated = score >= self.score_threshold
        truncated = (steps >= self.max_steps) & ~terminated
        reward = step_reward(score, s["score"], terminated, self.reward_mode, self.reward_scale, self.done_bonus)
        s.update(changed)
        s["steps"] = steps
        self.settle(s)
        final_obs = self.observation()
        done = terminated | truncated
        info = {"score": score, "final_obs": final_obs, "done": done, "initial_score": s["initial_score"],
                "steps": steps, **info_before}
        if not self.auto_reset or not self.may_end(steps):
            return final_obs, reward, terminated, truncated, info
        replace_finished(s, self._begin(self.draw(self.num_envs)), done)
        return self.observation(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        return {"episodes": {k: v.clone() for k, v in self._state.items()}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._state = {k: v.to(self.device) for k, v in state["episodes"].items()}
        self.generator.set_state(state["generator"])
