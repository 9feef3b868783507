"""The command line as a user meets it: a smoke training run, evaluation, and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

TINY = ["--total-env-steps", "256", "--num-envs", "16", "--batch-size", "16"]


def cli(*args, cwd=None):
    env = {**os.environ, "RL_I2IT_SMOKE": "1"}
    return subprocess.run([sys.executable, "-m", "rl_i2it", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rl_i2it: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    result = cli("train", "--task", "digits", "--preset", "smoke", "--run-dir", run_dir, "--quiet", *TINY)
    assert result.returncode == 0, result.stderr
    return run_dir


def test_smoke_training_writes_a_complete_run(trained_run):
    assert {p.name for p in trained_run.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.pt", "eval.json"}
    results = json.loads((trained_run / "eval.json").read_text())
    assert 0 < results["dice_identity"] < 1 and 0 < results["dice_final"] <= 1


def test_eval_json_has_the_pinned_keys(trained_run):
    result = cli("eval", "--run-dir", trained_run, "--json", "--steps", "4")
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert {"dice_identity", "dice_final", "dice_per_step"} <= set(results)
    assert len(results["dice_per_step"]) == 5
    for name in ("dice", "dice_strict", "dice_same_class"):
        assert len(results["tables"][name]["per_step"]) == 5
    assert {"folding_fraction", "folding_fraction_same_class"} <= set(results["details"])
    assert results["protocol"]["steps"] == 4 and "seed" in results["protocol"]["pairs"]


def test_eval_on_a_users_pairs(trained_run, tmp_path):
    rng = np.random.default_rng(0)
    pairs = tmp_path / "pairs.npz"
    np.savez(pairs, moving=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
             fixed=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))
    result = cli("eval", "--run-dir", trained_run, "--pairs", pairs, "--json", "--steps", "2")
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["details"]["n_pairs"] == 3 and "dice_same_class" not in results["tables"]


def bad_pairs(tmp_path):
    good = np.zeros((2, 28, 28), np.uint8)
    cases = {
        "shape": (dict(moving=np.zeros((2, 27, 28), np.uint8), fixed=good), "shape (2, 27, 28)"),
        "dtype": (dict(moving=good.astype(np.float32), fixed=good), "dtype float32"),
        "nan": (dict(moving=np.full((2, 28, 28), np.nan, np.float32), fixed=good), "NaN"),
        "lengths": (dict(moving=np.zeros((3, 28, 28), np.uint8), fixed=good), "3 images"),
        "keys": (dict(moving=good), "lacks ['fixed']"),
    }
    for name, (arrays, fragment) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        yield path, fragment
    text = tmp_path / "not_npz.npz"
    text.write_text("hello")
    yield text, "not a readable .npz"
    yield tmp_path / "missing.npz", "does not exist"


def test_bad_pairs_files_get_one_line_errors(trained_run, tmp_path):
    for path, fragment in bad_pairs(tmp_path):
        assert_one_line_error(cli("eval", "--run-dir", trained_run, "--pairs", path), fragment, str(path.name))


@pytest.mark.parametrize("args, fragments", [
    (["train", "--task", "chess"], ["unknown task 'chess'", "digits"]),
    (["train", "--preset", "huge"], ["unknown preset 'huge'", "smoke"]),
    (["train", "--device", "tpu"], ["'tpu'", "cpu"]),
    (["train", "--batch-size", "0"], ["batch size must be >= 1; got 0"]),
    (["train", "--batch-size", "many"], ["invalid int value: 'many'"]),
    (["bench", "--batch", "-3"], ["--batch must be >= 1; got -3"]),
    (["eval", "--run-dir", "/nonexistent/run"], ["/nonexistent/run does not exist"]),
])
def test_bad_input_gets_a_one_line_error(args, fragments, tmp_path):
    assert_one_line_error(cli(*args, "--run-dir", tmp_path / "r") if args[0] == "train" else cli(*args), *fragments)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing half-written


def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_one_line_error(cli("train", "--device", "cuda", "--run-dir", tmp_path / "r"), "CUDA is not available")


def test_existing_run_dir_without_if_exists(trained_run):
    assert_one_line_error(cli("train", "--run-dir", trained_run, *TINY), "already holds a run", "--if-exists resume")


def test_truncated_checkpoint_for_eval(trained_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    checkpoint = broken / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert_one_line_error(cli("eval", "--run-dir", broken), "truncated or corrupt", "checkpoint.pt")
