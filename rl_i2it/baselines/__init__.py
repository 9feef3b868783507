"""Baselines: the networks and methods every task's RL policy is compared against. Imports run one way only:
``baselines -> tasks -> envs / nn``.

=======================  ===============================================================================
name                     what
=======================  ===============================================================================
``one_step``             the task's own planner + actor used once, trained on its auxiliary loss, no RL
                         (VoxelMorph-style for registration, a context encoder for face inpainting)
``pix2pix``              pix2pix's U-Net with the same losses (photo translation)
``johnson``              a Johnson-style feed-forward network with the same loss (image style)
``per_frame``            Johnson's network applied per frame, no memory (video style)
``optimise_fields``      per-pair iterative registration, no learning (the classical reference)
=======================  ===============================================================================

``train_baseline(cfg, seconds, ...)`` trains the baseline the task names (``Task.baseline``) and returns the task's
evaluation at T = 1 (an ``EvalResult`` with ``details["baseline"]``: kind, iterations, seconds, batch size, lr,
parameters; ``artifacts["_networks"]`` for figures).
"""
from __future__ import annotations

import torch

from ..config import TrainConfig
from ..device import resolve_device
from ..evaluate import EvalResult
from ..nn.field_optimisation import optimise_fields
from ..tasks import TASKS
from .johnson import train_style_baseline
from .one_step import train_one_step_network
from .per_frame import train_per_frame_baseline
from .pix2pix import train_pix2pix_baseline

__all__ = ["BASELINES", "train_baseline", "train_one_step_baseline", "optimise_fields"]

#: name -> ``trainer(cfg, seconds, device, lr, batch_size, max_iterations) -> EvalResult``
BASELINES = {"one_step": train_one_step_network, "pix2pix": train_pix2pix_baseline, "johnson": train_style_baseline,
             "per_frame": train_per_frame_baseline}


def train_baseline(cfg: TrainConfig, seconds: float, device: str | torch.device = "auto", lr: float = 1e-3,
                   batch_size: int | None = None, max_iterations: int | None = None) -> EvalResult:
    """Train the one-step baseline ``cfg``'s task names for ``seconds`` of wall time (or until
    ``max_iterations``, whichever comes first: tests use it to be independent of the machine's speed); return
    the task's evaluation at T = 1."""
    trainer = BASELINES[TASKS[cfg.task].baseline]
    return trainer(cfg, seconds=seconds, device=resolve_device(device), lr=lr, batch_size=batch_size,
                   max_iterations=max_iterations)


#: the name the chapters use
train_one_step_baseline = train_baseline
