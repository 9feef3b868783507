"""Does the one-step network catch up when it gets more learner updates? The budget study.

The controls (``compare``) give every method the same learner updates. A fair objection: the one-step network
is several times cheaper per update, so it could be given more. ``run_budget_study`` answers it with runs:

1. a reference comparison of ``one_step`` and ``aux_only`` at the preset's budget ``B`` (``DIR/base``, or an
   existing comparison's run directory with ``base=``),
2. ``one_step`` alone at ``k × B`` updates for every multiplier ``k`` (``DIR/x<k>``), the same seeds and test items,

and ``budget_study`` reads them into one JSON: per budget the one-step network's score (mean, sd, 95 % interval),
its training seconds, and its paired difference (``stats.paired`` over seeds × items) against ``aux_only`` at
``B`` and against itself at ``B``.

``python -m rl_i2it budget --task digits --preset smoke --seeds 0 1 2 --multipliers 2 4 --run-dir DIR --out FILE``;
``python -m rl_i2it report`` renders the files (README block; ``--chapters`` fills the solutions' measured block).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError
from .stats import paired

__all__ = ["run_budget_study", "budget_study", "budget_table", "budget_section", "KIND"]

KIND = "budget_study"


def _items(folder: Path, method: str, seeds) -> list[list[float]]:
    return [json.loads((folder / "results" / f"{method}-seed{seed}.json").read_text())["items"] for seed in seeds]


def budget_study(base_dir, longer_dirs) -> dict:
    """The study's JSON from a reference comparison (``one_step`` and ``aux_only`` at budget ``B``) and comparisons
    of ``one_step`` alone at more updates (same task, preset and seeds). See the module docstring."""
    from .compare import load_comparison

    base_dir = Path(base_dir)
    base = load_comparison(base_dir)
    missing = [m for m in ("one_step", "aux_only") if m not in base["methods"]]
    if missing:
        raise UserError(f"{base_dir}: the reference comparison lacks {missing}; run compare with --methods one_step "
                        f"aux_only")
    higher = base["metric"]["higher_is_better"]
    reference = np.array(_items(base_dir, "aux_only", base["seeds"]))
    one_step_b = np.array(_items(base_dir, "one_step", base["seeds"]))
    budget = base["budget"]["updates"]
    rows = [_row(base, base_dir, one_step_b, reference, one_step_b, budget, higher)]
    for folder in map(Path, longer_dirs):
        longer = load_comparison(folder)
        differ = [k for k in ("task", "preset", "seeds") if longer[k] != base[k]]
        differ += [k for k in ("batch_size", "overrides") if longer["settings"].get(k) != base["settings"].get(k)]
        if differ:
            raise UserError(f"{folder} differs from the reference {base_dir} in {differ}; a budget study needs the "
                            f"same task, preset, seeds, batch size and config overrides")
        if "one_step" not in longer["methods"]:
            raise UserError(f"{folder}: no one_step runs; run compare with --methods one_step --updates N")
        rows.append(_row(longer, folder, np.array(_items(folder, "one_step", base["seeds"])), reference, one_step_b,
                         budget, higher))
    rows.sort(key=lambda r: r["updates"])
    aux = base["methods"]["aux_only"]
    return {"kind": KIND, "task": base["task"], "preset": base["preset"], "seeds": base["seeds"],
            "metric": base["metric"], "budget": base["budget"],
            "aux_only": {"final": aux["final"], "sd": aux["sd"], "ci95": aux["ci95"], "updates": aux["updates"],
                         "train_seconds": aux["train_seconds"]},
            "rows": rows, "sources": [str(base_dir), *map(str, longer_dirs)]}


def _row(comparison: dict, folder: Path, items, reference, one_step_b, budget: int, higher: bool) -> dict:
    entry = comparison["methods"]["one_step"]
    return {"updates": entry["updates"], "multiplier": entry["updates"] / budget, "final": entry["final"],
            "sd": entry["sd"], "ci95": entry["ci95"], "train_seconds": entry["train_seconds"],
            "smooth_weight": entry.get("smooth_weight"), "source": str(folder),
            "minus_aux_only": paired(items, reference, higher),
            "minus_one_step_at_b": paired(items, one_step_b, higher)}


def run_budget_study(task: str, preset: str, seeds, multipliers, run_dir, base=None, updates: int | None = None,
                     overrides: dict | None = None, device: str = "cpu", progress: bool = True,
                     ray: dict | None = None) -> dict:
    """Run (or resume) the reference and the longer one-step comparisons under ``run_dir`` and return
    ``budget_study`` of them (also written to ``run_dir/budget.json``). ``updates``: the reference budget (default:
    the preset's RL run's); ignored with ``base``, whose budget is the reference. ``overrides``: config fields of
    every run (``--set``)."""
    from .checkpoint import atomic_write_text
    from .compare import load_comparison, run_comparison

    multipliers = [float(k) for k in multipliers]
    if not multipliers or any(k <= 1 for k in multipliers):
        raise UserError(f"--multipliers must be numbers > 1 (the reference budget is 1); got {multipliers}")
    run_dir = Path(run_dir)
    base_dir = Path(base) if base is not None else run_dir / "base"
    if base is None:
        run_comparison(task, preset, seeds, updates=updates, run_dir=base_dir, methods=["one_step", "aux_only"],
                       overrides=overrides, device=device, progress=progress, ray=ray)
    if not (base_dir / "comparison.json").exists():
        raise UserError(f"{base_dir} holds no comparison.json; run compare there first or drop --base")
    updates = load_comparison(base_dir)["budget"]["updates"]
    longer = []
    for k in multipliers:
        folder = run_dir / f"x{k:g}"
        run_comparison(task, preset, seeds, updates=round(k * updates), run_dir=folder, methods=["one_step"],
                       overrides=overrides, device=device, progress=progress, ray=ray)
        longer.append(folder)
    study = budget_study(base_dir, longer)
    atomic_write_text(run_dir / "budget.json", json.dumps(study, indent=1))
    return study


def budget_table(study: dict, digits: int = 3) -> str:
    """Markdown: the one-step network at each budget against ``aux_only`` at the reference budget."""
    metric = study["metric"]
    arrow = "higher" if metric["higher_is_better"] else "lower"

    def verdict(p: dict) -> str:
        word = "significant" if p["significant"] else "not significant"
        return f"{p['difference']:+.{digits}f} [{p['ci95'][0]:+.{digits}f}, {p['ci95'][1]:+.{digits}f}], {word}"

    aux = study["aux_only"]
    rows = [f"| method (learner updates) | {metric['name']} ({arrow} is better; mean ± sd, {len(study['seeds'])} "
            f"seeds) | 95 % interval | train s (mean) | − aux_only [95 %] | − one_step at B [95 %] |",
            "|---|---|---|---|---|---|",
            f"| aux_only ({aux['updates']}) | {aux['final']:.{digits}f} ± {aux['sd']:.{digits}f} | "
            f"[{aux['ci95'][0]:.{digits}f}, {aux['ci95'][1]:.{digits}f}] | {np.mean(aux['train_seconds']):.0f} | "
            "— | — |"]
    for row in study["rows"]:
        first = row["updates"] == study["budget"]["updates"]
        label = "B" if first else f"{row['multiplier']:.1f}× B"
        rows.append(f"| one_step ({row['updates']}, {label}) | {row['final']:.{digits}f} ± {row['sd']:.{digits}f} | "
                    f"[{row['ci95'][0]:.{digits}f}, {row['ci95'][1]:.{digits}f}] | "
                    f"{np.mean(row['train_seconds']):.0f} | {verdict(row['minus_aux_only'])} | "
                    + ("—" if first else verdict(row["minus_one_step_at_b"])) + " |")
    return "\n".join(rows)


def budget_section(study: dict, level: int = 3) -> str:
    """A budget study's heading, what it ran, and ``budget_table``."""
    budget = study["budget"]
    multipliers = ", ".join(f"{r['multiplier']:.1f}×" for r in study["rows"][1:])
    return (f"{'#' * level} One-step budgets: {study['task']} — {study['preset']} preset, {len(study['seeds'])} "
            f"seeds\n\nThe one-step network at the controls' budget B = {budget['updates']} learner updates (batch "
            f"{budget['batch_size']}) and at {multipliers} B, each against the step-wise policy without RL "
            f"(`aux_only`, at B) and against itself at B, paired over seeds × test items "
            f"(`python -m rl_i2it budget`).\n\n" + budget_table(study) + "\n")
