"""Deterministic evaluation: run the policy (plan mean) for T steps on fixed pairs and score every step.

==========================================  ==============================================================
function                                    returns
==========================================  ==============================================================
``rollout_registration(planner, actor,``    dict: ``moved`` uint8 ``(T+1, B, 1, *S)`` (step 0 = identity),
``env, moving, fixed, steps)``              ``fixed`` ``(B, 1, *S)``, ``flow`` ``(B, N, *S)`` accumulated
``registration_metrics(rollout, thr)``      dict: ``dice_identity``, ``dice_final``, ``dice_per_step``
                                            (T+1 means), ``folding_fraction``, ``n_pairs``
==========================================  ==============================================================
"""
from __future__ import annotations

import torch

from .envs.registration import RegistrationEnv
from .nn.functional import dice_score, folding_fraction

__all__ = ["rollout_registration", "registration_metrics"]


@torch.no_grad()
def rollout_registration(planner, actor, env: RegistrationEnv, moving: torch.Tensor, fixed: torch.Tensor,
                         steps: int, deterministic: bool = True) -> dict[str, torch.Tensor]:
    was_training = planner.training, actor.training
    planner.eval(), actor.eval()
    obs = env.reset_to(moving, fixed)
    frames, hidden = [obs[:, 1:]], None
    for _ in range(steps):
        dist, skips, hidden = planner(obs, hidden)
        plan = dist.mean if deterministic else dist.sample()
        obs, *_ = env.step(actor(plan, skips))
        frames.append(obs[:, 1:])
    planner.train(was_training[0]), actor.train(was_training[1])
    return {"moved": torch.stack(frames), "fixed": obs[:, :1], "flow": env.flow.clone()}


def registration_metrics(rollout: dict[str, torch.Tensor], mask_threshold: int = 0) -> dict:
    """Dice of ``moved > thr`` against ``fixed > thr`` at every step, and the final field's folding."""
    fixed = rollout["fixed"] > mask_threshold
    per_step = torch.stack([dice_score(m > mask_threshold, fixed) for m in rollout["moved"]])  # (T+1, B)
    means = per_step.mean(1).tolist()
    return {
        "dice_identity": means[0],
        "dice_final": means[-1],
        "dice_per_step": means,
        "folding_fraction": folding_fraction(rollout["flow"]).mean().item(),
        "n_pairs": int(per_step.shape[1]),
    }
