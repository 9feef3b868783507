"""One policy convention and one rollout for every task, every baseline, evaluation and the figures.

====================================  ==============================================================
call                                  meaning
====================================  ==============================================================
``policy.act(obs, hidden)``           ``-> (action, hidden)``: the action for a batch of observations
                                      ``(B, C, *S)``; ``hidden`` is the recurrent state (``None`` at an
                                      episode's start and for feed-forward policies)
``policy.modules``                    the networks it runs (put in eval mode by ``eval_mode``)
``PlannerPolicy(planner, actor)``     the RL policy: plan mean (deterministic) or a sample, optionally
                                      transformed (``plan_transform``: zeroed, shuffled, ... plans)
``NetworkPolicy(net)``                a one-step network ``obs -> action`` (pix2pix, Johnson et al.)
``eval_mode(*modules)``               a context: eval mode inside, each module's own mode restored after
``rollout(env, policy, obs, steps,``  ``steps`` env steps from ``obs`` under ``torch.no_grad`` and eval
``record)``                           mode; ``record(env, obs)`` on the first state and after each step
                                      -> the list of ``steps + 1`` records
====================================  ==============================================================
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol

import torch
from torch import nn

from .planner import sample_plan

__all__ = ["Policy", "PlannerPolicy", "NetworkPolicy", "eval_mode", "rollout"]


class Policy(Protocol):
    """What every rollout runs: ``act(obs, hidden) -> (action, hidden)``, and the networks it uses."""

    modules: tuple[nn.Module, ...]

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]: ...


class PlannerPolicy:
    """The planner + actor as a ``Policy``.

    Parameters
    ----------
    planner, actor : the task's networks
    deterministic : act on the plan mean (the pinned evaluation protocols) or on a sample
    generator : draws the plan noise when not deterministic
    plan_transform : ``(B, P) -> (B, P)`` applied to the plan before the actor (controls: zero, shuffle, prior)
    """

    def __init__(self, planner: nn.Module, actor: nn.Module, deterministic: bool = True,
                 generator: torch.Generator | None = None,
                 plan_transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.planner, self.actor = planner, actor
        self.deterministic, self.generator, self.plan_transform = deterministic, generator, plan_transform
        self.modules = (planner, actor)

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        dist, skips, hidden = self.planner(obs, hidden)
        plan = dist.mean if self.deterministic else sample_plan(dist, self.generator)
        if self.plan_transform is not None:
            plan = self.plan_transform(plan)
        return self.actor(plan, skips), hidden


class NetworkPolicy:
    """A one-step network ``net(obs) -> action`` as a ``Policy`` (no recurrent state)."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.modules = (net,)

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        return self.net(obs), hidden


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode for ``modules`` inside the block; each one's own mode restored after (even on an error)."""
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)


@torch.no_grad()
def rollout(env, policy: Policy, obs: torch.Tensor, steps: int, record: Callable[[Any, torch.Tensor], Any]) -> list:
    """Run ``policy`` for ``steps`` steps of ``env`` from ``obs`` (the env already holds those episodes).

    ``record(env, obs)`` is called on the first state and after every step; returns the ``steps + 1`` records
    (step 0 first). The policy's networks are in eval mode throughout and restored after.
    """
    records, hidden = [record(env, obs)], None
    with eval_mode(*policy.modules):
        for _ in range(steps):
            action, hidden = policy.act(obs, hidden)
            obs, *_ = env.step(action)
            records.append(record(env, obs))
    return records
