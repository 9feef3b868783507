"""The Task contract: everything the trainer, evaluator, baselines and benchmark use, declared once.

A new task's checklist (implement these members, nothing else; register it with ``tasks.register_task``):

===================================================  ==============================================================
member                                               meaning
===================================================  ==============================================================
``name``, ``baseline``                               the task's registry name; the name of its one-step baseline
                                                     (``rl_i2it.baselines.BASELINES``)
config class + presets                               a frozen ``TrainConfig`` subclass with the task's own fields
                                                     and ``validate()`` checks, and ``smoke``/``course``/``paper``
``__init__(cfg, device)``                            builds ``env``, ``planner``, ``actor``, ``critic``,
                                                     ``critic_target`` (and ``adversary`` if it has one)
``make_env(sampler, num_envs, auto_reset, seed)``    another env of the same kind (evaluation, baselines)
``transition_spec()``                                name -> (shape, dtype) of what one stored transition holds
``pack(obs, plan, reward, terminated, next_obs,``    the dict the replay buffer stores, ``(B, ...)`` tensors; an
``info)``                                            episode reference comes from ``info``, never from the env
``unpack(stored)``                                   -> dict with ``obs``, ``next_obs``, ``plan``, ``reward``,
                                                     ``terminated`` (and whatever ``aux_loss`` needs)
``aux_loss(batch, plan, action, updates)``           ``AuxOut(loss, logs)``: the auxiliary loss through the env's
                                                     own transition; trains actor and planner
``evaluate(policy, steps=None, ...)``                the pinned protocol of any ``Policy`` -> ``EvalResult``
*optional*
``log_names``                                        the task's own logs (keys of ``AuxOut.logs`` and of the
                                                     adversary's), averaged per update into ``metrics.jsonl``
``adversary`` + ``adversary_loss(batch, fake)``      a discriminator and its optimiser (``Adversary``): the
                                                     trainer steps it once per learner update from
                                                     ``adversary.start_updates`` on, with the same gradient
                                                     clipping, checkpointing and logging as every network
``initial_batch(env)``                               a one-step network's training batch (default: fresh first
                                                     states; face adds the true hole)
``cascade_next(batch, action)``,                     the cascade control (``compare``): the next state as a
``cascade_regulariser(batch, action)``               differentiable float batch; the regulariser paid per
                                                     application (default none)
===================================================  ==============================================================
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import UserError
from ..evaluate import EvalResult
from ..planner import as_float_image
from ..policy import PlannerPolicy, Policy

__all__ = ["Task", "AuxOut", "Adversary", "WholeImageTask", "evaluation_steps"]


def evaluation_steps(steps: int | None, default: int, name: str = "evaluation steps") -> int:
    """The steps of a pinned evaluation (``default`` when None), refusing ``< 1`` with a one-line ``UserError``."""
    steps = default if steps is None else steps
    if steps < 1:
        raise UserError(f"{name} must be >= 1; got {steps}")
    return steps


@dataclass
class AuxOut:
    """An auxiliary (or adversary) loss and its device-resident logs (keys from the task's ``log_names``)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Adversary:
    """A discriminator the trainer owns: stepped on ``Task.adversary_loss`` once per learner update from update
    ``start_updates`` on (``-1``: never), checkpointed as ``networks[name]`` / ``optimisers[name]``."""

    module: nn.Module
    optimiser: torch.optim.Optimizer
    start_updates: int
    name: str = "discriminator"

    def active(self, updates: int) -> bool:
        """Whether the adversarial phase is on at learner update ``updates`` (a host-side integer)."""
        return self.start_updates >= 0 and updates >= self.start_updates


class Task(abc.ABC):
    """The contract of a paper task (see the module docstring for the checklist)."""

    name: ClassVar[str] = ""
    baseline: ClassVar[str] = "one_step"
    log_names: ClassVar[tuple[str, ...]] = ()

    cfg: TrainConfig
    device: torch.device
    env: object
    planner: nn.Module
    actor: nn.Module
    critic: nn.Module
    critic_target: nn.Module
    adversary: Adversary | None = None

    @abc.abstractmethod
    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0):
        """Another env of this task's kind on ``sampler`` (evaluation and baselines use it)."""

    @abc.abstractmethod
    def transition_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of one stored transition."""

    @abc.abstractmethod
    def pack(self, obs, plan, reward, terminated, next_obs, info) -> dict[str, torch.Tensor]:
        """What the buffer stores of a batched step, from its tensors and the env's ``info``."""

    @abc.abstractmethod
    def unpack(self, stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A sampled batch as the learner needs it (``obs``, ``next_obs``, ``plan``, ``reward``, ``terminated``)."""

    @abc.abstractmethod
    def aux_loss(self, batch: dict[str, torch.Tensor], plan: torch.Tensor, action: torch.Tensor,
                 updates: int) -> AuxOut:
        """The task's auxiliary loss of ``action`` on ``batch`` at learner update ``updates``."""

    @abc.abstractmethod
    def evaluate(self, policy: Policy, steps: int | None = None, **options) -> EvalResult:
        """The pinned evaluation protocol of ``policy``."""

    # ------------------------------------------------------------------ with defaults
    def adversary_loss(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> AuxOut:
        """The discriminator's loss on real data in ``batch`` against ``fake`` (detached); tasks with an
        ``adversary`` implement it."""
        raise NotImplementedError(f"task {self.name!r} has no adversary")

    def initial_batch(self, env) -> dict[str, torch.Tensor]:
        """A one-step network's training batch: fresh first states (tasks whose loss needs a target add it)."""
        return {"obs": env.reset()}

    def cascade_next(self, batch: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        """The next application's batch in a recursive cascade (the ``cascade`` control): ``batch`` with ``obs``
        the state after ``action``, float in [0, 1] and differentiable (not quantised), so the cascade trains end
        to end through every application."""
        raise NotImplementedError(f"task {self.name!r} has no cascade transition (Task.cascade_next)")

    def cascade_regulariser(self, batch: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """The task's regulariser of one cascade's action, paid at every application but the last (whose
        ``aux_loss`` includes it); default none."""
        return action.new_zeros(())

    def policy(self, deterministic: bool = True, generator: torch.Generator | None = None,
               plan_transform=None) -> PlannerPolicy:
        """This task's planner + actor as a ``Policy``."""
        return PlannerPolicy(self.planner, self.actor, deterministic, generator, plan_transform)

    def networks(self) -> dict[str, nn.Module]:
        """Every network a checkpoint holds, by name."""
        modules = {"planner": self.planner, "actor": self.actor, "critic": self.critic,
                   "critic_target": self.critic_target}
        if self.adversary is not None:
            modules[self.adversary.name] = self.adversary.module
        return modules

    def parameter_counts(self) -> dict[str, int]:
        networks = self.networks()
        networks.pop("critic_target")
        return {name: sum(p.numel() for p in m.parameters()) for name, m in networks.items()}


def adversary_update(task: Task, batch: dict[str, torch.Tensor], action: torch.Tensor, updates: int,
                     grad_clip: float = 0.0) -> dict[str, torch.Tensor]:
    """One discriminator step on ``task.adversary_loss`` when the adversarial phase is on; returns its logs.

    The trainer and the one-step baselines both call it, so the discriminator is stepped the same way everywhere.
    """
    adversary = task.adversary
    if adversary is None or not adversary.active(updates):
        return {}
    out = task.adversary_loss(batch, action.detach())
    adversary.optimiser.zero_grad(set_to_none=True)
    out.loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(adversary.module.parameters(), grad_clip)
    adversary.optimiser.step()
    return out.logs


class WholeImageTask(Task):
    """A task on ``envs.image_edit.ImageEditEnv`` (photo translation, image style): replay by reference.

    A transition stores the sampler index of its episode (from ``info["index"]``), the current image before and
    after the step (uint8, the observation's last three channels), plan, reward and terminated; ``unpack`` rebuilds
    the rest of the observation from the index (each task knows its own episode data).
    """

    def transition_spec(self):
        image = ((3, self.cfg.image_size, self.cfg.image_size), torch.uint8)
        return {"index": ((), torch.int32), "current": image, "next_current": image,
                "plan": ((self.planner.plan_dim,), torch.float32), "reward": ((), torch.float32),
                "terminated": ((), torch.bool)}

    def cascade_next(self, batch, action):
        """The action is the next image: it replaces the observation's last three channels."""
        return {**batch, "obs": torch.cat([as_float_image(batch["obs"][:, :-3]), action], 1)}

    def pack(self, obs, plan, reward, terminated, next_obs, info):
        return {"index": info["index"], "current": obs[:, -3:], "next_current": next_obs[:, -3:], "plan": plan,
                "reward": reward, "terminated": terminated}



def skip_condition(cfg: TrainConfig, condition: nn.Module) -> nn.Module | None:
    """The planner's ``condition`` (what the actor's skips may read) under ``skip_source="condition"``, the
    bottleneck design; ``None`` (skips of the whole state) otherwise or when the actor has no skips."""
    return condition if cfg.skip_source == "condition" and cfg.actor_skips else None
