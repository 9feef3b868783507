"""python -m rl_i2it stopping: brain registration runs on scaled deformations, with the stopping oracle."""
import json
import os
import subprocess
import sys

import pytest


def cli(*args):
    env = {**os.environ, "RL_I2IT_SMOKE": "1"}
    return subprocess.run([sys.executable, "-m", "rl_i2it", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "rl"
    for seed in (0, 1):
        result = cli("train", "--task", "brain2d", "--preset", "smoke", "--run-dir", folder / f"seed{seed}", "--seed",
                     seed, "--quiet", "--total-env-steps", "64", "--set", "eval_pairs=4")
        assert result.returncode == 0, result.stderr
    return folder


def test_stopping_study_writes_scales_steps_and_verdicts(seed_runs, tmp_path):
    out = tmp_path / "stopping.json"
    result = cli("stopping", "--runs", f"a={seed_runs}", f"b={seed_runs}", "--scales", 1, 2, "--steps", 2, 3,
                 "--out", out)
    assert result.returncode == 0, result.stderr
    study = json.loads(out.read_text())
    assert study["seeds"] == {"a": [0, 1], "b": [0, 1]}
    assert {(r["method"], r["scale"], r["steps"]) for r in study["summary"]} == {
        (m, s, t) for m in "ab" for s in (1.0, 2.0) for t in (2, 3)}
    for row in study["summary"]:
        assert row["oracle_mean"] >= row["best_fixed_step_score_mean"] - 1e-6 >= row["final_mean"] - 2e-6
    scaled = {r["scale"]: r["per_step"][0] for r in study["rows"] if r["method"] == "a" and r["seed"] == 0
              and r["steps"] == 2}
    assert scaled[2.0] < scaled[1.0], "twice the deformation: the pairs start further apart"
    same = [v for v in study["paired"] if v["a"] == "a" and v["b"] == "b"]
    assert len(same) == 8 and all(v["difference"] == 0 and not v["significant"] for v in same)
    assert "| a | 2 | 3 |" in result.stdout


def test_stopping_refuses_bad_runs(tmp_path):
    result = cli("stopping", "--runs", "no-equals-sign")
    assert result.returncode == 2 and "--runs takes LABEL=FOLDER" in result.stderr
    result = cli("stopping", "--runs", f"x={tmp_path}")
    assert result.returncode == 2 and "holds no seed*/checkpoint.pt" in result.stderr
