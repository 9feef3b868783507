"""Registration policies off their training distribution, and what a perfect stop would gain.

``python -m rl_i2it stopping --runs rl=DIR/runs/rl aux_only=DIR/runs/aux_only --scales 1 2 --steps 10 20
--out FILE`` (or ``stopping_study``) loads every seed's run under each labelled folder (``<folder>/seed<k>``, as
``compare`` and ``designs`` leave them), rebuilds the held-out pairs with the deformation amplitude scaled by each
``scale`` (1 = the protocol's pairs; 2 = twice the training amplitude), rolls each policy out for each step count and
records, per (method, scale, steps), the mean Dice at the last step and the stopping oracle's (each pair's best
step: ``controls.stopping_oracle``), mean over seeds with the per-seed values; then, for every pair of methods, the
paired verdict (``stats.paired`` over seeds × pairs) at the last step and under the oracle.
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

__all__ = ["stopping_study"]


def _seed_runs(folder: Path) -> list[Path]:
    runs = sorted(folder.glob("seed*/checkpoint.pt"), key=lambda p: int(p.parent.name[4:]))
    if not runs:
        raise UserError(f"{folder} holds no seed*/checkpoint.pt; pass the runs/<method> folder of a comparison")
    return [r.parent for r in runs]


def stopping_study(runs: dict[str, str | Path], scales=(1.0, 2.0), steps=(10,), device: str = "cpu") -> dict:
    """See the module docstring; returns the JSON-able result."""
    from .tasks.brain_registration import evaluation_pairs
    from .train import load_run

    if not runs:
        raise UserError("stopping needs --runs LABEL=FOLDER (at least one)")
    rows, items = [], {}
    seeds_of = {}
    for label, folder in runs.items():
        seed_dirs = _seed_runs(Path(folder))
        seeds_of[label] = [int(d.name[4:]) for d in seed_dirs]
        for run_dir in seed_dirs:
            trainer = load_run(run_dir, device=device)
            cfg, task = trainer.cfg, trainer.task
            if not cfg.task.startswith("brain"):
                raise UserError(f"{run_dir} is a {cfg.task} run; the stopping study is for brain2d/brain3d runs")
            for scale in scales:
                pairs = evaluation_pairs(dataclasses.replace(cfg, deformation_strength=cfg.deformation_strength
                                                              * scale), device=task.device)
                for count in steps:
                    found = stopping_oracle(task, task.policy(), pairs, int(count))
                    key = (label, float(scale), int(count))
                    items.setdefault(key, {"final": [], "oracle": []})
                    items[key]["final"].append(found.pop("final_items"))
                    items[key]["oracle"].append(found.pop("oracle_items"))
                    rows.append({"method": label, "seed": int(run_dir.name[4:]), "scale": float(scale),
                                 "steps": int(count), **found})
    summary = []
    for label, scale, count in items:
        part = [r for r in rows if (r["method"], r["scale"], r["steps"]) == (label, scale, count)]
        summary.append({"method": label, "scale": scale, "steps": count,
                        **{f"{k}_mean": float(np.mean([r[k] for r in part])) for k in
                           ("final", "oracle", "best_fixed_step_score", "oracle_steps")},
                        "final_per_seed": [r["final"] for r in part], "oracle_per_seed": [r["oracle"] for r in part]})
    verdicts = []
    for a, b in combinations(list(runs), 2):
        if seeds_of[a] != seeds_of[b]:
            continue  # pairing needs the same seeds
        for scale in scales:
            for count in steps:
                for at in ("final", "oracle"):
                    result = stats.paired(items[(a, float(scale), int(count))][at],
                                          items[(b, float(scale), int(count))][at])
                    verdicts.append({"a": a, "b": b, "scale": float(scale), "steps": int(count), "at": at,
                                     **{k: result[k] for k in ("difference", "ci95", "significant", "reason")},
                                     "better": result.get("better")})
    return {"runs": {k: str(v) for k, v in runs.items()}, "seeds": seeds_of, "scales": list(map(float, scales)),
            "steps": list(map(int, steps)), "summary": summary, "paired": verdicts, "rows": rows}


def stopping_table(result: dict) -> str:
    """Markdown: per (scale, steps), each method's Dice at the last step and under the stopping oracle."""
    lines = ["| method | deformation × | steps | Dice at the last step | best single step | oracle stop | "
             "mean oracle step |", "|---|---|---|---|---|---|---|"]
    for row in sorted(result["summary"], key=lambda r: (r["scale"], r["steps"], r["method"])):
        lines.append(f"| {row['method']} | {row['scale']:g} | {row['steps']} | {row['final_mean']:.3f} | "
                     f"{row['best_fixed_step_score_mean']:.3f} | {row['oracle_mean']:.3f} | "
                     f"{row['oracle_steps_mean']:.1f} |")
    for v in result["paired"]:
        winner = v["a"] if v["better"] == "a" else v["b"]
        verdict = f"{winner} better" if v["significant"] else f"not significant ({v['reason']})"
        lines.append(f"\n{v['a']} − {v['b']}, × {v['scale']:g}, {v['steps']} steps, {v['at']}: "
                     f"{v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}], {verdict}")
    return "\n".join(lines)


def write_study(result: dict, out: Path) -> None:
    from .checkpoint import atomic_write_text

    atomic_write_text(Path(out), json.dumps(result, indent=1) + "\n")
