"""One-step baselines: the same encoder-decoder trained directly with the task's auxiliary loss, no RL.

Generic over tasks: initial states come from a fresh copy of the task's env (new episodes every
iteration), the network is the task's planner + actor used deterministically (the plan is the
distribution's mean: nothing is sampled, no critic), the loss is ``task.aux_loss`` on that state, and
the budget is wall-clock time. Evaluation is the task's own protocol with T = 1.

For registration this is a VoxelMorph-style U-Net: [fixed, moving] -> one displacement field,
trained on ``-NCC + smoothness``; same architecture and parameter count as the RL policy, except that
its single step may move up to ``image_size / 4`` pixels instead of ``max_step``.
"""
from __future__ import annotations

import time

import torch

from .config import TrainConfig
from .tasks import make_task
from .train import resolve_device

__all__ = ["train_one_step_baseline"]


def train_one_step_baseline(cfg: TrainConfig, seconds: float, device: str = "auto", lr: float = 1e-3,
                            batch_size: int | None = None) -> dict:
    """Train the one-step network for ``seconds`` of wall time; return the task's evaluation (T = 1).

    The result holds ``baseline`` (iterations, seconds, parameters) besides the usual metric keys, and
    ``_networks`` (planner, actor) for figures.
    """
    device = resolve_device(device)
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, device)
    planner, actor = task.planner, task.actor
    actor.max_step = cfg.image_size / 4
    optimiser = torch.optim.Adam(list(planner.parameters()) + list(actor.parameters()), lr=lr)
    batch_size = batch_size or cfg.batch_size
    episodes = task.make_env(task.env.sampler, batch_size, auto_reset=False, seed=cfg.seed + 2)
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        obs = episodes.reset()  # a fresh batch of first states
        dist, skips, _ = planner(obs)
        action = actor(dist.mean, skips)
        loss, _ = task.aux_loss({"obs": obs}, dist.mean, action)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        iterations += 1
    trained_for = time.perf_counter() - started
    results = task.evaluate(planner, actor, steps=1)
    results["baseline"] = {"kind": "one-step encoder-decoder (VoxelMorph-style), no RL", "iterations": iterations,
                           "seconds": round(trained_for, 1), "batch_size": batch_size, "lr": lr,
                           "parameters": sum(p.numel() for m in (planner, actor) for p in m.parameters())}
    results["_networks"] = {"planner": planner, "actor": actor}
    return results
