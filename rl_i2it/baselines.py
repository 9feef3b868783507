"""One-step baselines: the same encoder-decoder trained directly with the task's auxiliary loss, no RL.

For registration this is a VoxelMorph-style network: the planner+actor U-Net maps [fixed, moving] to
one displacement field in a single step (its plan is the distribution's mean: nothing is sampled),
trained on ``-NCC + smoothness`` of the warped moving image, for a wall-clock budget, and evaluated
by the task's own protocol with T = 1. Same architecture and parameter count as the RL policy, except
that one step may move up to ``image_size / 4`` pixels instead of ``max_step``.
"""
from __future__ import annotations

import time

import torch

from .config import TrainConfig
from .nn.functional import ncc, smoothness_loss, warp
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
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    batch_size = batch_size or cfg.batch_size
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        moving, fixed = task.env.sampler.sample(batch_size, generator)
        moving, fixed = moving.float() / 255, fixed.float() / 255
        dist, skips, _ = planner(torch.cat([fixed, moving], 1))
        flow = actor(dist.mean, skips)
        loss = -ncc(fixed, warp(moving, flow), window=cfg.ncc_window).mean() + cfg.smooth_weight * smoothness_loss(flow)
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
