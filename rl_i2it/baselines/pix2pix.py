"""pix2pix at equal wall time: a U-Net generator on photo translation's own losses and conditional discriminator.

======================================  ==========================================================
name                                    what
======================================  ==========================================================
``Pix2PixPolicy(generator)``            the generator as a ``Policy``: one image from the source
                                        alone (the observation's first three channels, uint8)
``train_pix2pix_baseline(cfg, ...)``    trained for ``seconds`` (or ``max_iterations``), evaluated
                                        with the task's protocol at T = 1 -> ``EvalResult``
======================================  ==========================================================
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..evaluate import EvalResult
from ..nn.execution import apply_memory_format, autocast
from ..nn.unet_generator import UNetGenerator
from ..tasks.base import adversary_update
from ..tasks import make_task
from ..tasks.photo_translation import PhotoConfig

__all__ = ["Pix2PixPolicy", "train_pix2pix_baseline", "KIND"]

KIND = "pix2pix: one-step U-Net generator + the same conditional PatchGAN and losses, no RL"


class Pix2PixPolicy:
    """A one-step generator as a ``Policy``: ``generator(obs[:, :3])``, the source alone (uint8 ``(B, 3, S, S)``;
    the U-Net scales it itself) -> an image ``(B, 3, S, S)`` in [0, 1]."""

    def __init__(self, generator: nn.Module):
        self.generator = generator
        self.modules = (generator,)

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        return self.generator(obs[:, :3]), hidden


def train_pix2pix_baseline(cfg: PhotoConfig, seconds: float, device: torch.device, lr: float = 1e-3,
                           batch_size: int | None = None, max_iterations: int | None = None) -> EvalResult:
    """pix2pix at equal wall time: the U-Net generator on the task's own loss (L1 + TV, then the conditional
    adversarial term from ``gan_start_updates`` iterations on, against a fresh copy of the task's D, stepped
    as in RL by ``adversary_update``), on fresh batches of the same training pairs, for ``seconds`` (or
    ``max_iterations``, whichever comes first); evaluated with the task's protocol at T = 1.

    ``details["baseline"]``: kind, iterations, seconds, batch_size, lr, parameters, discriminator_parameters;
    ``artifacts["_networks"]``: ``generator``, ``discriminator``.
    """
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, device)  # its D and VGG in the config's layout, as the RL learner's
    generator = apply_memory_format(UNetGenerator(cfg.baseline_widths, dropout=cfg.baseline_dropout).to(device),
                                    cfg.memory_format)
    optimiser = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    batch_size = batch_size or cfg.batch_size
    sampler, draws = task.env.sampler, torch.Generator(device=device).manual_seed(cfg.seed + 2)
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and (max_iterations is None or iterations < max_iterations):
        episode = sampler.sample(batch_size, draws)
        batch = {"source": episode["source"], "target": episode["target"]}
        with autocast(cfg.amp, device):  # the config's precision, as the RL learner's
            image = generator(episode["source"]).float()
            adversary_update(task, batch, image, iterations)  # D unclipped, as pix2pix (and this baseline before)
            loss = task.aux_loss(batch, None, image, iterations).loss.float()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(generator.parameters(), cfg.grad_clip)
        optimiser.step()
        iterations += 1
    trained_for = time.perf_counter() - started
    generator.eval()
    policy = Pix2PixPolicy(generator)
    results = task.evaluate(policy, steps=1)
    results["_policy"] = policy  # what compare applies again to its own output
    discriminator = task.adversary.module
    results["baseline"] = {"kind": KIND, "iterations": iterations, "seconds": round(trained_for, 1),
                           "batch_size": batch_size, "lr": lr,
                           "parameters": sum(p.numel() for p in generator.parameters()),
                           "discriminator_parameters": sum(p.numel() for p in discriminator.parameters())}
    results["_networks"] = {"generator": generator, "discriminator": discriminator}
    return results
