"""The per-frame baseline of video style: Johnson et al.'s feed-forward network applied to every frame on its own
(one step, no memory), trained on the task's own loss and scored by the task's own protocol at one step per frame.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..data.videos import synthetic_next
from ..envs.video_style import MemoryCodec
from ..evaluate import EvalResult
from ..nn.execution import apply_memory_format, autocast
from ..nn.transformer_net import TransformerNet, width_for_parameters
from ..planner import as_float_image
from ..tasks import make_task
from ..tasks.video_style import VideoStyleConfig, temporal_error

__all__ = ["train_per_frame_baseline", "FramePolicy", "PER_FRAME_KIND"]

PER_FRAME_KIND = "per-frame feed-forward style network (Johnson et al.), same loss, no RL, no memory"


class FramePolicy:
    """A per-frame network as a video ``Policy``: ``(B, 6 + r, S, S) -> (B, 3 + r, S, S)``, the content frame
    stylised, the memory codes passed through unchanged (they stay zero)."""

    def __init__(self, net: nn.Module, codec: MemoryCodec):
        self.net, self.codec = net, codec
        self.modules = (net,)

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        return torch.cat([self.net(as_float_image(obs[:, :3])), obs[:, 6:].float() / 255], 1), hidden


def train_per_frame_baseline(cfg: VideoStyleConfig, seconds: float, device: torch.device, lr: float = 1e-3,
                             batch_size: int | None = None, max_iterations: int | None = None) -> EvalResult:
    """Johnson et al.'s feed-forward network applied per frame: about the policy's (planner + actor) parameters,
    trained on the same loss (the style total plus the same synthetic-flow temporal term, computed between the
    network's outputs on a frame and on its synthetic next frame) for ``seconds`` of wall time; evaluated with
    the task's protocol at one step per frame. ``max_iterations`` stops it earlier (tests)."""
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, device)  # its frozen VGG in the config's layout, as the RL learner's
    target = sum(p.numel() for m in (task.planner, task.actor) for p in m.parameters())
    net = TransformerNet(width_for_parameters(target, cfg.baseline_blocks), cfg.baseline_blocks).to(device)
    apply_memory_format(net, cfg.memory_format)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    batch_size = batch_size or cfg.batch_size
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    frames = task.sampler.frames
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and (max_iterations is None or iterations < max_iterations):
        content = frames[torch.randint(0, len(frames), (batch_size,), device=device, generator=generator)]
        with autocast(cfg.amp, device):  # the config's precision, as the RL learner's
            image = net(content.float() / 255).float()
            loss = task.objective(image, content)["total"].mean().float()
            if cfg.temporal_weight > 0:
                following, flow, valid = synthetic_next(content, generator, cfg.flow_magnitude)
                following = net(following.float() / 255).float()
                loss = loss + cfg.temporal_weight * temporal_error(image, following, flow, valid).mean().float()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        iterations += 1
    trained_for = time.perf_counter() - started
    policy = FramePolicy(net, task.codec)
    results = task.evaluate(policy, steps=1)
    results["_policy"] = policy  # what compare applies again to its own output
    results["baseline"] = {"kind": PER_FRAME_KIND, "iterations": iterations, "seconds": round(trained_for, 1),
                           "batch_size": batch_size, "lr": lr, "parameters": sum(p.numel() for p in net.parameters())}
    results["_networks"] = {"net": net}
    return results
