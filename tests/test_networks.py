"""Shapes and initial behaviour of planner, actor and twin critic, in 2-D and 3-D."""
import math

import pytest
import torch
from torch import nn

from rl_i2it.actor import Actor
from rl_i2it.critic import TwinCritic, make_target
from rl_i2it.nn.functional import warp
from rl_i2it.planner import Planner


@pytest.mark.parametrize("shape", [(28, 28), (16, 16, 16)])
def test_shapes_through_planner_actor_critic(shape):
    planner = Planner(2, shape, widths=(8, 16, 16))
    actor = Actor(planner, out_channels=len(shape), max_step=0.5)
    critic = TwinCritic(planner, widths=(8, 16, 16))
    state = torch.randint(0, 256, (3, 2, *shape), dtype=torch.uint8)
    dist, skips, hidden = planner(state)
    grid = tuple(n // 4 for n in shape)
    assert planner.plan_grid == grid and planner.plan_dim == math.prod(grid)
    assert dist.batch_shape == (3,) and dist.event_shape == (planner.plan_dim,)
    assert [s.shape[1] for s in skips] == list(planner.skip_channels) and hidden is None
    action = actor(dist.rsample(), skips)
    assert action.shape == (3, len(shape), *shape)
    assert action.abs().max() <= 0.5
    q1, q2 = critic(state, dist.sample())
    assert q1.shape == (3,) and q2.shape == (3,)
    assert not torch.equal(q1, q2)  # two independent critics


def test_digits_sizes_match_the_authors_plan():
    planner = Planner(2, (28, 28), widths=(16, 32, 32))
    assert planner.plan_dim == 49  # 1 x 7 x 7, upstream DIM_Z


def test_flow_head_starts_at_identity():
    planner = Planner(2, (28, 28))
    actor = Actor(planner, out_channels=2, max_step=1.0)
    state = torch.rand(4, 2, 28, 28)
    dist, skips, _ = planner(state)
    flow = actor(dist.sample(), skips)
    assert flow.abs().max() < 1e-3
    moved = state[:, 1:]
    assert torch.allclose(warp(moved, flow), moved, atol=1e-3)


def test_image_head_is_bounded():
    planner = Planner(3, (32, 32), widths=(8, 16))
    dist, skips, _ = planner(torch.rand(2, 3, 32, 32))
    image = Actor(planner, out_channels=3, head="image")(dist.sample(), skips)
    assert image.shape == (2, 3, 32, 32) and image.min() >= 0 and image.max() <= 1


def test_no_batchnorm_anywhere():
    planner = Planner(2, (28, 28))
    modules = list(planner.modules()) + list(Actor(planner, 2).modules()) + list(TwinCritic(planner).modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)


def test_planner_passes_the_hidden_state_through():
    planner = Planner(3, (16, 16), widths=(8, 16))  # feed-forward: the Policy convention's hidden is passed through
    state = torch.rand(2, 3, 16, 16)
    assert planner(state)[2] is None
    marker = torch.zeros(2, 16, 8, 8)
    dist_a, _, hidden = planner(state, marker)
    assert hidden is marker and torch.equal(dist_a.mean, planner(state)[0].mean)


def test_target_critic_is_a_frozen_copy():
    planner = Planner(2, (28, 28))
    critic = TwinCritic(planner)
    target = make_target(critic)
    assert all(not p.requires_grad for p in target.parameters())
    assert all(torch.equal(a, b) for a, b in zip(critic.parameters(), target.parameters()))


def test_bad_image_shape_is_reported():
    with pytest.raises(ValueError, match="divisible"):
        Planner(2, (30, 30), widths=(8, 16, 16))


def test_actor_without_skips_decodes_the_plan_alone():
    planner = Planner(2, (28, 28), widths=(8, 16, 16))
    actor = Actor(planner, out_channels=2, use_skips=False)
    torch.nn.init.normal_(actor.out.weight, std=0.1)
    dist, skips, _ = planner(torch.rand(2, 2, 28, 28))
    plan = dist.mean
    assert actor(plan, skips).shape == (2, 2, 28, 28)
    other_skips = [torch.rand_like(s) for s in skips]
    assert torch.equal(actor(plan, skips), actor(plan, other_skips))  # the state reaches it only via the plan
    assert not torch.equal(actor(plan, skips), actor(plan + 1, skips))
