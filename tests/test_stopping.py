"""python -m rl_i2it stopping: registration runs off their training distribution (brain: scaled deformations;
digits: same-class and scikit-learn digits), with the stopping oracle."""
import json
import os
import subprocess
import sys

import pytest


def cli(*args):
    env = {**os.environ, "RL_I2IT_SMOKE": "1"}
    return subprocess.run([sys.executable, "-m", "rl_i2it", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900)


def train_seeds(folder, task, seeds=(0, 1)):
    for seed in seeds:
        result = cli("train", "--task", task, "--preset", "smoke", "--run-dir", folder / f"seed{seed}", "--seed",
                     seed, "--quiet", "--total-env-steps", "64", "--set", "eval_pairs=4")
        assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    return train_seeds(tmp_path_factory.mktemp("runs") / "rl", "brain2d")


def test_stopping_study_writes_scales_steps_and_verdicts(seed_runs, tmp_path):
    out = tmp_path / "stopping.json"
    result = cli("stopping", "--runs", f"a={seed_runs}", f"b={seed_runs}", "--conditions", "scale=1", "scale=2",
                 "--steps", 2, 3, "--out", out)
    assert result.returncode == 0, result.stderr
    study = json.loads(out.read_text())
    assert study["task"] == "brain2d" and study["seeds"] == {"a": [0, 1], "b": [0, 1]}
    assert {(r["method"], r["condition"], r["steps"]) for r in study["summary"]} == {
        (m, c, t) for m in "ab" for c in ("scale=1", "scale=2") for t in (2, 3)}
    for row in study["summary"]:
        assert row["oracle_mean"] >= row["best_fixed_step_score_mean"] - 1e-6 >= row["final_mean"] - 2e-6
    scaled = {r["condition"]: r["per_step"][0] for r in study["rows"] if r["method"] == "a" and r["seed"] == 0
              and r["steps"] == 2}
    assert scaled["scale=2"] < scaled["scale=1"], "twice the deformation: the pairs start further apart"
    same = [v for v in study["paired"] if v["a"] == "a" and v["b"] == "b"]
    assert len(same) == 8 and all(v["difference"] == 0 and not v["significant"] for v in same)
    assert "| a | scale=2 | 3 |" in result.stdout


def test_stopping_study_on_digits_conditions(tmp_path):
    """Digits: the default conditions; the scikit-learn digits are other images than MNIST's test pairs, and the
    same-class pairs start closer than independent draws."""
    from rl_i2it.stopping import stopping_study

    folder = train_seeds(tmp_path / "rl", "digits", seeds=(0,))
    study = stopping_study({"rl": folder}, steps=(2,))
    assert study["task"] == "digits" and study["conditions"] == ["test", "same_class", "sklearn"]
    start = {r["condition"]: r["per_step"][0] for r in study["rows"]}
    assert len(set(start.values())) == 3, start
    assert start["same_class"] > start["test"], "same-class pairs overlap more before any step"
    for row in study["rows"]:
        assert len(row["per_step"]) == 3 and row["oracle"] >= row["best_fixed_step_score"] - 1e-6


def test_stopping_refuses_bad_conditions(seed_runs, tmp_path):
    result = cli("stopping", "--runs", f"a={seed_runs}", "--conditions", "sklearn")
    assert result.returncode == 2 and "brain conditions are scale=S" in result.stderr
    result = cli("stopping", "--runs", f"a={seed_runs}", "--conditions", "scale=-1")
    assert result.returncode == 2 and "got 'scale=-1'" in result.stderr


def test_stopping_refuses_bad_runs(tmp_path):
    result = cli("stopping", "--runs", "no-equals-sign")
    assert result.returncode == 2 and "--runs takes LABEL=FOLDER" in result.stderr
    result = cli("stopping", "--runs", f"x={tmp_path}")
    assert result.returncode == 2 and "holds no seed*/checkpoint.pt" in result.stderr
