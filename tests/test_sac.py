"""SAC over plans: log-probs, targets, losses, soft update, and the gradient path the authors cut."""
import math

import pytest
import torch

from rl_i2it import sac
from rl_i2it.actor import Actor
from rl_i2it.critic import TwinCritic, make_target
from rl_i2it.planner import Planner


def test_log_prob_matches_the_closed_form():
    planner = Planner(2, (28, 28))
    dist, _, _ = planner(torch.rand(5, 2, 28, 28))
    plan = dist.rsample()
    mu, std = dist.base_dist.loc, dist.base_dist.scale
    closed = (-0.5 * ((plan - mu) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(1)
    assert torch.allclose(dist.log_prob(plan), closed, atol=1e-4)
    entropy = (0.5 * math.log(2 * math.pi * math.e) + std.log()).sum(1)
    assert torch.allclose(dist.entropy(), entropy, atol=1e-4)


def test_target_entropy_scales_with_plan_size():
    assert sac.target_entropy(49) == -49.0
    assert sac.target_entropy(512, per_dim=-0.5) == -256.0


def test_td_target_bootstraps_truncation_but_not_termination():
    reward = torch.tensor([1.0, 1.0])
    terminated = torch.tensor([True, False])
    q = torch.tensor([10.0, 10.0])
    y = sac.td_target(reward, terminated, q, q + 1, torch.zeros(2), torch.tensor(0.5), gamma=0.9)
    assert torch.allclose(y, torch.tensor([1.0, 1.0 + 0.9 * 10.0]))


def test_td_target_uses_the_smaller_critic_and_entropy():
    y = sac.td_target(torch.zeros(1), torch.zeros(1, dtype=torch.bool), torch.tensor([3.0]), torch.tensor([2.0]),
                      torch.tensor([-4.0]), torch.tensor(0.5), gamma=1.0)
    assert y.item() == pytest.approx(2.0 + 0.5 * 4.0)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        sac.critic_loss(torch.zeros(4, 1), torch.zeros(4), torch.zeros(4))  # the authors' silent broadcast
    with pytest.raises(ValueError, match="disagree"):
        sac.actor_loss(torch.zeros(4), torch.zeros(4), torch.zeros(3), torch.tensor(1.0))


def test_alpha_loss_raises_alpha_when_entropy_is_low():
    log_alpha = torch.zeros((), requires_grad=True)
    log_prob = torch.full((8,), 10.0)  # entropy ~ -10, far below a target of +5 ... pushes alpha up
    sac.alpha_loss(log_alpha, log_prob, target_entropy=5.0).backward()
    assert log_alpha.grad < 0  # gradient descent increases log alpha


def test_soft_update_is_polyak_averaging():
    source, target = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    expected = [t + 0.1 * (s - t) for t, s in zip(target.parameters(), source.parameters())]
    sac.soft_update(target, source, 0.1)
    assert all(torch.allclose(e, t) for e, t in zip(expected, target.parameters()))


def test_kl_to_standard_normal_is_zero_only_at_the_prior():
    planner = Planner(2, (28, 28))
    dist, _, _ = planner(torch.rand(3, 2, 28, 28))
    assert torch.all(sac.kl_to_standard_normal(dist) > 0)


@pytest.mark.parametrize("detach", [False, True])
def test_planner_gets_gradient_from_q_unless_detached(detach):
    """The authors sample plans with sample() in the actor loss: -Q then never reaches the planner."""
    planner = Planner(2, (28, 28), widths=(8, 16, 16))
    critic = TwinCritic(planner, widths=(8, 16, 16))
    state = torch.rand(6, 2, 28, 28)
    dist, _, _ = planner(state)
    plan = dist.rsample()
    q1, q2 = critic(state, plan.detach() if detach else plan)
    # alpha = 0 isolates the -Q term (the entropy term reaches the planner either way)
    sac.actor_loss(q1, q2, dist.log_prob(plan), torch.tensor(0.0)).backward()
    grads = [p.grad for p in planner.parameters()]
    total = sum(g.abs().sum() for g in grads if g is not None)
    if detach:
        assert total == 0
    else:
        assert total > 0
        assert planner.head.weight.grad.abs().sum() > 0  # the plan head itself learns from the critic
