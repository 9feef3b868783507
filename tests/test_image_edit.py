"""The shared pieces of the whole-image tasks: offline photos and crops, the image reader, ImageEditEnv."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.data.photos import PHOTOS, as_rgb, load_image, natural_photos, photo_bank, random_crops
from rl_i2it.envs.image_edit import ImageEditEnv
from rl_i2it.errors import UserError


# ---------------------------------------------------------------------------------------------- photos
def test_every_listed_photo_ships_and_is_rgb():
    photos = natural_photos("all")
    assert [p.name for p in photos] == list(PHOTOS)
    for photo in photos:
        assert photo.image.dtype == torch.uint8 and photo.image.shape[0] == 3 and min(photo.image.shape[1:]) >= 300
        assert photo.image.float().std() > 10, f"{photo.name} looks blank"


def test_splits_are_disjoint_and_cover_all():
    train = {p.name for p in natural_photos("train")}
    test = {p.name for p in natural_photos("test")}
    assert train and test and not train & test and train | test == set(PHOTOS)
    with pytest.raises(UserError, match="split"):
        natural_photos("val")


def test_photo_bank_is_deterministic_per_seed():
    a, b, c = photo_bank("train", 6, 32, seed=1), photo_bank("train", 6, 32, seed=1), photo_bank("train", 6, 32, seed=2)
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_crops_cut_resize_and_flip():
    ramp = torch.arange(100, dtype=torch.uint8).repeat(3, 100, 1)  # (3, 100, 100), value = column index
    generator = torch.Generator().manual_seed(0)
    crops = random_crops([ramp], 64, 10, generator, flip=True, min_scale=1.0)  # the whole image every time
    increasing = crops[:, 0, 0, -1] > crops[:, 0, 0, 0]
    assert 10 < int(increasing.sum()) < 54, "about half the crops should be flipped"
    assert torch.equal(crops[increasing][0], crops[increasing][1]), "unflipped whole-image crops are identical"
    assert torch.equal(crops[~increasing][0], crops[increasing][0].flip(-1))
    expected = ramp[:, :1].float().reshape(3, 1, 10, 10).mean(-1)  # area resize: each 10-column block's mean
    assert torch.allclose(crops[increasing][0, :, 0].float(), expected[:, 0], atol=0.51)


def test_as_rgb_converts_grey_and_rgba():
    grey = np.full((4, 5), 7, np.uint8)
    assert torch.equal(as_rgb(grey), torch.full((3, 4, 5), 7, dtype=torch.uint8))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent -> white
    out = as_rgb(rgba)
    assert out[:, 0, 0].tolist() == [200, 0, 0] and out[:, 1, 1].tolist() == [255, 255, 255]
    with pytest.raises(UserError, match="uint8"):
        as_rgb(np.zeros((4, 4), np.float32))


def test_load_image_reads_modes_and_rejects_bad_files(tmp_path):
    Image.fromarray(np.full((20, 30), 9, np.uint8), "L").save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").shape == (3, 20, 30)
    Image.fromarray(np.zeros((20, 20, 4), np.uint8), "RGBA").save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").min() == 255
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(UserError, match="at least 16x16"):
        load_image(tmp_path / "tiny.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read"):
        load_image(tmp_path / "broken.jpg")
    with pytest.raises(UserError, match="does not exist"):
        load_image(tmp_path / "missing.png")


# ---------------------------------------------------------------------------------------------- the env
class Targets:
    """Episodes: a source image and a target; the score is minus the mean absolute error to the target."""

    def __init__(self, n: int = 10, size: int = 8):
        g = torch.Generator().manual_seed(0)
        self.sources = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.targets = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)

    def sample(self, n, generator):
        return self.episode(torch.randint(0, len(self.sources), (n,), generator=generator))

    def episode(self, index):
        return {"index": index, "source": self.sources[index], "target": self.targets[index]}


def mae_score(current, episode):
    return -(current.float() - episode["target"].float()).abs().mean((1, 2, 3)) / 255


def test_env_steps_rewards_and_observations():
    env = ImageEditEnv(Targets(), mae_score, num_envs=4, max_steps=3, auto_reset=False, reward_scale=2.0,
                       done_bonus=0.5, score_threshold=-1e-6)
    obs = env.reset(seed=1)
    assert obs.shape == (4, 6, 8, 8) and obs.dtype == torch.uint8
    assert torch.equal(obs[:, :3], env.episode["source"]) and torch.equal(env.current, env.episode["source"])
    before = env._state["score"].clone()
    target = env.episode["target"].float() / 255
    obs, reward, terminated, truncated, info = env.step(target)  # the perfect image: score 0, terminates
    assert torch.equal(env.current, env.episode["target"]) and torch.equal(obs[:, 3:], env.current)
    assert torch.allclose(info["score"], torch.zeros(4), atol=1e-6) and terminated.all() and not truncated.any()
    assert torch.allclose(reward, 2.0 * (info["score"] - before) + 0.5)


def test_env_truncates_and_auto_resets():
    env = ImageEditEnv(Targets(), mae_score, num_envs=5, max_steps=2, auto_reset=True)
    env.reset(seed=0)
    grey = torch.full((5, 3, 8, 8), 0.5)
    drawn = env.generator.get_state()
    _, _, terminated, truncated, info = env.step(grey)
    assert not (terminated | truncated).any() and (info["steps"] == 1).all()
    assert torch.equal(env.generator.get_state(), drawn), "no episode could end: no fresh episodes drawn"
    first_index = env.episode["index"].clone()
    _, _, terminated, truncated, info = env.step(grey)
    assert truncated.all() and not terminated.any() and (info["steps"] == 2).all()
    assert (env._state["steps"] == 0).all(), "finished episodes restart"
    assert not torch.equal(env.generator.get_state(), drawn)
    assert torch.equal(env.current, env.episode["source"])
    assert torch.equal(info["index"], first_index), "info names the episodes the step was taken in"
    assert not torch.equal(env.episode["index"], first_index)
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(5, 3, 4, 4))


def test_env_checkpoint_keeps_indices_and_resumes_exactly():
    make = lambda: ImageEditEnv(Targets(), mae_score, num_envs=3, max_steps=2, initial="source", seed=3)  # noqa: E731
    env = make()
    env.reset()
    env.step(torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    state = env.state_dict()
    assert "source" not in state["episodes"] and "target" not in state["episodes"], "episodes by reference"
    twin = make()
    twin.load_state_dict(state)
    # a checkpoint written before the refactor: no host-side step count, a last_index entry
    old = {**state, "last_index": state["episodes"]["index"].clone()}
    del old["steps_since_start"]
    old_twin = make()
    old_twin.load_state_dict(old)
    action = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    outputs = [e.step(action) for e in (env, twin, old_twin)]  # the episodes end here: fresh ones are drawn
    for other in outputs[1:]:
        for a, b in zip(outputs[0][:4], other[:4]):
            assert torch.equal(a, b)
        assert torch.equal(outputs[0][4]["index"], other[4]["index"])
    assert outputs[0][3].all()
    for other in (twin, old_twin):
        assert torch.equal(env.episode["target"], other.episode["target"])
        assert torch.equal(env.generator.get_state(), other.generator.get_state())


def test_env_initial_callable_and_bad_arguments():
    env = ImageEditEnv(Targets(), mae_score, num_envs=2, max_steps=1, obs_keys=(),
                       initial=lambda ep: torch.full_like(ep["source"], 128))
    obs = env.reset()
    assert obs.shape == (2, 3, 8, 8) and (obs == 128).all()
    assert math.isinf(env.score_threshold)
    with pytest.raises(UserError, match="reward mode"):
        ImageEditEnv(Targets(), mae_score, 2, 1, reward_mode="sparse")
    with pytest.raises(UserError, match="num_envs"):
        ImageEditEnv(Targets(), mae_score, 0, 1)


def test_env_with_a_threshold_replaces_rows_as_they_finish():
    """With a score threshold rows end at different steps: each is replaced when it ends (terminated or timed
    out), the others keep going."""
    env = ImageEditEnv(Targets(), mae_score, num_envs=3, max_steps=2, auto_reset=True, score_threshold=-1e-6)
    env.reset(seed=0)
    action = torch.full((3, 3, 8, 8), 0.5)
    action[0] = env.episode["target"][0].float() / 255  # row 0 reaches the target: terminates at step 1
    first = env.episode["index"].clone()
    _, _, terminated, truncated, info = env.step(action)
    assert terminated.tolist() == [True, False, False] and not truncated.any()
    assert env._state["steps"].tolist() == [0, 1, 1] and torch.equal(env.episode["index"][1:], first[1:])
    _, _, terminated, truncated, info = env.step(torch.full((3, 3, 8, 8), 0.5))
    assert truncated.tolist() == [False, True, True] and env._state["steps"].tolist() == [1, 0, 0]


def test_evaluation_episodes_default_to_index_minus_one():
    env = ImageEditEnv(Targets(), mae_score, num_envs=2, max_steps=2, auto_reset=False)
    sampler = Targets()
    obs = env.start_episodes({"source": sampler.sources[:2], "target": sampler.targets[:2]})
    assert torch.equal(obs[:, :3], sampler.sources[:2]) and env.episode["index"].tolist() == [-1, -1]
    *_, info = env.step(torch.full((2, 3, 8, 8), 0.5))
    assert info["index"].tolist() == [-1, -1]
    assert "source" in env.state_dict()["episodes"], "episodes not from the sampler are kept whole"
