"""Registration policies off their training distribution, and what a perfect stop would gain.

``python -m rl_i2it stopping --runs rl=DIR/runs/rl aux_only=DIR/runs/aux_only --conditions scale=1 scale=2
--steps 10 20 --out FILE`` (or ``stopping_study``) loads every seed's run under each labelled folder
(``<folder>/seed<k>``, as ``compare`` and ``designs`` leave them), builds the held-out pairs of each **condition**,
rolls each policy out for each step count and records, per (method, condition, steps), the mean score at the last
step, at the best single step and under the stopping oracle (each pair's best step: ``controls.stopping_oracle``),
mean over seeds with the per-seed values; then, for every pair of methods, the paired verdict (``stats.paired`` over
seeds × pairs) at the last step and under the oracle.

==============  =============================================================================================
task            conditions (the score: the task's ``step_scores``)
==============  =============================================================================================
brain2d/3d      ``scale=S``: the protocol's held-out pairs with the deformation amplitude times ``S``
                (1 = the protocol's pairs; 2 = twice the training amplitude). Score: mean label Dice.
digits          ``test``: the protocol's test pairs (independent draws, so mostly cross-class, as in training);
                ``same_class``: test pairs of one class; ``sklearn``: scikit-learn's 8×8 digits upsampled to
                28×28, digits drawn unlike MNIST (thicker, blockier strokes) that no policy trained on.
                Score: Dice of the masks ``> 0`` (the protocol's).
==============  =============================================================================================
"""
from __future__ import annotations

import dataclasses
import json
from itertools import combinations
from pathlib import Path

import numpy as np

from . import stats
from .controls import stopping_oracle
from .errors import UserError

__all__ = ["stopping_study", "stopping_table", "condition_pairs", "preset_departures", "DEFAULT_CONDITIONS"]

#: what ``stopping_study`` evaluates when no conditions are given, per task family
DIGITS_CONDITIONS = ("test", "same_class", "sklearn")
DEFAULT_CONDITIONS = {"brain": ("scale=1", "scale=2"), "digits": DIGITS_CONDITIONS}


def _family(task_name: str) -> str:
    if task_name.startswith("brain"):
        return "brain"
    if task_name == "digits":
        return "digits"
    raise UserError(f"the stopping study is for registration runs (digits, brain2d, brain3d); got a {task_name} run")


def condition_pairs(cfg, condition: str, device="cpu"):
    """The held-out pairs of ``condition`` for a run of config ``cfg`` (see the module's table)."""
    family = _family(cfg.task)
    if family == "brain":
        from .tasks.brain_registration import evaluation_pairs

        name, sep, value = condition.partition("=")
        try:
            scale = float(value) if name == "scale" and sep else None
        except ValueError:
            scale = None
        if scale is None or scale <= 0:
            raise UserError(f"brain conditions are scale=S with S > 0 (the deformation amplitude times S); "
                            f"got {condition!r}")
        return evaluation_pairs(dataclasses.replace(cfg, deformation_strength=cfg.deformation_strength * scale),
                                device=device)
    from .data.mnist import load_mnist
    from .tasks.digits import evaluation_pairs

    if condition not in DIGITS_CONDITIONS:
        raise UserError(f"unknown digits condition {condition!r}; choose from {', '.join(DIGITS_CONDITIONS)}")
    test = load_mnist("test", "sklearn" if condition == "sklearn" else cfg.data_source)
    return evaluation_pairs(test.images, test.labels, cfg.eval_pairs, same_class=condition == "same_class")


def preset_departures(cfg) -> dict:
    """The config fields of a run that differ from its task's preset (``seed`` aside), e.g. ``{"rl_weight": 0.0}``
    for an ``aux_only`` run or ``{"smooth_weight": 1.0}`` for a run trained with ``--set smooth_weight=1``."""
    from .config import make_config

    preset = dataclasses.asdict(make_config(cfg.task, cfg.preset))
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "seed" and v != preset.get(k)}


def _seed_runs(folder: Path) -> list[Path]:
    runs = sorted(folder.glob("seed*/checkpoint.pt"), key=lambda p: int(p.parent.name[4:]))
    if not runs:
        raise UserError(f"{folder} holds no seed*/checkpoint.pt; pass the runs/<method> folder of a comparison")
    return [r.parent for r in runs]


def stopping_study(runs: dict[str, str | Path], conditions=None, steps=(10,), device: str = "cpu") -> dict:
    """See the module docstring; returns the JSON-able result. ``conditions``: default ``DEFAULT_CONDITIONS`` of the
    runs' task."""
    from .train import load_run

    if not runs:
        raise UserError("stopping needs --runs LABEL=FOLDER (at least one)")
    rows, items, seeds_of, tasks, departures = [], {}, {}, set(), {}
    for label, folder in runs.items():
        seed_dirs = _seed_runs(Path(folder))
        seeds_of[label] = [int(d.name[4:]) for d in seed_dirs]
        for seed, run_dir in zip(seeds_of[label], seed_dirs):
            trainer = load_run(run_dir, device=device)
            cfg, task = trainer.cfg, trainer.task
            tasks.add((cfg.task, cfg.preset))
            if len(tasks) > 1:
                raise UserError(f"the runs mix tasks or presets {sorted(tasks)}; compare runs of one task and preset")
            departures.setdefault(label, preset_departures(cfg))
            if not conditions:  # the first run names the task, and with it the default conditions
                conditions = DEFAULT_CONDITIONS[_family(cfg.task)]
            for condition in conditions:
                pairs = condition_pairs(cfg, condition, device=task.device)
                for count in steps:
                    found = stopping_oracle(task.step_scores(task.policy(), pairs, int(count)))
                    key = (label, condition, int(count))
                    items.setdefault(key, {"final": [], "oracle": []})
                    items[key]["final"].append(found.pop("final_items"))
                    items[key]["oracle"].append(found.pop("oracle_items"))
                    rows.append({"method": label, "seed": seed, "condition": condition,
                                 "steps": int(count), **found})
    summary = []
    for label, condition, count in items:
        part = [r for r in rows if (r["method"], r["condition"], r["steps"]) == (label, condition, count)]
        summary.append({"method": label, "condition": condition, "steps": count,
                        **{f"{k}_mean": float(np.mean([r[k] for r in part])) for k in
                           ("final", "oracle", "best_fixed_step_score", "oracle_steps")},
                        "final_per_seed": [r["final"] for r in part], "oracle_per_seed": [r["oracle"] for r in part]})
    verdicts = []
    for a, b in combinations(list(runs), 2):
        if seeds_of[a] != seeds_of[b]:
            continue  # pairing needs the same seeds
        for condition in conditions:
            for count in steps:
                for at in ("final", "oracle"):
                    result = stats.paired(items[(a, condition, int(count))][at], items[(b, condition, int(count))][at])
                    verdicts.append({"a": a, "b": b, "condition": condition, "steps": int(count), "at": at,
                                     **{k: result[k] for k in ("difference", "ci95", "significant", "reason")},
                                     "better": result.get("better")})
    task_name, preset = tasks.pop()
    return {"task": task_name, "preset": preset, "departures": departures,
            "runs": {k: str(v) for k, v in runs.items()}, "seeds": seeds_of,
            "conditions": list(conditions), "steps": list(map(int, steps)), "summary": summary, "paired": verdicts,
            "rows": rows}


def stopping_table(result: dict, involving: str | None = None) -> str:
    """Markdown: per (condition, steps), each method's score at the last step, at the best single step and under
    the stopping oracle; then the paired verdicts, one row per (pair, condition, steps), at the last step and under
    the oracle (only the pairs that include the method ``involving``, when given)."""
    order = {c: k for k, c in enumerate(result["conditions"])}
    lines = ["| method | condition | steps | score at the last step | best single step | oracle stop | "
             "mean oracle step |", "|---|---|---|---|---|---|---|"]
    for row in sorted(result["summary"], key=lambda r: (order[r["condition"]], r["steps"], r["method"])):
        lines.append(f"| {row['method']} | {row['condition']} | {row['steps']} | {row['final_mean']:.3f} | "
                     f"{row['best_fixed_step_score_mean']:.3f} | {row['oracle_mean']:.3f} | "
                     f"{row['oracle_steps_mean']:.1f} |")
    verdicts = {}
    for v in result["paired"]:
        if involving is None or involving in (v["a"], v["b"]):
            verdicts.setdefault((v["a"], v["b"], v["condition"], v["steps"]), {})[v["at"]] = v
    if verdicts:
        lines += ["", "| a − b | condition | steps | at the last step [95 %] | under the oracle [95 %] |",
                  "|---|---|---|---|---|"]
    for (a, b, condition, steps), at in verdicts.items():
        cells = []
        for key in ("final", "oracle"):
            v = at[key]
            word = (f"{a if v['better'] == 'a' else b} better" if v["significant"] else "n.s.")
            cells.append(f"{v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] {word}")
        lines.append(f"| {a} − {b} | {condition} | {steps} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
