"""The Task contract: what the trainer, evaluator and benchmark need from every paper task.

============================================  =========================================================
member                                        meaning
============================================  =========================================================
``env``                                       the batched training env (``envs/``)
``make_env(sampler, num_envs, auto_reset,``   another env of the same kind (evaluation, baselines)
``seed)``
``planner``, ``actor``, ``critic``            the networks (``critic`` is a ``TwinCritic``)
``extra_modules``                             e.g. discriminators: saved and restored with the rest
``transition_spec()``                         name -> (shape, dtype) of what one stored transition holds
``pack(obs, plan, reward, terminated,``       the dict the replay buffer stores, ``(B, ...)`` tensors
``next_obs)``
``unpack(stored)``                            -> dict with ``obs``, ``next_obs``, ``plan``, ``reward``,
                                              ``terminated`` as the learner needs them
``aux_loss(batch, plan, action)``             ``(loss, logs)``: the task's auxiliary loss through the
                                              env's own transition; trains actor and planner
``evaluate(planner, actor, **kw)``            the task's pinned evaluation protocol -> a JSON-able dict
*optional hooks*
``extra_optimisers``                          name -> optimiser of ``extra_modules`` (a discriminator's):
                                              checkpointed and restored with the trainer's own
``extra_update(batch, action, updates)``      once per learner update, before the auxiliary loss (e.g.
                                              a discriminator step); returns a dict of logs
``log_names``                                 names of a task's own logs, averaged into metrics rows
``initial_batch(env)``                        the one-step baseline's batch when its loss needs more than
                                              the state (face: the true hole)
============================================  =========================================================
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import UserError

__all__ = ["Task", "WholeImageTask", "check_planner_size", "evaluation_steps"]


def check_planner_size(image_size: int, planner_widths: tuple[int, ...], at_least: int = 1) -> None:
    """The image must survive the planner's ``len(planner_widths) - 1`` halvings (and be divisible by
    ``at_least``, e.g. an actor's own downsampling); a one-line ``UserError`` otherwise."""
    halvings = 2 ** (len(planner_widths) - 1)
    if image_size % halvings or image_size % at_least:
        raise UserError(f"image size {image_size} must be divisible by {max(halvings, at_least)} for planner widths "
                        f"{planner_widths}; change image_size or use fewer levels")


def evaluation_steps(steps: int | None, default: int, pairs=None, pairs_file=None,
                     uses: str = "this task's evaluation uses its held-out data", name: str = "evaluation steps") -> int:
    """The steps of a pinned evaluation (``default`` when None), refusing ``< 1`` and the digits-only ``--pairs``."""
    if pairs is not None or pairs_file is not None:
        raise UserError(f"--pairs is for the digits task; {uses}")
    steps = default if steps is None else steps
    if steps < 1:
        raise UserError(f"{name} must be >= 1; got {steps}")
    return steps


class Task:
    name = ""
    cfg: TrainConfig
    device: torch.device
    planner: nn.Module
    actor: nn.Module
    critic: nn.Module
    extra_modules: dict[str, nn.Module] = {}

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0):
        raise NotImplementedError

    def transition_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        raise NotImplementedError

    def pack(self, obs, plan, reward, terminated, next_obs) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def unpack(self, stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def aux_loss(self, batch: dict[str, torch.Tensor], plan: torch.Tensor, action: torch.Tensor):
        raise NotImplementedError

    def evaluate(self, planner: nn.Module, actor: nn.Module, **kwargs) -> dict:
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        modules = {"planner": self.planner, "actor": self.actor, "critic": self.critic, **self.extra_modules}
        return {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}


class WholeImageTask(Task):
    """A task on ``envs.image_edit.ImageEditEnv`` (photo translation, image style): replay by reference.

    A transition stores the sampler index of its episode, the current image before and after the step (uint8,
    the observation's last three channels), plan, reward and terminated; ``unpack`` rebuilds the rest of the
    observation from the index (each task knows its own episode data).
    """

    def transition_spec(self):
        image = ((3, self.cfg.image_size, self.cfg.image_size), torch.uint8)
        return {"index": ((), torch.int32), "current": image, "next_current": image,
                "plan": ((self.planner.plan_dim,), torch.float32), "reward": ((), torch.float32),
                "terminated": ((), torch.bool)}

    def pack(self, obs, plan, reward, terminated, next_obs):
        """The episode index comes from the env (``last_index``: the episodes of the step just taken)."""
        return {"index": self.env.last_index, "current": obs[:, -3:], "next_current": next_obs[:, -3:], "plan": plan,
                "reward": reward, "terminated": terminated}
