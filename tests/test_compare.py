"""compare: the method set, equal updates, resume, the JSON schema, bad arguments; the controls and the statistics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rl_i2it.__main__ import main
from rl_i2it.compare import (METHODS, SCHEMA_KEYS, comparison_table, env_steps_for_updates, load_comparison,
                             rl_updates, run_comparison)
from rl_i2it.config import make_config
from rl_i2it.controls import OwnOutputPolicy, PerPairOptimisationPolicy, plan_transform
from rl_i2it.errors import UserError
from rl_i2it.stats import paired
from rl_i2it.train import Trainer

from test_task_contract import LOOP, TINY

METHOD_KEYS = {"description", "final", "sd", "per_seed", "per_step", "ci95", "updates", "train_seconds", "parameters"}


def overrides(task: str) -> dict:
    return {**LOOP, **TINY[task]}


@pytest.fixture(scope="module")
def digits_comparison(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("compare") / "digits"
    comparison = run_comparison("digits", "smoke", seeds=(0, 1, 2), updates=6, run_dir=run_dir,
                                overrides=overrides("digits"), device="cpu", cascade_steps=2,
                                smooth_weights=(0.5, 1.0), sweep=("one_step", "cascade"), progress=False)
    return run_dir, comparison


def test_budget_arithmetic_matches_the_trainer():
    cfg = make_config("digits", "smoke", **overrides("digits"))
    for wanted in (1, 5, 13):
        steps = env_steps_for_updates(cfg, wanted)
        assert rl_updates(cfg.__class__(**{**cfg.__dict__, "total_env_steps": steps})) >= wanted
        trainer = Trainer(cfg.__class__(**{**cfg.__dict__, "total_env_steps": steps}), device="cpu")
        trainer.train()
        assert trainer.updates == rl_updates(trainer.cfg) and trainer.updates >= wanted
        fewer = cfg.__class__(**{**cfg.__dict__, "total_env_steps": steps - cfg.num_envs})
        assert rl_updates(fewer) < wanted  # the fewest env steps that reach the budget


def test_every_method_every_seed_at_equal_updates(digits_comparison):
    run_dir, comparison = digits_comparison
    assert set(comparison) >= set(SCHEMA_KEYS)
    assert list(comparison["methods"]) == list(METHODS)  # digits is registration: per-pair optimisation included
    budget = comparison["budget"]
    assert budget["batch_size"] == TINY["digits"]["batch_size"] and budget["updates"] >= 6
    for name, entry in comparison["methods"].items():
        assert METHOD_KEYS <= set(entry), name
        assert len(entry["per_seed"]) == 3 and len(entry["train_seconds"]) == 3
        assert entry["ci95"][0] <= entry["final"] + 1e-9 or name == "per_pair_optimisation"
        if name in ("one_step", "one_step_iterated", "cascade", "aux_only", "rl") or name.startswith("rl_plan"):
            assert entry["updates"] == budget["updates"], name  # the same learner updates, every trained method
    methods = comparison["methods"]
    assert len(methods["one_step"]["per_step"]) == 2  # T = 1
    assert len(methods["cascade"]["per_step"]) == 3  # k = 2 applications
    assert len(methods["rl"]["per_step"]) == len(methods["one_step_iterated"]["per_step"]) == 11  # smoke T = 10
    assert methods["identity"]["final"] == pytest.approx(methods["rl"]["per_step"][0])
    paired_keys = {"difference", "ci95", "significant", "probability_of_improvement", "seeds_agree", "reason"}
    assert set(methods["rl"]["paired"]) == set(METHODS) - {"rl"}
    for verdict in methods["rl"]["paired"].values():
        assert paired_keys <= set(verdict) and isinstance(verdict["significant"], bool)
    # rl's diagnostics: the plan distribution per log row and the plan's effect on the action
    for seed in ("0", "1", "2"):
        diagnostics = comparison["rl_diagnostics"][seed]
        assert set(diagnostics["action_change"]) == {"zero", "shuffled", "prior"}
        assert {"alpha", "sigma", "sigma_min", "plan_mean_abs", "kl"} <= set(diagnostics["log"][-1])
        assert 0 < diagnostics["log"][-1]["sigma_min"] <= diagnostics["log"][-1]["sigma"]
    # plan authority of both RL methods: rl's shuffle drop is its score minus rl_plan_shuffled's, seed by seed
    for unit in ("rl", "aux_only"):
        drop, rank = methods[unit]["plan_shuffle_drop"], methods[unit]["q_rank_correlation"]
        assert len(drop["per_seed"]) == len(rank["per_seed"]) == 3 and None not in drop["per_seed"]
        assert all(r is None or -1 <= r <= 1 for r in rank["per_seed"])
    assert methods["rl"]["plan_shuffle_drop"]["per_seed"] == pytest.approx(
        [a - b for a, b in zip(methods["rl"]["per_seed"], methods["rl_plan_shuffled"]["per_seed"])])
    # the smoothness sweep: both weights scored on validation pairs; the chosen one is used for every seed
    sweep = comparison["smoothness_sweep"]
    for unit in ("one_step", "cascade"):
        assert set(sweep[unit]["validation"]) == {"0.5", "1"}
        assert methods[unit]["smooth_weight"] == sweep[unit]["chosen"]
    assert load_comparison(run_dir) == json.loads((run_dir / "comparison.json").read_text())
    table = comparison_table(comparison)
    assert all(f"| {name} |" in table for name in METHODS)


def test_resume_reuses_finished_runs(digits_comparison, tmp_path):
    run_dir, comparison = digits_comparison
    results = sorted((run_dir / "results").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in results}
    (run_dir / "results" / "aux_only-seed1.json").unlink()
    again = run_comparison("digits", "smoke", seeds=(0, 1, 2), updates=6, run_dir=run_dir,
                           overrides=overrides("digits"), device="cpu", cascade_steps=2, smooth_weights=(0.5, 1.0),
                           sweep=("one_step", "cascade"), progress=False)
    for path, stamp in stamps.items():
        if path.name != "aux_only-seed1.json":
            assert path.stat().st_mtime_ns == stamp, path.name  # not recomputed
    assert (run_dir / "results" / "aux_only-seed1.json").exists()
    # the rerun's aux_only seed 1 resumes its finished RL run directory: the same evaluation
    assert again["methods"]["aux_only"]["per_seed"] == comparison["methods"]["aux_only"]["per_seed"]
    assert again["methods"]["rl"] == comparison["methods"]["rl"]


def test_other_settings_in_the_same_directory_are_refused(digits_comparison):
    run_dir, _ = digits_comparison
    with pytest.raises(UserError, match="other settings.*updates"):
        run_comparison("digits", "smoke", seeds=(0, 1, 2), updates=9, run_dir=run_dir, overrides=overrides("digits"),
                       device="cpu", cascade_steps=2, smooth_weights=(0.5, 1.0), progress=False)


def test_a_non_registration_task_has_no_per_pair_optimisation(tmp_path):
    comparison = run_comparison("face", "smoke", seeds=(0,), updates=2, run_dir=tmp_path, overrides=overrides("face"),
                                device="cpu", progress=False)
    assert list(comparison["methods"]) == [m for m in METHODS if m != "per_pair_optimisation"]
    assert comparison["smoothness_sweep"] == {}
    assert comparison["methods"]["cascade"]["updates"] == comparison["budget"]["updates"]
    verdict = comparison["methods"]["rl"]["paired"]["one_step"]
    assert verdict["significant"] is False and "seed" in verdict["reason"]  # one seed never decides


@pytest.mark.parametrize("argv, message", [
    (["--updates", "0"], "--updates must be >= 1"),
    (["--seeds", "1", "1"], "--seeds must be distinct"),
    (["--methods", "rl", "magic"], "unknown method"),
    (["--task", "face", "--smooth-weights", "1"], "registration tasks only"),
    (["--task", "nope"], "unknown task 'nope'"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    code = main(["compare", "--preset", "smoke", "--run-dir", str(tmp_path / "c"), "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "comparison.json").exists()


def test_compare_needs_a_run_dir(capsys):
    code = main(["compare", "--preset", "smoke"])
    assert code == 2 and "--run-dir" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- the controls
def test_plan_transforms():
    plan = torch.arange(12.0).view(4, 3)
    assert torch.equal(plan_transform("zero")(plan), torch.zeros(4, 3))
    shuffled = plan_transform("shuffled")(plan)
    assert sorted(shuffled[:, 0].tolist()) == plan[:, 0].tolist()
    assert not (shuffled == plan).all(1).any()  # no item keeps its own plan
    first, second = plan_transform("prior", seed=3), plan_transform("prior", seed=3)
    assert torch.equal(first(plan), second(plan)) and not torch.equal(first(plan), plan)


def test_own_output_policy_feeds_the_current_image_after_the_first_step():
    seen = []

    class Recorder:
        modules = ()

        def act(self, obs, hidden=None):
            seen.append(obs[:, :3].clone())
            return obs[:, :3].float() + 1, hidden

    obs = torch.cat([torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 7.0)], 1)
    policy = OwnOutputPolicy(Recorder(), period=2)
    for _ in range(4):
        policy.act(obs)
    assert [int(s[0, 0, 0, 0]) for s in seen] == [0, 7, 0, 7]  # the input at each period's start, then the current


def test_per_pair_optimisation_registers_a_shifted_square():
    fixed = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    fixed[:, :, 5:11, 5:11] = 255
    moving = torch.roll(fixed, 2, dims=3)
    policy = PerPairOptimisationPolicy(iterations=150, lr=0.2, smooth_weight=0.1, window=5)
    field, _ = policy.act(torch.cat([fixed, moving], 1))
    assert field.shape == (2, 2, 16, 16)
    from rl_i2it.nn.functional import warp

    before = (moving.float() - fixed.float()).abs().mean()
    after = (warp(moving.float() / 255, field) * 255 - fixed.float()).abs().mean()
    assert after < 0.5 * before


# ---------------------------------------------------------------------------------------------- statistics
def test_paired_verdicts():
    generator = np.random.default_rng(0)
    a = generator.normal(0.8, 0.05, (3, 50))
    better = paired(a + 0.05, a, higher_is_better=True)
    assert better["significant"] and better["better"] == "a" and better["difference"] == pytest.approx(0.05)
    assert paired(a + 0.05, a, higher_is_better=False)["better"] == "b"  # a larger loss is worse
    noise = paired(a + generator.normal(0, 0.05, a.shape), a)
    assert not noise["significant"]
    one_seed = paired(a[:1] + 0.05, a[:1])
    assert not one_seed["significant"] and "at least 3" in one_seed["reason"]
    disagree = a.copy()
    disagree[0] += 0.1
    disagree[1] -= 0.02
    disagree[2] += 0.1
    verdict = paired(disagree, a)
    assert not verdict["seeds_agree"] and not verdict["significant"]
    with pytest.raises(ValueError, match="same"):
        paired(a, a[:2])


def test_intervals_are_reproducible_and_leave_numpy_alone():
    from rl_i2it.stats import interval

    scores = np.random.default_rng(1).normal(0, 1, (3, 20))
    np.random.seed(5)
    expected_next = np.random.rand()
    np.random.seed(5)
    assert interval(scores) == interval(scores)
    assert np.random.rand() == expected_next


# ---------------------------------------------------------------------------------------------- the report
def test_report_answers_every_contrast_from_the_numbers(digits_comparison, tmp_path):
    from rl_i2it.compare import CONTRASTS
    from rl_i2it.report import BEGIN, END, answers, readme_block, scorecard, update_readme

    run_dir, comparison = digits_comparison
    assert set(comparison["contrasts"]) == set(CONTRASTS)
    lines = answers(comparison)
    assert len(lines) == len(CONTRASTS)
    for line, contrast in zip(lines, comparison["contrasts"].values()):
        assert f"{contrast['difference']:+.3f}" in line
        assert ("**not shown**" in line) == (not contrast["significant"])
    card = scorecard([comparison])
    rl, one_step = comparison["methods"]["rl"]["final"], comparison["methods"]["one_step"]["final"]
    assert f"rl {rl:.3f} vs one-step {one_step:.3f}" in card
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n")
    assert update_readme(readme, [run_dir]) and not update_readme(readme, [run_dir])
    assert readme.read_text() == f"intro\n{readme_block([run_dir])}\noutro\n"
    with pytest.raises(UserError, match="no generated block"):
        update_readme(_write(tmp_path / "plain.md", "no block"), [run_dir])


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.own_interpreter
def test_missing_runs_and_sweep_points_run_as_ray_tasks(digits_comparison, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    import shutil

    run_dir, comparison = digits_comparison
    copy = tmp_path / "digits"
    shutil.copytree(run_dir, copy)
    removed = ["aux_only-seed1.json", "one_step-seed2.json", "one_step_iterated-seed2.json", "sweep-cascade-w1.json"]
    for name in removed:
        (copy / "results" / name).unlink()
    again = run_comparison("digits", "smoke", seeds=(0, 1, 2), updates=6, run_dir=copy, overrides=overrides("digits"),
                           device="cpu", cascade_steps=2, smooth_weights=(0.5, 1.0), progress=True,
                           sweep=("one_step", "cascade"), ray={"local_cpus": 2})
    out = capsys.readouterr().out
    assert not ray.is_initialized(), "the local instance started for the comparison is shut down after it"
    assert "cascade 1.0 done on Ray" in out and "1 aux_only done on Ray" in out and "2 one_step done on Ray" in out
    assert all((copy / "results" / name).exists() for name in removed)
    for method in ("aux_only", "one_step", "one_step_iterated", "cascade"):  # the same seeds train the same nets
        assert again["methods"][method]["per_seed"] == pytest.approx(comparison["methods"][method]["per_seed"],
                                                                     rel=1e-4), method
    assert again["smoothness_sweep"] == comparison["smoothness_sweep"]


def test_ray_starts_the_long_runs_beside_the_sweep_points(tmp_path):
    """The first Ray phase holds every sweep point and every run that needs no chosen weight, the longest first
    (a point at the place of the unit it trains); the swept unit's runs wait for the second phase."""
    from rl_i2it.compare import _Comparison

    comparison = _Comparison("digits", "smoke", (0, 1), 6, tmp_path, overrides("digits"), "cpu", 2, (0.5, 1.0),
                             None, False, sweep=("one_step",))
    first = comparison.first_ray_phase()
    assert first[:2] == [("run", 0, "cascade"), ("run", 1, "cascade")]
    assert ("sweep", "one_step", 0.5) in first and ("sweep", "one_step", 1.0) in first
    assert not any(job[0] == "run" and job[2] == "one_step" for job in first)
    units = [job[2] if job[0] == "run" else job[1] for job in first]
    assert units == sorted(units, key=("cascade", "rl", "aux_only", "one_step", "per_pair_optimisation").index)
    both = _Comparison("digits", "smoke", (0, 1), 6, tmp_path / "both", overrides("digits"), "cpu", 2, (0.5, 1.0),
                       None, False, sweep=("one_step", "cascade"))
    assert [job for job in both.first_ray_phase() if job[0] == "run"][0] == ("run", 0, "rl")  # cascade waits too
