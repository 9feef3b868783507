"""The registration env's contract and the replay buffer."""
import pytest
import torch

from rl_i2it.buffer import ReplayBuffer
from rl_i2it.envs.registration import RegistrationEnv


class SquarePairs:
    """Moving: a square at a random offset; fixed: the same square at the centre (uint8 (n, 1, 16, 16))."""

    image_shape = (16, 16)

    def sample(self, n, generator):
        offsets = torch.randint(-3, 4, (n, 2), generator=generator)
        moving = torch.zeros(n, 1, 16, 16, dtype=torch.uint8)
        fixed = torch.zeros_like(moving)
        fixed[:, :, 5:11, 5:11] = 255
        for k, (dy, dx) in enumerate(offsets.tolist()):
            moving[k, :, 5 + dy:11 + dy, 5 + dx:11 + dx] = 255
        return moving, fixed


def make_env(**kwargs):
    defaults = dict(num_envs=4, max_steps=3, seed=0)
    return RegistrationEnv(SquarePairs(), **{**defaults, **kwargs})


def test_reset_and_step_shapes_and_dtypes():
    env = make_env()
    obs = env.reset()
    assert obs.shape == (4, 2, 16, 16) and obs.dtype == torch.uint8
    obs, reward, terminated, truncated, info = env.step(torch.zeros(4, 2, 16, 16))
    assert obs.dtype == torch.uint8
    for t in (reward, terminated, truncated, info["score"], info["done"]):
        assert t.shape == (4,)
    assert info["final_obs"].shape == obs.shape


def test_zero_flow_gives_zero_improvement_reward():
    env = make_env()
    env.reset()
    _, reward, *_ = env.step(torch.zeros(4, 2, 16, 16))
    assert torch.allclose(reward, torch.zeros(4))


def test_timeout_is_truncation_and_auto_reset_keeps_final_obs():
    env = make_env(max_steps=2, dice_threshold=2.0)  # never terminates
    env.reset()
    flow = torch.full((4, 2, 16, 16), 0.5)
    env.step(flow)
    obs, _, terminated, truncated, info = env.step(flow)
    assert not terminated.any() and truncated.all()
    # the final observation is the warped pair, the returned one a fresh episode at identity
    assert not torch.equal(info["final_obs"], obs)
    assert torch.all(env.state["steps"] == 0) and torch.all(env.flow == 0)
    assert torch.equal(obs[:, 1:], env.state["moving"])


def test_termination_on_dice_threshold_gets_the_bonus():
    env = make_env(dice_threshold=0.0, done_bonus=5.0)  # any pair is "done" after one step
    env.reset()
    _, reward, terminated, truncated, _ = env.step(torch.zeros(4, 2, 16, 16))
    assert terminated.all() and not truncated.any()
    assert torch.allclose(reward, torch.full((4,), 5.0))


def test_absolute_reward_mode_is_the_authors_with_the_done_bonus():
    env = make_env(reward_mode="absolute", reward_scale=10.0)
    env.reset()
    _, reward, terminated, _, info = env.step(torch.zeros(4, 2, 16, 16))
    assert torch.allclose(reward, 10 * info["score"] + 1.0 * terminated.float())
    finisher = make_env(reward_mode="absolute", reward_scale=10.0, dice_threshold=0.0, done_bonus=5.0)
    finisher.reset()
    _, reward, terminated, _, info = finisher.step(torch.zeros(4, 2, 16, 16))
    assert terminated.all() and torch.allclose(reward, 10 * info["score"] + 5.0)  # the bonus in both modes now


def test_the_right_flow_registers_the_square():
    env = make_env(num_envs=1, dice_threshold=0.99, auto_reset=False)
    moving, fixed = SquarePairs().sample(1, torch.Generator().manual_seed(3))
    obs = env.start_episodes({"moving": moving, "fixed": fixed})
    dy, dx = [int(v) for v in (torch.nonzero(moving[0, 0]).float().mean(0) - torch.nonzero(fixed[0, 0]).float().mean(0))]
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = dy, dx
    _, _, terminated, _, info = env.step(flow)
    assert info["score"].item() == pytest.approx(1.0) and terminated.item()


def test_env_state_round_trip_continues_identically():
    env = make_env()
    env.reset()
    state = env.state_dict()
    flows = [torch.randn(4, 2, 16, 16) for _ in range(5)]
    first = [env.step(f)[0] for f in flows]
    env.load_state_dict(state)
    second = [env.step(f)[0] for f in flows]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_bad_action_shape_and_bad_pairs_are_refused():
    env = make_env()
    env.reset()
    with pytest.raises(ValueError, match="action must be a flow"):
        env.step(torch.zeros(4, 2, 8, 8))
    moving, fixed = SquarePairs().sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="pairs must be uint8"):
        env.reset_to(moving.float(), fixed)
    with pytest.raises(ValueError, match="pairs must be uint8"):
        env.start_episodes({"moving": moving[:, :, :8], "fixed": fixed[:, :, :8]})


def test_buffer_ring_and_sampling():
    spec = {"image": ((1, 4, 4), torch.uint8), "plan": ((3,), torch.float32), "reward": ((), torch.float32)}
    buffer = ReplayBuffer(5, spec)
    assert buffer.bytes_per_transition == 16 + 12 + 4
    for k in range(3):  # 6 rows into capacity 5: the oldest is overwritten
        buffer.add({"image": torch.full((2, 1, 4, 4), k, dtype=torch.uint8), "plan": torch.full((2, 3), float(k)),
                    "reward": torch.full((2,), float(k))})
    assert len(buffer) == 5
    assert sorted(buffer.storage["reward"].tolist()) == [0.0, 1.0, 1.0, 2.0, 2.0]
    batch = buffer.sample(7, torch.Generator().manual_seed(0))
    assert batch["image"].shape == (7, 1, 4, 4) and batch["image"].dtype == torch.uint8
    restored = ReplayBuffer(5, spec)
    restored.load_state_dict(buffer.state_dict())
    assert all(torch.equal(restored.storage[k], buffer.storage[k]) for k in spec)
    with pytest.raises(KeyError):
        buffer.add({"image": torch.zeros(1, 1, 4, 4, dtype=torch.uint8)})
