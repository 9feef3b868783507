"""Plan-authority designs side by side: does a design make the plan and the critic matter, and does it beat the
controls?

``python -m rl_i2it designs --task T --preset P --seeds 0 1 2 --run-dir DIR [--designs NAME ...]`` (or
``run_designs``) runs one comparison per design (``compare`` with the design's config fields, methods ``rl`` and
``aux_only`` plus ``rl``'s plan controls) in ``DIR/<design>/``, and a reference comparison with the task's defaults
(``identity``, ``cascade``, ``aux_only``, ``rl``) in ``DIR/reference/`` (or ``--reference DIR``, an existing
comparison at the same preset, seeds and updates, e.g. a committed one's run directory). Every run is resumable,
as ``compare``'s are. It writes ``DIR/designs.json`` and prints a table, one row per design:

==========================  =========================================================================================
column                      meaning
==========================  =========================================================================================
``final``, ``ci95``         ``rl``'s score under the design (mean over seeds, 95 % interval)
``plan_shuffle_drop``       the score lost when each item acts on another item's plan (> 0: the plan carries something)
``q_rank_correlation``      Spearman's ρ of min Q(s, p) with the score after acting on p, 8 plans per state
``alpha``, ``sigma``        α and the plan's σ (mean) at the last log row, mean over seeds (``traces``: every log
                            row's α, σ and σ_min per seed, for ``viz.alpha_sigma_traces``)
``vs_aux_only``             paired verdict of the design's ``rl`` against the reference ``aux_only``
``vs_cascade``              the same against the reference ``cascade``
``vs_own_aux_only``         against ``aux_only`` trained with the same design (does RL add anything to it?)
==========================  =========================================================================================

Paired verdicts use ``stats.paired`` on the per-(seed, item) scores: every run is evaluated on the same items, and
seed ``s`` shares its data order, so designs pair with the reference. A design becomes a preset's default only where
it beats ``aux_only`` and ``cascade`` significantly (the conservative rule of ``stats``). ``designs.json`` keeps the
reference's ``settings`` (``reference_settings``: the cascade's k, the swept weights), which the README names.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import stats
from .checkpoint import atomic_write_text
from .compare import load_comparison, run_comparison
from .errors import UserError

__all__ = ["DESIGNS", "run_designs", "design_rows", "design_table"]

def entropy_per_dim(sigma: float) -> float:
    """The differential entropy of N(0, σ²) per dimension, in nats: ``½ log(2πe) + log σ``."""
    return 0.5 * math.log(2 * math.pi * math.e) + math.log(sigma)


#: name -> config fields; "default" is the task's preset as it is (its rl is the reference's rl).
#: ``target_sigma_0.5``: SAC's target entropy at σ = 0.5 instead of the -1 nat per dimension (σ ≈ 0.09) of the
#: ``-|A|`` rule: where the plan's σ falls below 0.5, α rises and pushes it back, so the temperature regulates
DESIGNS: dict[str, dict] = {
    "default": {},
    "mean_kl": {"plan_kl": "mean"},
    "bottleneck": {"skip_source": "condition"},
    "skip_dropout_0.25": {"skip_dropout": 0.25},
    "skip_dropout_0.5": {"skip_dropout": 0.5},
    "gate": {"plan_gate": True},
    "gate_mean_kl": {"plan_gate": True, "plan_kl": "mean"},
    "target_sigma_0.5": {"target_entropy_per_dim": entropy_per_dim(0.5)},
}
REFERENCE_METHODS = ("identity", "cascade", "aux_only", "rl", "rl_plan_shuffled")
DESIGN_METHODS = ("aux_only", "rl", "rl_plan_shuffled")


def _items(run_dir: Path, method: str, seeds) -> np.ndarray:
    """``(seeds, items)`` scores of ``method`` in a comparison's run directory."""
    rows = []
    for seed in seeds:
        path = Path(run_dir) / "results" / f"{method}-seed{seed}.json"
        if not path.exists():
            raise UserError(f"{path} is missing: run the comparison in {run_dir} for seed {seed} first")
        rows.append(json.loads(path.read_text())["items"])
    return np.asarray(rows, dtype=np.float64)


def _last(comparison: dict, key: str) -> float | None:
    values = [d["log"][-1].get(key) for d in comparison.get("rl_diagnostics", {}).values()
              if d and d.get("log") and d["log"][-1].get(key) is not None]
    return float(np.mean(values)) if values else None


def design_rows(reference_dir, design_dirs: dict[str, Path]) -> list[dict]:
    """One row per design (see the module docstring) from finished comparisons."""
    reference = load_comparison(reference_dir)
    seeds, higher = reference["seeds"], reference["metric"]["higher_is_better"]
    controls = {m: _items(reference_dir, m, seeds) for m in ("aux_only", "cascade") if m in reference["methods"]}
    rows = []
    for name, run_dir in design_dirs.items():
        comparison = load_comparison(run_dir)
        if comparison["seeds"] != seeds or comparison["budget"] != reference["budget"]:
            raise UserError(f"design {name!r} in {run_dir} ran seeds {comparison['seeds']} with budget "
                            f"{comparison['budget']}, the reference {seeds} with {reference['budget']}; run both alike")
        rl = _items(run_dir, "rl", seeds)
        entry = comparison["methods"]["rl"]
        row = {"design": name, "fields": DESIGNS.get(name, {}), "final": entry["final"], "sd": entry["sd"],
               "ci95": entry["ci95"], "per_seed": entry["per_seed"],
               "plan_shuffle_drop": entry.get("plan_shuffle_drop", {}).get("mean"),
               "q_rank_correlation": entry.get("q_rank_correlation", {}).get("mean"),
               "alpha": _last(comparison, "alpha"), "sigma": _last(comparison, "sigma"),
               "sigma_min": _last(comparison, "sigma_min"),
               "traces": {seed: [{k: r.get(k) for k in ("updates", "alpha", "sigma", "sigma_min")} for r in d["log"]]
                          for seed, d in comparison.get("rl_diagnostics", {}).items() if d and d.get("log")}}
        for control, matrix in controls.items():
            row[f"vs_{control}"] = stats.paired(rl, matrix, higher)
        if "aux_only" in comparison["methods"]:
            row["vs_own_aux_only"] = stats.paired(rl, _items(run_dir, "aux_only", seeds), higher)
        rows.append(row)
    return rows


def _verdict(p: dict | None, digits: int) -> str:
    if p is None:
        return "—"
    word = ("better" if p["better"] == "a" else "worse") if p["significant"] else "n.s."
    return f"{p['difference']:+.{digits}f} {word}"


def design_table(rows: list[dict], metric: str, digits: int = 3) -> str:
    """A markdown table of ``design_rows``."""
    def number(v, signed=False):
        return "n/a" if v is None else (f"{v:+.{digits}f}" if signed else f"{v:.{digits}g}")

    head = (f"| design | {metric} (mean ± sd) | 95 % interval | plan shuffle drop | Q–score rank ρ | α | σ | "
            "vs aux_only | vs cascade | vs own aux_only |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        sd = f" ± {r['sd']:.{digits}f}" if r.get("sd") is not None else ""
        lines.append(f"| {r['design']} | {r['final']:.{digits}f}{sd} | [{r['ci95'][0]:.{digits}f}, "
                     f"{r['ci95'][1]:.{digits}f}] | {number(r['plan_shuffle_drop'], True)} | "
                     f"{number(r['q_rank_correlation'], True)} | {number(r['alpha'])} | {number(r['sigma'])} | "
                     f"{_verdict(r.get('vs_aux_only'), digits)} | {_verdict(r.get('vs_cascade'), digits)} | "
                     f"{_verdict(r.get('vs_own_aux_only'), digits)} |")
    return head + "\n".join(lines) + "\n"


def run_designs(task: str, preset: str = "auto", seeds=(0, 1, 2), run_dir=None, designs=None, reference_dir=None,
                updates: int | None = None, cascade_steps: int | None = None, smooth_weights=None, device="auto",
                progress: bool = True, overrides: dict | None = None) -> dict:
    """Run (or resume) the reference and every design's comparison; returns what ``DIR/designs.json`` holds.
    ``overrides``: config fields for every run (the reference's included), under each design's own."""
    if run_dir is None:
        raise UserError("designs needs --run-dir DIR (every design's comparison and designs.json go there)")
    run_dir = Path(run_dir)
    names = list(designs or DESIGNS)
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        raise UserError(f"unknown design(s) {unknown}; choose from {', '.join(DESIGNS)}")
    common = dict(task=task, preset=preset, seeds=seeds, updates=updates, device=device, progress=progress)
    if reference_dir is None:
        reference_dir = run_dir / "reference"
        run_comparison(**common, run_dir=reference_dir, overrides=dict(overrides or {}), methods=REFERENCE_METHODS,
                       cascade_steps=cascade_steps, smooth_weights=smooth_weights, sweep=("cascade",))
    design_dirs = {}
    for name in names:
        if name == "default":
            design_dirs[name] = Path(reference_dir)
            continue
        design_dirs[name] = run_dir / name
        run_comparison(**common, run_dir=design_dirs[name], overrides={**(overrides or {}), **DESIGNS[name]},
                       methods=DESIGN_METHODS)
    reference = load_comparison(reference_dir)
    result = {"task": task, "preset": reference["preset"], "seeds": reference["seeds"], "budget": reference["budget"],
              "metric": reference["metric"], "reference": str(reference_dir),
              "reference_settings": reference.get("settings"), "overrides": dict(overrides or {}),
              "rows": design_rows(reference_dir, design_dirs)}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "designs.json", json.dumps(result, indent=1))
    return result
