"""budget: the one-step network at k x the controls' budget against aux_only at the budget, paired; its rendering in
the README block and the solutions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rl_i2it.__main__ import main
from rl_i2it.budgets import budget_study, budget_table, run_budget_study
from rl_i2it.compare import run_comparison
from rl_i2it.errors import UserError
from rl_i2it.report import BUDGET_BEGIN, BUDGET_END, readme_block, result_kind, update_solutions

from test_task_contract import LOOP, TINY

OVERRIDES = {**LOOP, **TINY["digits"]}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("budget")
    run_budget_study("digits", "smoke", (0, 1, 2), [2], run_dir, updates=4, overrides=OVERRIDES, device="cpu",
                     progress=False)
    return run_dir


def _items(folder, method):
    return np.array([json.loads((folder / "results" / f"{method}-seed{s}.json").read_text())["items"]
                     for s in (0, 1, 2)])


def test_the_longer_budget_is_paired_against_aux_only_and_itself(study_dir):
    study = json.loads((study_dir / "budget.json").read_text())
    assert study["kind"] == "budget_study" and study["seeds"] == [0, 1, 2]
    first, longer = study["rows"]
    assert first["updates"] == study["budget"]["updates"] >= 4 and first["multiplier"] == 1.0
    assert longer["updates"] >= 2 * first["updates"] and longer["multiplier"] >= 2.0
    one_step_2x, aux = _items(study_dir / "x2", "one_step"), _items(study_dir / "base", "aux_only")
    assert longer["minus_aux_only"]["difference"] == pytest.approx(float((one_step_2x - aux).mean()), abs=1e-9)
    assert first["minus_one_step_at_b"]["difference"] == 0.0 and not first["minus_one_step_at_b"]["significant"]
    table = budget_table(study)
    assert f"| one_step ({longer['updates']}, {longer['multiplier']:.1f}× B) |" in table
    assert f"| aux_only ({study['aux_only']['updates']}) |" in table


def test_a_longer_run_must_share_the_reference_seeds_and_config(study_dir, tmp_path):
    two_seeds = tmp_path / "two"
    run_comparison("digits", "smoke", seeds=(0, 1), updates=8, run_dir=two_seeds, methods=["one_step"],
                   overrides=OVERRIDES, device="cpu", progress=False)
    with pytest.raises(UserError, match=r"differs from the reference .* in \['seeds'\]"):
        budget_study(study_dir / "base", [two_seeds])
    other_config = tmp_path / "other"
    run_comparison("digits", "smoke", seeds=(0, 1, 2), updates=8, run_dir=other_config, methods=["one_step"],
                   overrides={**OVERRIDES, "ncc_window": 5}, device="cpu", progress=False)
    with pytest.raises(UserError, match=r"differs from the reference .* in \['overrides'\]"):
        budget_study(study_dir / "base", [other_config])
    with pytest.raises(UserError, match=r"--multipliers must be numbers > 1"):
        run_budget_study("digits", "smoke", (0, 1, 2), [1], tmp_path / "one", overrides=OVERRIDES)


def test_the_readme_and_the_solutions_render_a_study(study_dir, tmp_path, capsys):
    out = tmp_path / "figures" / "digits-smoke.json"
    sets = [a for k, v in OVERRIDES.items()
            for a in ("--set", f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}")]
    # resumes: the reference and the 2x runs are finished, so nothing trains again
    assert main(["budget", "--task", "digits", "--preset", "smoke", "--base", str(study_dir / "base"),
                 "--multipliers", "2", "--run-dir", str(study_dir), "--out", str(out), "--device", "cpu",
                 "--quiet", *sets]) == 0
    assert "| one_step (" in capsys.readouterr().out and result_kind(out) == "budget"
    block = readme_block([study_dir / "base", out])
    assert "### One-step budgets: digits — smoke preset, 3 seeds" in block
    solutions = tmp_path / "notebooks" / "solutions"
    solutions.mkdir(parents=True)
    target = solutions / "10_digits_transform.md"
    target.write_text(f"# Solutions\n\n{BUDGET_BEGIN}\nstale\n{BUDGET_END}\n\nafter\n")
    assert update_solutions(tmp_path / "notebooks", [out]) == [str(target)]
    text = target.read_text()
    assert "stale" not in text and "#### One-step budgets: digits" in text and text.endswith("after\n")
    assert update_solutions(tmp_path / "notebooks", [out]) == []  # idempotent
    target.write_text("# Solutions without the block\n")
    with pytest.raises(UserError, match="needs exactly one block"):
        update_solutions(tmp_path / "notebooks", [out])
