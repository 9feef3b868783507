"""Soft Actor-Critic over plans, as importable functions (no closures, every shape asserted).

=====================================================  ====================================================
function                                               returns
=====================================================  ====================================================
``target_entropy(plan_dim, per_dim)``                  float: ``per_dim * plan_dim`` (SAC's ``-|A|`` rule)
``td_target(reward, terminated, next_q1, next_q2,``   ``(B,)``: ``r + γ (1 - term) (min Q' - α log π')``,
``next_log_prob, alpha, gamma)``                       computed without gradient
``critic_loss(q1, q2, target)``                        scalar: MSE of both critics to the same target
``actor_loss(q1, q2, log_prob, alpha)``                scalar: ``mean(α log π - min(q1, q2))``
``alpha_loss(log_alpha, log_prob, target_entropy)``    scalar: moves α so the entropy meets its target
``kl_to_standard_normal(dist)``                        ``(B,)``: KL(π(.|s) ‖ N(0, I)), keeps plans bounded
``plan_regulariser(dist, mode)``                       ``(B,)``: that KL (``full``), its mean part ½|μ|²
                                                       (``mean``: σ left to the temperature) or 0 (``none``)
``soft_update(target, source, tau)``                   in place: ``θ' ← θ' + τ (θ - θ')``
=====================================================  ====================================================

Truncation is not termination: ``terminated`` is 1 only where the task itself ended the episode, so a
timeout still bootstraps from the value of its final state.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

__all__ = ["target_entropy", "td_target", "critic_loss", "actor_loss", "alpha_loss", "kl_to_standard_normal",
           "plan_regulariser", "soft_update"]


def _check_batch(**tensors: torch.Tensor) -> int:
    """Every tensor must be one-dimensional with the same length (the authors' (B,1) vs (B,) broadcast)."""
    sizes = {name: tuple(t.shape) for name, t in tensors.items()}
    batch = None
    for name, shape in sizes.items():
        if len(shape) != 1:
            raise ValueError(f"{name} must have shape (B,); got {shape} (all shapes: {sizes})")
        batch = shape[0] if batch is None else batch
        if shape[0] != batch:
            raise ValueError(f"batch sizes disagree: {sizes}")
    return batch


def target_entropy(plan_dim: int, per_dim: float = -1.0) -> float:
    """The entropy the temperature steers towards: ``per_dim`` nats per plan dimension."""
    return float(per_dim) * int(plan_dim)


@torch.no_grad()
def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q1: torch.Tensor, next_q2: torch.Tensor,
              next_log_prob: torch.Tensor, alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """The soft Bellman target ``r + γ (1 - terminated) (min(Q1', Q2') - α log π(p'|s'))``; all ``(B,)``."""
    _check_batch(reward=reward, terminated=terminated, next_q1=next_q1, next_q2=next_q2,
                 next_log_prob=next_log_prob)
    soft_value = torch.minimum(next_q1, next_q2) - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated.float()) * soft_value


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``MSE(q1, y) + MSE(q2, y)``; all ``(B,)``; the target carries no gradient."""
    _check_batch(q1=q1, q2=q2, target=target)
    target = target.detach()
    return (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()


def actor_loss(q1: torch.Tensor, q2: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``mean(α log π(p|s) - min(Q1, Q2)(s, p))`` with ``p`` reparameterised; all ``(B,)``."""
    _check_batch(q1=q1, q2=q2, log_prob=log_prob)
    return (alpha.detach() * log_prob - torch.minimum(q1, q2)).mean()


def alpha_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """``-mean(log α · (log π + H_target))``: α grows while entropy is below its target."""
    _check_batch(log_prob=log_prob)
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def kl_to_standard_normal(dist: Independent) -> torch.Tensor:
    """``KL(dist ‖ N(0, I))`` per batch element, ``(B,)``: a soft bound on the plan (as SPAC does)."""
    base = dist.base_dist
    prior = Independent(Normal(torch.zeros_like(base.loc), torch.ones_like(base.scale)), 1)
    return kl_divergence(dist, prior)


def plan_regulariser(dist: Independent, mode: str = "full") -> torch.Tensor:
    """The plan's bound, ``(B,)``. ``full``: ``KL(dist ‖ N(0, I))``, whose gradient in σ is σ - 1/σ: zero at σ = 1,
    so with σ <= 1 it holds σ at its bound and the temperature never has anything to regulate. ``mean``: ``½|μ|²``,
    the KL's mean part alone: it bounds the plan and leaves σ to the entropy term and α. ``none``: zero."""
    if mode == "full":
        return kl_to_standard_normal(dist)
    mean = dist.base_dist.loc
    if mode == "mean":
        return 0.5 * mean.pow(2).sum(-1)
    if mode == "none":
        return mean.new_zeros(mean.shape[0])
    raise ValueError(f"unknown plan regulariser {mode!r}; use 'full', 'mean' or 'none'")


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging in place over parameters and buffers: ``θ' ← θ' + τ (θ - θ')``."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
