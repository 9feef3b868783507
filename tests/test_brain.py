"""Brain MRI registration: shipped data, synthetic diffeomorphisms, the labelled env, the task, baselines."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rl_i2it import make_config, make_task
from rl_i2it.baselines import optimise_fields
from rl_i2it.data import brain
from rl_i2it.data.deformations import random_intensity, random_velocity, synthetic_pairs
from rl_i2it.envs.labelled_registration import LabelledRegistrationEnv
from rl_i2it.errors import UserError
from rl_i2it.nn.functional import (compose_flow, folding_fraction, integrate_velocity, label_dice, ncc, one_hot_labels,
                                   soft_dice, warp, warp_labels)
from rl_i2it.tasks.brain_registration import (BrainPairs, check_pairs, evaluation_pairs, registration_report,
                                              source_images)


@pytest.fixture(scope="module")
def mni():
    return brain.load_mni152()


@pytest.fixture(scope="module")
def slices(mni):
    images, labels, z = brain.axial_slices(mni, 32, (60, 100))
    return images, labels


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- data
def test_mni152_ships_with_nilearn_and_has_both_tissues(mni):
    assert mni.image.shape == mni.labels.shape == (197, 233, 189)
    assert mni.image.dtype == np.uint8 and mni.image.max() == 255
    fractions = [(mni.labels == k).mean() for k in (1, 2)]
    assert all(0.05 < f < 0.3 for f in fractions), fractions  # GM and WM each fill part of the head box
    # white matter is brighter than grey matter on T1
    assert mni.image[mni.labels == 2].mean() > mni.image[mni.labels == 1].mean() + 20


def test_axial_slices_and_cube_shapes(mni, slices):
    images, labels = slices
    assert images.shape == labels.shape == (40, 1, 32, 32) and images.dtype == torch.uint8
    assert set(torch.unique(labels).tolist()) == {0, 1, 2}
    image, label = brain.crop_cube(mni, 16)
    assert image.shape == label.shape == (1, 1, 16, 16, 16)


def test_dipy_circle_to_c_pair():
    circle, c = brain.load_circle_to_c()
    assert circle.shape == c.shape == (256, 256)
    assert 0 < (circle > 0.5).mean() < 1 and (circle != c).any()


@pytest.mark.skipif(not (brain.COLIN27_DIR / "ch2bet.nii.gz").is_file(), reason="Debian mricron-data not installed")
def test_colin27_sits_in_the_mni_grid(mni):
    colin = brain.load_colin27()
    assert colin.image.shape == mni.image.shape
    # the two brains overlap well after the affine-only placement, but they are different brains
    overlap = ((colin.labels > 0) & (mni.labels > 0)).sum() / (mni.labels > 0).sum()
    assert 0.7 < overlap < 1.0


def test_bad_volumes_get_clear_errors(tmp_path):
    with pytest.raises(UserError, match="3-D volume"):
        brain.check_volume(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(UserError, match="share one grid"):
        brain.check_volume(np.zeros((4, 4, 4)), np.ones((4, 4, 5)))
    with pytest.raises(UserError, match="empty"):
        brain.check_volume(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)))
    with pytest.raises(UserError, match="apt-get install mricron-data"):
        brain.load_colin27(tmp_path)
    with pytest.raises(UserError, match="unknown brain subject"):
        brain.load_subject("fred")


# ---------------------------------------------------------------------------------------------- fields
@pytest.mark.parametrize("shape", [(64, 64), (24, 24, 24)])
def test_velocity_integration_is_diffeomorphic_and_inverted_by_minus_v(shape):
    config = make_config("brain2d", "course")
    pixels = config.deformation_strength * shape[0] / 64  # as the task scales it (deformation_pixels)
    v = random_velocity(8, shape, pixels, config.deformation_grid, generator())
    phi, inverse = integrate_velocity(v), integrate_velocity(-v)
    assert folding_fraction(phi).max().item() == 0.0  # no folding at the chosen strength
    assert phi.abs().max() > pixels  # and the deformation is not trivially small
    round_trip = compose_flow(phi, inverse)  # warp by phi then by its inverse: identity
    assert round_trip.abs().mean() < 0.05 * phi.abs().mean()


def test_synthetic_pairs_true_field_registers_moving_onto_fixed(slices):
    images, labels = slices
    pairs = synthetic_pairs(images, labels, 2, 16, 1.5 * 32 / 64, 5, generator(), intensity=False, with_truth=True)
    before = label_dice(pairs["moving_labels"], pairs["fixed_labels"], 2).mean()
    after = label_dice(warp_labels(pairs["moving_labels"], pairs["true_flow"], 2), pairs["fixed_labels"], 2).mean()
    assert before < 0.8 and after > 0.85  # labels were resampled twice, so never exactly 1
    moving, fixed = pairs["moving"].float() / 255, pairs["fixed"].float() / 255
    assert ncc(fixed, warp(moving, pairs["true_flow"])).mean() > ncc(fixed, moving).mean() + 0.1
    assert folding_fraction(pairs["true_flow"]).max().item() < 1e-3


def test_synthetic_pairs_are_deterministic_per_seed(slices):
    images, labels = slices
    a = synthetic_pairs(images, labels, 2, 4, 1.5, 5, generator(3))
    b = synthetic_pairs(images, labels, 2, 4, 1.5, 5, generator(3))
    c = synthetic_pairs(images, labels, 2, 4, 1.5, 5, generator(4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["moving"], c["moving"])


def test_intensity_changes_keep_background_and_range():
    image = torch.zeros(2, 1, 16, 16)
    image[:, :, 4:12, 4:12] = 0.5
    changed = random_intensity(image, generator())
    assert (changed[image == 0] == 0).all() and 0 <= changed.min() and changed.max() <= 1
    assert not torch.allclose(changed[image > 0], image[image > 0])


def test_label_helpers():
    labels = torch.tensor([[[[0, 1], [2, 2]]]], dtype=torch.uint8)
    hot = one_hot_labels(labels, 2)
    assert hot.shape == (1, 3, 2, 2) and hot.sum(1).eq(1).all()
    assert torch.equal(warp_labels(labels, torch.zeros(1, 2, 2, 2), 2), labels)
    assert torch.allclose(label_dice(labels, labels, 2), torch.ones(1, 2))
    assert torch.allclose(soft_dice(hot, hot), torch.ones(1, 2), atol=1e-4)
    other = torch.tensor([[[[0, 2], [1, 1]]]], dtype=torch.uint8)
    assert torch.allclose(label_dice(labels, other, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(B, 1, \*S\)"):
        one_hot_labels(labels[0], 2)


# ---------------------------------------------------------------------------------------------- env and task
class _FixedPairs:
    def __init__(self, pairs):
        self.pairs, self.image_shape = pairs, tuple(pairs["moving"].shape[2:])

    def sample(self, n, generator):
        return {k: v[:n] for k, v in self.pairs.items() if k != "true_flow" and k != "source"}


def test_labelled_env_scores_label_dice_and_rewards_improvement(slices):
    images, labels = slices
    pairs = synthetic_pairs(images, labels, 2, 4, 1.5, 5, generator(), with_truth=True)
    env = LabelledRegistrationEnv(_FixedPairs(pairs), 4, 3, num_labels=2, auto_reset=False)
    env.reset()
    initial = label_dice(pairs["moving_labels"], pairs["fixed_labels"], 2).mean(1)
    _, reward, terminated, truncated, info = env.step(pairs["true_flow"])
    assert torch.allclose(info["initial_score"], initial)
    assert (info["score"] > initial).all()
    assert torch.allclose(reward, 10.0 * (info["score"] - initial) + 1.0 * terminated.float())
    assert torch.allclose(env.flow, pairs["true_flow"], atol=1e-4)  # composed onto a zero field


def test_brain2d_task_trains_and_evaluates(tmp_path):
    from rl_i2it.train import Trainer

    cfg = make_config("brain2d", "smoke", image_size=32, bank_size=64, total_env_steps=256, num_envs=8,
                      bootstrap_env_steps=64, batch_size=8, buffer_capacity=256, eval_pairs=8, eval_steps=3,
                      log_every_env_steps=128, checkpoint_every_env_steps=256)
    trainer = Trainer(cfg, run_dir=tmp_path / "run", device="cpu")
    trainer.train()
    assert trainer.updates > 0
    results = trainer.evaluate()
    assert results.score_name == "dice" and results.higher_is_better
    assert len(results.score_per_step) == 4 and len(results.tables["field_error"]["per_step"]) == 4
    assert results.score_per_step == results.tables["dice"]["per_step"] == results["dice_per_step"]
    assert results.score_per_step[0] == pytest.approx(results["dice_identity"])
    assert results.metrics == {"dice": True, "ncc": True, "folding_fraction": False, "field_error": False}
    assert set(results["dice_per_label"]) == {"grey matter", "white matter"}
    assert results["_rollout"]["moved"].shape == (4, 8, 1, 32, 32)
    assert 0 <= results["folding_fraction"] <= 1
    assert "_rollout" not in json.dumps(results.to_json())


class _ZeroFlow:
    """A policy that never moves anything (any ``Policy`` can be evaluated)."""

    modules = ()

    def act(self, obs, hidden=None):
        return torch.zeros(obs.shape[0], obs.dim() - 2, *obs.shape[2:]), hidden


def test_brain_protocol_scores_any_policy():
    task = make_task(make_config("brain2d", "smoke", image_size=32, bank_size=8, eval_pairs=4, eval_steps=2), "cpu")
    results = task.evaluate(_ZeroFlow())
    assert results.score_per_step == [results.score_identity] * 3  # the identity at every step
    assert results.tables["field_error"]["final"] == pytest.approx(results.tables["field_error"]["identity"])
    assert results.tables["ncc"]["final"] == pytest.approx(results.tables["ncc"]["identity"])
    assert results.tables["folding_fraction"]["final"] == 0 and results["folding_fraction"] == 0
    assert results.protocol["steps"] == 2 and results["n_pairs"] == 4
    with pytest.raises(UserError, match="evaluation steps must be >= 1"):
        task.evaluate(_ZeroFlow(), steps=0)
    # fields from elsewhere (iterative optimisation, here the true field) are scored by the same code
    pairs = evaluation_pairs(task.cfg, 4)
    fields = [torch.zeros_like(pairs["true_flow"]), pairs["true_flow"]]
    scored = task.score_fields(pairs, fields, {"fields": "identity, true"})
    report = registration_report(pairs, fields, task.label_names, task.cfg.ncc_window)
    assert scored.score_identity == pytest.approx(results.score_identity)
    assert scored.score_final == pytest.approx(report["dice_final"]) and scored.score_final > scored.score_identity
    assert scored.tables["field_error"]["final"] == report["field_error_final"] < 1e-3  # at the true field, ~0


def test_brain3d_builds_steps_and_updates(tmp_path):
    from rl_i2it.train import Trainer

    cfg = make_config("brain3d", "smoke", image_size=16, bank_size=8, total_env_steps=32, num_envs=2,
                      bootstrap_env_steps=8, batch_size=2, buffer_capacity=32, eval_pairs=2, eval_steps=2)
    trainer = Trainer(cfg, run_dir=tmp_path / "run3d", device="cpu")
    assert trainer.task.env.reset().shape == (2, 2, 16, 16, 16)
    trainer.train()
    assert trainer.updates > 0
    assert trainer.evaluate()["n_pairs"] == 2


def test_evaluation_pairs_are_held_out_and_pinned():
    cfg = make_config("brain2d", "smoke", image_size=32)
    train_images, _ = source_images(cfg, "train")
    test_images, _ = source_images(cfg, "test")
    low, high = cfg.z_range
    assert len(test_images) == len([z for z in range(low, high) if z % cfg.held_out_every == 0])
    assert len(train_images) + len(test_images) == high - low
    a, b = evaluation_pairs(cfg, 4), evaluation_pairs(cfg, 4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert set(BrainPairs(make_config("brain2d", "smoke", image_size=32, bank_size=4), "cpu").bank) >= {
        "moving", "fixed", "moving_labels", "fixed_labels"}


def test_bad_pairs_and_sizes_get_clear_errors():
    cfg = make_config("brain2d", "smoke", image_size=32)
    pairs = evaluation_pairs(cfg, 2)
    with pytest.raises(UserError, match="resample"):
        check_pairs(pairs, (64, 64))
    broken = dict(pairs, fixed=pairs["fixed"][:, :, :16])
    with pytest.raises(UserError, match="share one shape"):
        check_pairs(broken, (32, 32))
    with pytest.raises(UserError, match="empty"):
        check_pairs(dict(pairs, fixed_labels=torch.zeros_like(pairs["fixed_labels"])), (32, 32))
    with pytest.raises(UserError, match="lack"):
        check_pairs({"moving": pairs["moving"]}, (32, 32))


@pytest.mark.parametrize("overrides, fragment", [
    (dict(image_size=36), "image size 36 must be divisible by 8"),
    (dict(z_range=(50,)), "z_range must be two slice indices"),
    (dict(held_out_every=1), "held_out_every must be >= 2"),
    (dict(subject="fred"), "unknown brain subject 'fred'"),
    (dict(eval_steps=0), "eval_steps must be >= 1"),
    (dict(max_step=0.0), "max_step"),
])
def test_bad_brain_configs_fail_before_any_data_loads(overrides, fragment, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data loaded before the config was checked")

    monkeypatch.setattr("rl_i2it.tasks.brain_registration.load_subject", no_data)
    with pytest.raises(UserError, match=fragment):
        make_config("brain2d", "smoke", **overrides)
    with pytest.raises(UserError, match="cube size 4 is too small"):
        make_config("brain3d", "smoke", image_size=4, planner_widths=(4, 8, 8))


def test_iterative_reference_beats_identity():
    cfg = make_config("brain2d", "smoke", image_size=32)
    pairs = evaluation_pairs(cfg, 8)
    field = optimise_fields(pairs["moving"], pairs["fixed"], iterations=60, lr=0.1, smooth_weight=3.0)
    report = registration_report(pairs, [torch.zeros_like(field), field], brain.load_mni152().label_names)
    assert report["dice_final"] > report["dice_identity"] + 0.05
    assert report["field_error_final"] < report["field_error_identity"]
    assert report["folding_fraction"] < 0.01


# ---------------------------------------------------------------------------------------------- data_scripts
def _load_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data_scripts" / "prepare_brain_volumes.py"
    spec = importlib.util.spec_from_file_location("prepare_brain_volumes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_nifti(path, array):
    import nibabel

    nibabel.save(nibabel.Nifti1Image(array, np.eye(4)), str(path))


def test_prepare_script_on_generated_volumes(tmp_path, monkeypatch):
    script = _load_script()
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path / "cache"))
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    rng = np.random.default_rng(0)
    for sid in ("S01", "S02"):
        volume = np.zeros((20, 22, 24), np.float32)
        volume[4:16, 4:18, 4:20] = rng.uniform(50, 200, (12, 14, 16))
        label = np.zeros((20, 22, 24), np.int16)
        label[4:10, 4:18, 4:20], label[10:16, 4:18, 4:20] = 21, 43  # LPBA-style sparse label values
        _write_nifti(images / f"{sid}.nii.gz", volume)
        _write_nifti(labels / f"{sid}_label.nii.gz", label)
    names = tmp_path / "names.txt"
    names.write_text("left thing\nright thing\n")
    manifest = script.prepare(images, labels, "toy", names)
    record = __import__("json").loads(manifest.read_text())
    assert sorted(record["subjects"]) == ["S01", "S02"] and record["label_values"] == {"21": 1, "43": 2}
    subject = brain.load_prepared("toy/S01")
    assert subject.label_names == ("left thing", "right thing")
    assert subject.image.dtype == np.uint8 and set(np.unique(subject.labels)) == {0, 1, 2}
    assert script.prepare(images, labels, "toy", names) == manifest  # re-run: kept, still valid
    # a corrupted output is caught by its checksum
    brain.load_prepared.cache_clear()
    (manifest.parent / "S02.npz").write_bytes(b"garbage")
    with pytest.raises(Exception, match="sha256|corrupt|checksum"):
        brain.load_prepared("toy/S02")


def test_prepare_script_bad_input(tmp_path):
    script = _load_script()
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    (images / "notes.txt").write_text("hello")
    assert script.main(["--images", str(images), "--labels", str(labels), "--name", "x",
                        "--dest", str(tmp_path / "out")]) == 2
    (images / "notes.txt").unlink()
    (images / "S01.nii.gz").write_bytes(b"not a nifti")
    (labels / "S01.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(UserError, match="cannot read"):
        script.prepare(images, labels, "x", dest=tmp_path / "out")
    _write_nifti(images / "S01.nii.gz", np.ones((4, 4), np.float32))
    _write_nifti(labels / "S01.nii.gz", np.ones((4, 4), np.int16))
    with pytest.raises(UserError, match="3-D volume"):
        script.prepare(images, labels, "x", dest=tmp_path / "out")
    with pytest.raises(UserError, match="no subject"):
        script.prepare(images, tmp_path, "x", dest=tmp_path / "out")


# ---------------------------------------------------------------------------------------------- command line
def test_cli_trains_evaluates_and_benchmarks_brain2d(tmp_path):
    import json
    import os
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rl_i2it", *map(str, args)], capture_output=True, text=True,
                              env={**os.environ, "RL_I2IT_SMOKE": "1"}, timeout=600)

    tiny = ["--set", "image_size=32", "--set", "bank_size=32", "--set", "bootstrap_env_steps=32",
            "--set", "planner_widths=[4,8,8]", "--set", "critic_widths=[4,8,8]"]
    run_dir = tmp_path / "brain"
    result = cli("train", "--task", "brain2d", "--preset", "smoke", "--run-dir", run_dir, "--quiet",
                 "--total-env-steps", "64", "--num-envs", "8", "--batch-size", "8", "--set", "eval_pairs=4",
                 "--set", "eval_steps=2", *tiny)
    assert result.returncode == 0, result.stderr
    assert "eval: dice" in result.stdout
    evaluation = json.loads(cli("eval", "--run-dir", run_dir, "--json", "--steps", "3").stdout)
    assert len(evaluation["dice_per_step"]) == 4 and len(evaluation["tables"]["field_error"]["per_step"]) == 4
    bench = cli("bench", "--task", "brain2d", "--preset", "smoke", "--batch", "4", "--batch-size", "4",
                "--seconds", "0.2", "--json", *tiny)
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert report["task"] == "brain2d" and report["replay_bytes_per_transition"] == 3 * 32 * 32 + 4 * 8 * 8 + 4 + 1  # uint8 images, 8x8 plan
    bad = cli("train", "--task", "brain2d", "--preset", "smoke", "--set", "image_size", "--run-dir", tmp_path / "x")
    assert bad.returncode == 2 and "FIELD=VALUE" in bad.stderr and "Traceback" not in bad.stderr
