"""The Task contract, checked the same way for every registered task (tasks/base.py's checklist).

For each task at a tiny smoke size: it builds and declares every member; two runs with one seed are bit-identical;
a run interrupted at a checkpoint and resumed ends bit-identical to an uninterrupted one (every network, every
optimiser including a discriminator's, the replay buffer, the env's episodes and recurrent state, counters and log
rows); a stored transition unpacks to exactly the observations the policy saw; the evaluation is an ``EvalResult``
with the same top-level keys as every other task's.
"""
from __future__ import annotations

import json
import os

import pytest
import torch

from rl_i2it.config import make_config
from rl_i2it.envs.base import BatchedEnv
from rl_i2it.evaluate import EVAL_KEYS, EvalResult
from rl_i2it.tasks import TASKS
from rl_i2it.tasks.base import Task
from rl_i2it.train import Trainer

from same import assert_same

LOOP = dict(replay_ratio=1.0, log_every_env_steps=32)
#: the smallest settings at which each task trains, checkpoints and evaluates in a few seconds
TINY = {
    "digits": dict(total_env_steps=128, num_envs=8, bootstrap_env_steps=32, batch_size=8, buffer_capacity=256,
                   checkpoint_every_env_steps=64, planner_widths=(4, 8, 8), critic_widths=(4, 8, 8), eval_pairs=4),
    "brain2d": dict(image_size=32, bank_size=16, total_env_steps=128, num_envs=8, bootstrap_env_steps=32,
                    batch_size=8, buffer_capacity=256, checkpoint_every_env_steps=64, eval_pairs=4),
    "brain3d": dict(image_size=16, bank_size=8, total_env_steps=32, num_envs=2, bootstrap_env_steps=8, batch_size=2,
                    buffer_capacity=32, checkpoint_every_env_steps=16, log_every_env_steps=8, eval_pairs=2),
    "face": dict(image_size=32, hole_size=16, ring_width=1, train_faces=48, planner_widths=(4, 8, 8, 8),
                 critic_widths=(4, 8, 8, 8), plan_channels=1, disc_widths=(8, 8), total_env_steps=128, num_envs=8,
                 bootstrap_env_steps=32, batch_size=8, buffer_capacity=256, checkpoint_every_env_steps=64,
                 max_episode_steps=3, eval_faces=4, gan_start_updates=4),
    "photo": dict(image_size=32, train_pairs=24, eval_pairs=4, planner_widths=(4, 8, 8, 8), critic_widths=(4, 8, 8, 8),
                  plan_channels=1, disc_widths=(8, 8, 8), total_env_steps=128, num_envs=8, bootstrap_env_steps=32,
                  batch_size=8, buffer_capacity=256, checkpoint_every_env_steps=64, max_episode_steps=3,
                  gan_start_updates=4, baseline_widths=(4, 8, 8), perceptual=False),
    "image_style": dict(image_size=32, bank_size=24, content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"),
                        content_weight=1e-4, style_weight=1e-8, planner_widths=(4, 8, 8), critic_widths=(4, 8, 8),
                        plan_channels=1, total_env_steps=64, num_envs=4, bootstrap_env_steps=16, batch_size=4,
                        buffer_capacity=128, checkpoint_every_env_steps=32, max_episode_steps=3, eval_images=4,
                        log_every_env_steps=16),
    "video_style": dict(image_size=32, max_video_frames=12, planner_widths=(4, 8, 8), critic_widths=(4, 8, 8),
                        memory_channels=4, plan_channels=1, num_envs=4, batch_size=4, total_env_steps=64,
                        bootstrap_env_steps=12, buffer_capacity=64, clip_frames=2, frame_steps=2, eval_frames=3,
                        eval_synthetic=2, eval_flow_iterations=5, checkpoint_every_env_steps=32,
                        log_every_env_steps=16),
}
TIMING = ("wall_time_s", "env_steps_per_s")
#: ``make gpu-check`` runs these tests with ``RL_I2IT_TEST_DEVICE=cuda``
DEVICE = os.environ.get("RL_I2IT_TEST_DEVICE", "cpu")


def test_every_registered_task_is_covered():
    assert set(TINY) == set(TASKS)


def tiny(task: str, **overrides):
    return make_config(task, "smoke", **{**LOOP, **TINY[task], **overrides})



def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def comparable_state(trainer: Trainer) -> dict:
    state = trainer.state_dict()
    state["counters"].pop("wall_time")
    return state


@pytest.fixture(params=sorted(TINY))
def task_name(request):
    return request.param


def test_builds_and_declares_the_contract(task_name):
    trainer = Trainer(tiny(task_name), device=DEVICE)
    task = trainer.task
    assert isinstance(task, Task) and task.name == task_name
    assert isinstance(task.env, BatchedEnv)
    from rl_i2it.baselines import BASELINES

    assert task.baseline in BASELINES
    names = task.networks()
    assert {"planner", "actor", "critic", "critic_target"} <= set(names)
    if task.adversary is not None:
        assert names[task.adversary.name] is task.adversary.module
        assert trainer.optimisers[task.adversary.name] is task.adversary.optimiser
    assert set(task.log_names) <= set(trainer.stats)


def test_two_runs_with_one_seed_are_bit_identical(task_name):
    a, b = Trainer(tiny(task_name, seed=3), device=DEVICE), Trainer(tiny(task_name, seed=3), device=DEVICE)
    rows_a, rows_b = a.train(), b.train()
    assert a.updates > 0
    assert without_timing(rows_a) == without_timing(rows_b)
    assert_same(comparable_state(a), comparable_state(b))


def test_resume_at_a_checkpoint_is_bit_exact(task_name, tmp_path):
    cfg = tiny(task_name)
    whole = Trainer(cfg, run_dir=tmp_path / "whole", device=DEVICE)
    whole.train()
    part = Trainer(cfg, run_dir=tmp_path / "part", device=DEVICE)
    part.train(until_env_steps=cfg.checkpoint_every_env_steps)  # stops right after a checkpoint
    assert 0 < part.env_steps < cfg.total_env_steps
    resumed = Trainer(cfg, run_dir=tmp_path / "part", device=DEVICE, if_exists="resume")
    assert resumed.env_steps == part.env_steps
    resumed.train()
    assert resumed.updates == whole.updates > 0
    assert_same(comparable_state(resumed), comparable_state(whole))  # networks incl. discriminators, optimisers,
    # replay buffer, env episodes (and recurrent memories), RNGs, counters
    logs = [without_timing([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()])
            for d in (tmp_path / "whole", tmp_path / "part")]
    assert logs[0] == logs[1]


def test_a_stored_transition_unpacks_to_what_the_policy_saw(task_name):
    trainer = Trainer(tiny(task_name), device=DEVICE)
    env, seen = trainer.task.env, {}
    step = env.step

    def recording_step(action):
        out = step(action)
        seen["final_obs"] = out[4]["final_obs"].clone()
        return out

    env.step = recording_step
    for _ in range(3):  # past a first step, so episodes are mid-way (and, where they end, auto-reset)
        obs = trainer.obs.clone()
        start = trainer.buffer.position
        trainer.collect()
    rows = slice(start, start + env.num_envs)
    stored = {name: value[rows] for name, value in trainer.buffer.storage.items()}
    batch = trainer.task.unpack(stored)
    assert torch.equal(batch["obs"], obs)
    assert torch.equal(batch["next_obs"], seen["final_obs"])
    assert {"obs", "next_obs", "plan", "reward", "terminated"} <= set(batch)


def test_evaluation_is_one_result_type(task_name):
    trainer = Trainer(tiny(task_name), device=DEVICE)
    result = trainer.evaluate(steps=2)
    assert isinstance(result, EvalResult) and result.task == task_name
    out = result.to_json()
    assert set(EVAL_KEYS) <= set(out)
    assert set(out) - set(EVAL_KEYS) <= {"dice_identity", "dice_final", "dice_per_step"}
    json.dumps(out, allow_nan=False)  # strict JSON: no tensors, no NaN
    assert len(out["score_per_step"]) == 3
    assert out["score_identity"] == out["score_per_step"][0] and out["score_final"] == out["score_per_step"][-1]
    assert isinstance(out["higher_is_better"], bool)
    assert out["metrics"] and all(isinstance(v, bool) for v in out["metrics"].values())
    assert result.score_name in out["metrics"]
    for name in out["metrics"]:  # every metric has a table; per step where it is measured at every step
        table = out["tables"][name]
        assert set(table) >= {"identity", "final", "per_step"} and table["final"] is not None
        assert table["per_step"] is None or len(table["per_step"]) == 3
    if task_name in ("digits", "brain2d", "brain3d"):
        assert out["dice_final"] == out["score_final"] and result.score_name == "dice"


@pytest.mark.parametrize("task", ["digits", "face", "photo", "image_style", "video_style", "brain2d"])
def test_preset_differences_name_every_departure_from_the_paper(task):
    """Each field where course differs from paper is listed with both values and a reason in REASONS."""
    import dataclasses

    from rl_i2it.config import REASONS, make_config, preset_differences

    rows = preset_differences(task, "course")
    course, paper = make_config(task, "course"), make_config(task, "paper")
    expected = {f.name for f in dataclasses.fields(course) if f.name not in ("preset", "seed")
                and getattr(course, f.name) != getattr(paper, f.name)}
    assert {r["field"] for r in rows} == expected and expected
    for row in rows:
        assert row["course"] == getattr(course, row["field"]) and row["paper"] == getattr(paper, row["field"])
        assert row["why"] in REASONS
    assert any(r["what it is"] for r in rows), "the fields' #: notes are read"
