"""The one-step baseline of image style: a Johnson-style feed-forward network on the task's own loss.

======================================  ==========================================================
name                                    what
======================================  ==========================================================
``JohnsonPolicy(net)``                  the network as a ``Policy``: one image from the content
                                        photo alone (the observation's first three channels)
``train_style_baseline(cfg, ...)``      trained for ``seconds`` (or ``max_iterations``), evaluated
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
from ..nn.transformer_net import TransformerNet, width_for_parameters
from ..tasks import make_task
from ..tasks.image_style import StyleConfig

__all__ = ["JohnsonPolicy", "train_style_baseline", "KIND"]

KIND = "one-step feed-forward style network (Johnson et al.), same losses, no RL"


class JohnsonPolicy:
    """A feed-forward style network as a ``Policy``: ``net(content / 255)`` with the content photo uint8
    ``(B, 3, S, S)`` (the observation's first three channels) -> an image ``(B, 3, S, S)`` in [0, 1]."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.modules = (net,)

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        return self.net(obs[:, :3].float() / 255.0), hidden


def train_style_baseline(cfg: StyleConfig, seconds: float, device: torch.device, lr: float = 1e-3,
                         batch_size: int | None = None, max_iterations: int | None = None) -> EvalResult:
    """The one-step baseline: a Johnson-style ``TransformerNet`` with about the policy's (planner + actor)
    parameters, trained on the same loss ``L`` of the same content crops for ``seconds`` of wall time (or
    ``max_iterations``, whichever comes first), then the task's evaluation at T = 1.

    ``details["baseline"]``: kind, iterations, seconds, batch_size, lr, parameters, width, policy_parameters;
    ``artifacts["_networks"]``: ``{"transformer": net}``.
    """
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, device)  # its frozen VGG in the config's layout, as the RL learner's
    policy_parameters = sum(p.numel() for m in (task.planner, task.actor) for p in m.parameters())
    net = TransformerNet(width_for_parameters(policy_parameters, cfg.baseline_blocks), cfg.baseline_blocks).to(device)
    apply_memory_format(net, cfg.memory_format)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    batch_size = batch_size or cfg.batch_size
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and (max_iterations is None or iterations < max_iterations):
        index = torch.randint(0, task.bank.shape[0], (batch_size,), device=device, generator=generator)
        content = task.bank[index]
        with autocast(cfg.amp, device):  # the config's precision, as the RL learner's
            image = net(content.float() / 255.0).float()
            loss = task.objective(image, content)["total"].mean().float()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        iterations += 1
    trained_for = time.perf_counter() - started
    net.eval()
    policy = JohnsonPolicy(net)
    results = task.evaluate(policy, steps=1)
    results["_policy"] = policy  # what compare applies again to its own output
    results["baseline"] = {"kind": KIND, "iterations": iterations, "seconds": round(trained_for, 1),
                           "batch_size": batch_size, "lr": lr, "parameters": sum(p.numel() for p in net.parameters()),
                           "width": net.width, "policy_parameters": policy_parameters}
    results["_networks"] = {"transformer": net}
    return results
