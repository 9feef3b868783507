"""Determinism, bit-exact resume, checkpoints and the run directory."""
import json

import pytest
import torch

from rl_i2it.checkpoint import load_checkpoint
from rl_i2it.config import from_yaml, make_config, to_yaml
from rl_i2it.errors import UserError
from rl_i2it.train import Trainer

TINY = dict(total_env_steps=256, num_envs=8, bootstrap_env_steps=64, batch_size=16, replay_ratio=1.0,
            buffer_capacity=512, log_every_env_steps=64, checkpoint_every_env_steps=128,
            planner_widths=(4, 8, 8), critic_widths=(4, 8, 8), eval_pairs=8, eval_steps=3)


def tiny(**overrides):
    return make_config("digits", "smoke", **{**TINY, **overrides})


def parameters(trainer):
    return torch.cat([p.detach().flatten() for m in (trainer.planner, trainer.actor, trainer.critic,
                                                      trainer.critic_target) for p in m.parameters()])


def metrics_without_time(rows):
    return [{k: v for k, v in row.items() if k not in ("wall_time_s", "env_steps_per_s")} for row in rows]


def test_config_yaml_round_trip():
    cfg = tiny(seed=7)
    assert from_yaml(to_yaml(cfg)) == cfg


def test_auto_preset_follows_the_smoke_variable(monkeypatch):
    monkeypatch.setenv("RL_I2IT_SMOKE", "1")
    assert make_config("digits", "auto").preset == "smoke"
    monkeypatch.setenv("RL_I2IT_SMOKE", "0")
    assert make_config("digits", "auto").preset == "course"


def test_two_runs_with_one_seed_are_bit_identical():
    a, b = Trainer(tiny(seed=3)), Trainer(tiny(seed=3))
    rows_a, rows_b = a.train(), b.train()
    assert torch.equal(parameters(a), parameters(b))
    assert metrics_without_time(rows_a) == metrics_without_time(rows_b)
    assert a.updates > 0 and len(rows_a) == 4
    c = Trainer(tiny(seed=4))
    c.train()
    assert not torch.equal(parameters(a), parameters(c))


def test_train_then_resume_equals_one_long_run(tmp_path):
    straight = Trainer(tiny(), run_dir=tmp_path / "straight")
    straight.train()
    first = Trainer(tiny(), run_dir=tmp_path / "split")
    first.train(until_env_steps=128)
    del first
    second = Trainer(tiny(), run_dir=tmp_path / "split", if_exists="resume")
    assert second.env_steps == 128
    second.train()
    assert torch.equal(parameters(straight), parameters(second))
    assert torch.equal(straight.log_alpha, second.log_alpha)
    read = lambda d: metrics_without_time([json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()])
    assert read(tmp_path / "straight") == read(tmp_path / "split")


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    trainer = Trainer(tiny(), run_dir=tmp_path / "run")
    trainer.train()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    for key in ("config", "networks", "optimisers", "log_alpha", "rng", "env", "obs", "counters", "buffer",
                "versions"):
        assert key in state, key
    assert set(state["networks"]) >= {"planner", "actor", "critic", "critic_target"}
    assert state["buffer"]["size"] == 256
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temp files


def test_existing_run_dir_is_refused_without_if_exists(tmp_path):
    Trainer(tiny(total_env_steps=64), run_dir=tmp_path / "run").train()
    with pytest.raises(UserError, match="--if-exists resume"):
        Trainer(tiny(total_env_steps=64), run_dir=tmp_path / "run")
    finished = Trainer(tiny(total_env_steps=64), run_dir=tmp_path / "run", if_exists="resume")
    assert finished.finished and finished.train() == []  # a finished run is reused, not retrained
    fresh = Trainer(tiny(total_env_steps=64), run_dir=tmp_path / "run", if_exists="overwrite")
    assert fresh.env_steps == 0


def test_resume_with_a_different_config_is_refused(tmp_path):
    Trainer(tiny(total_env_steps=64), run_dir=tmp_path / "run").train()
    with pytest.raises(UserError, match="seed"):
        Trainer(tiny(total_env_steps=64, seed=9), run_dir=tmp_path / "run", if_exists="resume")


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    Trainer(tiny(total_env_steps=64), run_dir=tmp_path / "run").train()
    path = tmp_path / "run" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_bad_config_values_are_refused():
    with pytest.raises(UserError, match="batch size must be >= 1; got 0"):
        tiny(batch_size=0)
    with pytest.raises(UserError, match="unknown preset 'fast'"):
        make_config("digits", "fast")
    with pytest.raises(UserError, match="unknown task 'chess'"):
        make_config("chess")
    # task-specific checks run in make_config, before any data loads
    with pytest.raises(UserError, match="unknown MNIST source 'floppy'"):
        tiny(data_source="floppy")
    with pytest.raises(UserError, match="image size 28 must be divisible by 8"):
        tiny(planner_widths=(4, 8, 8, 8))
    with pytest.raises(UserError, match="ncc_window must be an odd number"):
        tiny(ncc_window=8)


class ZeroFlow:
    """A policy that never moves anything: any ``Policy`` can be scored by the protocol."""

    modules = ()

    def act(self, obs, hidden=None):
        return torch.zeros(obs.shape[0], 2, *obs.shape[2:]), hidden


def test_digits_protocol_scores_any_policy_and_given_pairs(tmp_path):
    import numpy as np

    from rl_i2it.tasks import make_task

    task = make_task(tiny(eval_pairs=4), "cpu")
    results = task.evaluate(ZeroFlow(), steps=2)
    assert results.score_per_step == [results.score_identity] * 3 and results.protocol["steps"] == 2
    assert set(results.tables) == {"dice", "dice_strict", "dice_same_class", "folding_fraction"}
    assert results.metrics == {"dice": True, "dice_strict": True, "dice_same_class": True, "folding_fraction": False}
    assert results["n_pairs"] == 4 and results["folding_fraction"] == 0.0
    assert results["_rollout"]["moved"].shape == (3, 4, 1, 28, 28)
    digits = task.env.sampler.images[:2].cpu()
    same = task.evaluate(ZeroFlow(), steps=1, pairs=(digits, digits))  # given pairs: no same-class table
    assert same.score_per_step == [1.0, 1.0] and set(same.tables) == {"dice", "dice_strict", "folding_fraction"}
    assert same.protocol["pairs"] == "2 given pairs"
    path = tmp_path / "pairs.npz"
    np.savez(path, moving=digits[:, 0].numpy(), fixed=digits[:, 0].numpy())
    from_file = task.evaluate(ZeroFlow(), steps=1, pairs_file=path)
    assert from_file.protocol["pairs"] == str(path) and from_file.score_per_step == [1.0, 1.0]
    with pytest.raises(UserError, match="evaluation steps must be >= 1"):
        task.evaluate(ZeroFlow(), steps=0)


def test_a_directory_that_holds_no_run_is_never_deleted(tmp_path):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match="exists and is not empty"):
        Trainer(tiny(total_env_steps=64), run_dir=run_dir)
    with pytest.raises(UserError, match="refusing to delete"):
        Trainer(tiny(total_env_steps=64), run_dir=run_dir, if_exists="overwrite")
    Trainer(tiny(total_env_steps=64), run_dir=run_dir, if_exists="resume").train()  # a new run beside the file
    assert (run_dir / "notes.txt").read_text() == "precious" and (run_dir / "checkpoint.pt").exists()
    Trainer(tiny(total_env_steps=64), run_dir=run_dir, if_exists="overwrite")
    assert (run_dir / "notes.txt").exists() and not (run_dir / "checkpoint.pt").exists()


def test_progress_bar_is_plain_text_when_asked(monkeypatch):
    """RL_I2IT_PROGRESS=text: a plain tqdm on stderr (papermill --log-output forwards it: make quickstart)."""
    import tqdm.std

    from rl_i2it.train import progress_bar

    monkeypatch.setenv("RL_I2IT_PROGRESS", "text")
    import io

    bar = progress_bar(total=3, file=io.StringIO())
    assert type(bar) is tqdm.std.tqdm and bar.mininterval == 10.0 and bar.ascii
    bar.close()
