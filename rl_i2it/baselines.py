"""One-step baselines: the same encoder-decoder trained directly with the task's auxiliary loss, no RL.

Generic over tasks: initial states come from a fresh copy of the task's env (new episodes every
iteration), the network is the task's planner + actor used deterministically (the plan is the
distribution's mean: nothing is sampled, no critic), the loss is ``task.aux_loss`` on that state, and
the budget is wall-clock time. Evaluation is the task's own protocol with T = 1.

For registration this is a VoxelMorph-style U-Net: [fixed, moving] -> one displacement field,
trained on ``-NCC + smoothness``; same architecture and parameter count as the RL policy, except that
its single step may move up to ``image_size / 4`` pixels instead of ``max_step``. For face inpainting it is
a context encoder: image with the mean-filled hole -> the patch, trained on the same ring-weighted L1 and,
from ``gan_start_updates`` iterations on, the same adversarial term against the task's own discriminator
(stepped by ``task.extra_update``, as in the RL learner).
"""
from __future__ import annotations

import time

import torch

from .config import TrainConfig
from .tasks import make_task
from .train import resolve_device

__all__ = ["train_one_step_baseline", "optimise_fields", "register_baseline", "BASELINE_TRAINERS"]

#: task name -> ``trainer(cfg, seconds, device, lr, batch_size) -> results``: a task whose one-step baseline is a
#: different network (pix2pix's U-Net, Johnson et al.'s transformer net) registers its own trainer here; it must
#: return the task's evaluation at T = 1 with ``baseline`` (kind, iterations, seconds, batch_size, lr, parameters)
#: and ``_networks`` as ``train_one_step_baseline`` documents
BASELINE_TRAINERS: dict = {}


def register_baseline(task: str, trainer) -> None:
    BASELINE_TRAINERS[task] = trainer


def train_one_step_baseline(cfg: TrainConfig, seconds: float, device: str = "auto", lr: float = 1e-3,
                            batch_size: int | None = None, max_iterations: int | None = None) -> dict:
    """Train the one-step network for ``seconds`` of wall time (or until ``max_iterations``, whichever comes
    first: tests use it to be independent of the machine's speed); return the task's evaluation (T = 1).

    The result holds ``baseline`` (iterations, seconds, parameters) besides the usual metric keys, and
    ``_networks`` (planner, actor) for figures.
    """
    device = resolve_device(device)
    if cfg.task in BASELINE_TRAINERS:
        limit = {} if max_iterations is None else {"max_iterations": max_iterations}
        return BASELINE_TRAINERS[cfg.task](cfg, seconds=seconds, device=device, lr=lr, batch_size=batch_size, **limit)
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, device)
    planner, actor = task.planner, task.actor
    actor.max_step = cfg.image_size / 4  # flow heads: one large step (image heads ignore it)
    optimiser = torch.optim.Adam(list(planner.parameters()) + list(actor.parameters()), lr=lr)
    initial_batch = getattr(task, "initial_batch", None)  # tasks whose loss needs more than the state (a target)
    extra_update = getattr(task, "extra_update", None)  # e.g. a discriminator step (the GAN phase), as in RL
    batch_size = batch_size or cfg.batch_size
    episodes = task.make_env(task.env.sampler, batch_size, auto_reset=False, seed=cfg.seed + 2)
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and (max_iterations is None or iterations < max_iterations):
        batch = initial_batch(episodes) if initial_batch is not None else {"obs": episodes.reset()}  # first states
        dist, skips, _ = planner(batch["obs"])
        action = actor(dist.mean, skips)
        if extra_update is not None:
            extra_update(batch, action, iterations)
        loss, _ = task.aux_loss(batch, dist.mean, action)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        iterations += 1
    trained_for = time.perf_counter() - started
    results = task.evaluate(planner, actor, steps=1)
    kind = getattr(task, "baseline_kind", "one-step encoder-decoder (VoxelMorph-style), no RL")
    results["baseline"] = {"kind": kind, "iterations": iterations,
                           "seconds": round(trained_for, 1), "batch_size": batch_size, "lr": lr,
                           "parameters": sum(p.numel() for m in (planner, actor) for p in m.parameters())}
    results["_networks"] = {"planner": planner, "actor": actor}
    return results


def optimise_fields(moving: torch.Tensor, fixed: torch.Tensor, iterations: int = 300, lr: float = 0.05,
                    smooth_weight: float = 1.0, window: int = 9) -> torch.Tensor:
    """Per-pair iterative registration: Adam on one displacement field per pair (the strong reference).

    Minimises ``-NCC(fixed, warp(moving, u)) + smooth_weight * smoothness(u)``, the same loss as the
    one-step network and the policy's auxiliary loss, directly over ``u`` (classical optimisation, no
    learning). ``moving``, ``fixed``: uint8 ``(B, 1, *S)``; returns ``u`` ``(B, N, *S)`` in pixels.
    """
    from .nn.functional import ncc, smoothness_loss, warp

    moving, fixed = moving.float() / 255, fixed.float() / 255
    field = torch.zeros(moving.shape[0], moving.dim() - 2, *moving.shape[2:], device=moving.device,
                        requires_grad=True)
    optimiser = torch.optim.Adam([field], lr=lr)
    for _ in range(iterations):
        loss = -ncc(fixed, warp(moving, field), window).mean() + smooth_weight * smoothness_loss(field)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return field.detach()


from .tasks.photo_translation import train_pix2pix_baseline  # noqa: E402

register_baseline("photo", train_pix2pix_baseline)


from .tasks.image_style import train_style_baseline  # noqa: E402  (issue 8: a Johnson-style network)

register_baseline("image_style", train_style_baseline)


from .tasks.video_style import train_per_frame_baseline  # noqa: E402  (issue 8: Johnson's network per frame)

register_baseline("video_style", train_per_frame_baseline)
