"""The one-step baseline: the task's own planner + actor used once, trained directly on its auxiliary loss, no RL.

Generic over tasks: initial states come from a fresh copy of the task's env (new episodes every iteration,
``Task.initial_batch``), the network is the task's planner + actor used deterministically (the plan is the
distribution's mean: nothing is sampled, no critic), the loss is ``task.aux_loss`` on that state (with the task's
adversary stepped as in the RL learner), and the budget is wall-clock time or a number of iterations. Evaluation is
the task's own protocol with T = 1.

For registration this is a VoxelMorph-style U-Net: [fixed, moving] -> one displacement field, trained on
``-NCC + smoothness``; same architecture and parameter count as the RL policy, except that its single step may move
up to ``image_size / 4`` pixels instead of ``max_step``. For face inpainting it is a context encoder: image with the
mean-filled hole -> the patch, trained on the same ring-weighted L1 and, from ``gan_start_updates`` iterations on,
the same adversarial term against the task's own discriminator.
"""
from __future__ import annotations

import time

import torch

from ..config import TrainConfig
from ..evaluate import EvalResult
from ..nn.execution import autocast
from ..policy import PlannerPolicy
from ..tasks import make_task
from ..tasks.base import adversary_update

__all__ = ["train_one_step_network", "ONE_STEP_KINDS"]

#: what the one-step network is, per task family (named in the result)
ONE_STEP_KINDS = {"face": "one-step encoder-decoder (context-encoder style), same losses, no RL"}


def train_one_step_network(cfg: TrainConfig, seconds: float, device: torch.device, lr: float = 1e-3,
                           batch_size: int | None = None, max_iterations: int | None = None,
                           cascade: int = 1) -> EvalResult:
    """Train the task's planner + actor as one step for ``seconds`` (or ``max_iterations``); evaluate at T = 1.

    ``cascade = k > 1`` trains a recursive cascade instead (RCN, Zhao et al. 2019; the ``cascade`` control): the
    same planner + actor applied k times with shared weights, each application on the last one's result
    (``Task.cascade_next``, differentiable), trained end to end with the auxiliary loss on the last application
    plus the task's regulariser on every earlier one (``Task.cascade_regulariser``), and evaluated with k steps.
    Each application keeps the policy's ``max_step`` (the one-step network gets ``image_size / 4`` instead).
    """
    if cascade < 1:
        raise ValueError(f"cascade must be >= 1; got {cascade}")
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, device)
    planner, actor = task.planner, task.actor
    if cascade == 1:
        actor.max_step = cfg.image_size / 4  # flow heads: one large step (image heads ignore it)
    optimiser = torch.optim.Adam(list(planner.parameters()) + list(actor.parameters()), lr=lr)
    batch_size = batch_size or cfg.batch_size
    episodes = task.make_env(task.env.sampler, batch_size, auto_reset=False, seed=cfg.seed + 2)
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and (max_iterations is None or iterations < max_iterations):
        batch = task.initial_batch(episodes)  # first states (and a target where the loss needs one)
        regulariser = 0.0
        with autocast(cfg.amp, device):  # the config's precision, as the RL learner's
            for application in range(cascade):
                if application:
                    regulariser = regulariser + task.cascade_regulariser(batch, action)
                    batch = task.cascade_next(batch, action)
                dist, skips, _ = planner(batch["obs"])
                action = actor(dist.mean, skips).float()
            adversary_update(task, batch, action, iterations)  # the GAN phase, as in the RL learner
            loss = task.aux_loss(batch, dist.mean, action, iterations).loss.float() + regulariser
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        iterations += 1
    trained_for = time.perf_counter() - started
    policy = PlannerPolicy(planner, actor)
    results = task.evaluate(policy, steps=cascade)
    results["_policy"] = policy  # what compare applies T times
    kind = ONE_STEP_KINDS.get(cfg.task, "one-step encoder-decoder (VoxelMorph-style), no RL")
    if cascade > 1:
        kind = f"recursive cascade (RCN-style): the policy's planner + actor applied {cascade} times with shared " \
               f"weights, trained end to end, no RL"
    results["baseline"] = {"kind": kind, "iterations": iterations, "seconds": round(trained_for, 1),
                           "batch_size": batch_size, "lr": lr, "cascade": cascade,
                           "parameters": sum(p.numel() for m in (planner, actor) for p in m.parameters())}
    results["_networks"] = {"planner": planner, "actor": actor}
    return results
