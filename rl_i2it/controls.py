"""The controls of a comparison: what a trained policy does without its plan, a one-step network fed its own
output, and per-pair optimisation as a policy. Everything here is a ``Policy`` or a plan transform, so every task's
pinned ``evaluate`` scores it unchanged.

====================================  ===============================================================
name                                  meaning
====================================  ===============================================================
``PLAN_CONTROLS``                     ``"zero" | "shuffled" | "prior"`` -> a factory of plan transforms
                                      ``(B, P) -> (B, P)``: zeros; the plan of another item of the batch
                                      (``roll`` by one: never an item's own); a draw from N(0, I)
``OwnOutputPolicy(policy, period)``   a one-step network applied to its own output: every step but the
                                      first of each period reads the current image where it read its
                                      input (observation channels 0-2 <- 3-5)
``PerPairOptimisationPolicy(...)``    registration without learning: one step, the field optimised
                                      for each pair by Adam on the task's loss (``optimise_fields``)
``plan_effect(task, obs)``            relative change of the action when the plan is zeroed / shuffled
``q_rank_correlation(task, env, obs)``  does the critic know which plan is better? Spearman's rank
                                      correlation between min Q(s, p_k) and the score after acting on
                                      p_k, over plans drawn from π(.|s), averaged over states
``stopping_oracle(scores)``            from every pair's score after every step ``(T+1, B)``: the
                                      mean of each pair's best step (the bound of any stop decision)
====================================  ===============================================================
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch

from .nn.field_optimisation import optimise_fields
from .planner import sample_plan
from .policy import PlannerPolicy, eval_mode

__all__ = ["PLAN_CONTROLS", "plan_transform", "OwnOutputPolicy", "PerPairOptimisationPolicy", "plan_effect",
           "q_rank_correlation", "stopping_oracle"]


def _zero(seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.zeros_like


def _shuffled(seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda plan: torch.roll(plan, 1, 0)  # item i acts on item i-1's plan (a derangement for B > 1)


def _prior(seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    generator = None

    def draw(plan: torch.Tensor) -> torch.Tensor:
        nonlocal generator
        if generator is None:
            generator = torch.Generator(device=plan.device).manual_seed(seed)
        return torch.randn(plan.shape, generator=generator, device=plan.device, dtype=plan.dtype)

    return draw


#: name -> ``factory(seed) -> plan_transform``
PLAN_CONTROLS = {"zero": _zero, "shuffled": _shuffled, "prior": _prior}


def plan_transform(name: str, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The plan transform of control ``name`` (``PLAN_CONTROLS``); ``seed`` fixes the prior's draws."""
    return PLAN_CONTROLS[name](seed)


class OwnOutputPolicy:
    """``policy`` (a one-step image network reading observation channels 0-2) applied to its own output.

    The first step of every ``period`` steps (an episode; a frame for video) sees the observation as it is; every
    later one sees the current image (channels 3-5) in place of the input, so the network transforms its own last
    output. Calls are counted, so one instance serves rollouts of whole periods only.
    """

    def __init__(self, policy, period: int):
        self.policy, self.period, self.calls = policy, int(period), 0
        self.modules = policy.modules

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        if self.calls % self.period:
            obs = obs.clone()
            obs[:, :3] = obs[:, 3:6]
        self.calls += 1
        return self.policy.act(obs, hidden)


class PerPairOptimisationPolicy:
    """Per-pair iterative registration as a one-step ``Policy``: observation ``[fixed, moved]`` uint8
    ``(B, 2, *S)`` -> the field ``(B, N, *S)`` that Adam finds for each pair on ``-NCC + smooth_weight *
    smoothness`` (the auxiliary loss's terms), ``iterations`` steps at ``lr``. Gradients are enabled inside, as the
    rollout runs under ``torch.no_grad``."""

    modules: tuple = ()

    def __init__(self, iterations: int, lr: float, smooth_weight: float, window: int):
        self.iterations, self.lr, self.smooth_weight, self.window = iterations, lr, smooth_weight, window

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        with torch.enable_grad():
            field = optimise_fields(obs[:, 1:2], obs[:, :1], self.iterations, self.lr, self.smooth_weight,
                                    self.window)
        return field, hidden


@torch.no_grad()
def plan_effect(task, obs: torch.Tensor) -> dict[str, float]:
    """How much the action moves when the plan is replaced: ``||a(control) - a(mean)|| / ||a(mean)||`` over the
    batch ``obs``, for each of ``PLAN_CONTROLS``. Large values with no change of score mean the score ignores what
    the plan does; values near 0 mean the actor ignores the plan."""
    base = PlannerPolicy(task.planner, task.actor)
    with eval_mode(task.planner, task.actor):
        reference, _ = base.act(obs)
        out = {}
        for name in PLAN_CONTROLS:
            policy = PlannerPolicy(task.planner, task.actor, plan_transform=plan_transform(name, seed=0))
            action, _ = policy.act(obs)
            out[name] = ((action - reference).norm() / reference.norm().clamp_min(1e-12)).item()
    return out


@torch.no_grad()
def q_rank_correlation(task, env, obs: torch.Tensor, plans_per_state: int = 8, seed: int = 0) -> float:
    """Does the critic rank plans as acting on them does? For each state of ``obs`` (the ``B`` episodes ``env``
    holds, ``auto_reset=False``), ``plans_per_state`` plans are drawn from π(.|s); each is scored by
    ``min(Q1, Q2)(s, p_k)`` and acted on from the same state (the env restored in between), giving the score after
    the step. Returns the mean over states of Spearman's ρ between the two (the score before the step is the same
    for every k, so ranking the score after ranks the score change); states where every plan scores the same are
    left out; NaN when all are. ``env`` is left as it was."""
    from scipy.stats import spearmanr

    generator = torch.Generator(device=obs.device).manual_seed(seed)
    saved = env.state_dict()
    q_values, scores = [], []
    with eval_mode(task.planner, task.actor, task.critic):
        dist, skips, _ = task.planner(obs)
        for _ in range(plans_per_state):
            plan = sample_plan(dist, generator)
            q1, q2 = task.critic(obs, plan)
            env.load_state_dict(copy.deepcopy(saved))
            _, _, _, _, info = env.step(task.actor(plan, skips).float())
            q_values.append(torch.minimum(q1, q2).float().cpu())
            scores.append(info["score"].float().cpu())
    env.load_state_dict(copy.deepcopy(saved))
    q, score = torch.stack(q_values, 1).numpy(), torch.stack(scores, 1).numpy()  # (B, K) each
    rhos = [spearmanr(q[i], score[i]).statistic for i in range(len(q))
            if np.ptp(score[i]) > 0 and np.ptp(q[i]) > 0]
    return float(np.mean(rhos)) if rhos else float("nan")


def stopping_oracle(scores: torch.Tensor) -> dict:
    """How much a perfect stop decision would gain. ``scores`` ``(T+1, B)``: every pair's score (higher is better)
    after every step (row 0: before the first), e.g. a registration task's ``step_scores``. Returns ``{"per_step":
    mean at 0..T, "final": at the last step, "best_fixed_step": the best single step for all pairs, "oracle": the
    mean over pairs of each pair's best step (an upper bound for any stop rule), "oracle_steps": the mean best step,
    "final_items"/"oracle_items": per pair}``."""
    per_step = scores.mean(1)
    best, where = scores.max(0)
    return {"per_step": per_step.tolist(), "final": per_step[-1].item(), "final_items": scores[-1].tolist(),
            "oracle_items": best.tolist(), "best_fixed_step": int(per_step.argmax()),
            "best_fixed_step_score": per_step.max().item(), "oracle": best.mean().item(),
            "oracle_steps": where.float().mean().item()}
