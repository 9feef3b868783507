"""What chapter 22 reads besides the comparisons: the plan-authority designs and the stopping studies, as frames
and figures.

=================================  ==================================================================================
name                               what
=================================  ==================================================================================
``load_results(folder)``           every ``*.json`` in ``folder`` (``figures/designs``, ``figures/stopping``), by name
``design_frame(designs)``          one row per (task, preset, design) of ``designs.json`` files: the score, the plan's
                                   authority (score lost when plans are shuffled), the critic's ranking of plans,
                                   σ and α, and the paired verdicts against ``aux_only`` and ``cascade``
``designs_figure(frame)``          one panel per (task, setting): authority (x) against the advantage over
                                   ``aux_only`` (y, with its 95 % interval; up is better whatever the metric)
``stopping_frame(study)``          one row per (method, condition, steps) of a stopping study: the last step, the
                                   best single step and the stopping oracle
``stopping_figure(study, steps)``  one panel per condition: each method's mean score after every step
=================================  ==================================================================================
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["load_results", "design_frame", "designs_figure", "stopping_frame", "stopping_figure"]


def load_results(folder) -> dict[str, dict]:
    """``{file stem: JSON}`` of every ``*.json`` in ``folder`` (empty when there is none)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def _signed(difference: float, higher_is_better: bool) -> float:
    return difference if higher_is_better else -difference


def design_frame(designs: list[dict]):
    """See the module table. ``advantage_*`` columns are the paired difference turned so that positive means the
    design's ``rl`` is better than the control (``*_low``/``*_high``: its 95 % interval); ``beats_*``: a
    significant advantage (interval excludes 0 and every seed agrees)."""
    import pandas as pd

    rows = []
    for result in designs:
        higher = result["metric"]["higher_is_better"]
        setting = ", ".join([result["preset"]] + [f"{k}={v}" for k, v in (result.get("overrides") or {}).items()])
        for row in result["rows"]:
            entry = {"task": result["task"], "preset": result["preset"], "setting": setting,
                     "seeds": len(result["seeds"]),
                     "metric": result["metric"]["name"], "design": row["design"], "final": row["final"],
                     "plan_shuffle_drop": row["plan_shuffle_drop"], "q_rank_correlation": row["q_rank_correlation"],
                     "sigma": row["sigma"], "alpha": row["alpha"]}
            for control in ("aux_only", "cascade"):
                paired = row.get(f"vs_{control}")
                if paired is None:  # a reference without this control: no verdict, neither won nor lost
                    entry.update({f"beats_{control}": False, f"loses_to_{control}": False})
                    continue
                low, high = sorted(_signed(v, higher) for v in paired["ci95"])
                entry.update({f"advantage_{control}": _signed(paired["difference"], higher),
                              f"advantage_{control}_low": low, f"advantage_{control}_high": high,
                              f"beats_{control}": bool(paired["significant"] and paired["better"] == "a"),
                              f"loses_to_{control}": bool(paired["significant"] and paired["better"] == "b")})
            rows.append(entry)
    return pd.DataFrame(rows)


def designs_figure(frame):
    """``design_frame`` as one panel per (task, setting: the preset and any overrides): x, the score lost when the plans are shuffled (the plan's
    authority; 0 = the plan carries nothing); y, the advantage of the design's ``rl`` over ``aux_only`` with its 95 %
    interval (positive = better). Filled markers: significant. A design that gave RL and the plan a role would sit
    up and to the right."""
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(zip(frame["task"], frame["setting"])))
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    colours = {d: f"C{k}" for k, d in enumerate(dict.fromkeys(frame["design"]))}
    for ax, (task, setting) in zip(axes.flat, groups):
        part = frame[(frame["task"] == task) & (frame["setting"] == setting)]
        for _, row in part.iterrows():
            colour = colours[row["design"]]
            x, y = row["plan_shuffle_drop"], row["advantage_aux_only"]
            ax.plot([x, x], [row["advantage_aux_only_low"], row["advantage_aux_only_high"]], color=colour, lw=1.2)
            ax.plot(x, y, "o", color=colour, markerfacecolor=colour if row["beats_aux_only"] or
                    row["loses_to_aux_only"] else "white", label=row["design"])
            ax.annotate(row["design"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        # both axes are in the metric's units: a drop of 0.0002 dB beside advantages of a dB must look like 0
        spread = max(part["advantage_aux_only_high"].max(), 0) - min(part["advantage_aux_only_low"].min(), 0)
        drops = part["plan_shuffle_drop"].astype(float)
        ax.set_xlim(min(drops.min(), 0) - 0.15 * spread, max(drops.max(), 0) + 0.15 * spread)
        ax.ticklabel_format(axis="both", style="plain", useOffset=False)
        ax.set_title(f"{task} ({setting}), {part['metric'].iloc[0]}", fontsize=8)
        ax.set_xlabel("plan-shuffle drop (authority)", fontsize=7)
        ax.set_ylabel("rl − aux_only (up = better)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def stopping_frame(study: dict):
    """See the module table: ``last``, ``best_single_step`` and ``oracle`` are means over seeds; ``oracle_step``
    the mean step at which each pair peaks."""
    import pandas as pd

    return pd.DataFrame([{"task": study.get("task"), "method": r["method"], "condition": r["condition"],
                          "steps": r["steps"], "last": r["final_mean"], "best_single_step": r["best_fixed_step_score_mean"],
                          "oracle": r["oracle_mean"], "oracle_step": r["oracle_steps_mean"]} for r in study["summary"]])


def stopping_figure(study: dict, steps: int | None = None):
    """One panel per condition: each method's mean score (over seeds and pairs) after every step of a rollout of
    ``steps`` steps (default: the study's longest). A policy that has learned when to stop stays flat after its
    peak; one that drifts falls back."""
    import matplotlib.pyplot as plt

    steps = steps or max(study["steps"])
    conditions = study["conditions"]
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.6 * len(conditions), 2.9), squeeze=False, sharey=False)
    for ax, condition in zip(axes[0], conditions):
        for k, method in enumerate(dict.fromkeys(r["method"] for r in study["rows"])):
            curves = [r["per_step"] for r in study["rows"]
                      if (r["method"], r["condition"], r["steps"]) == (method, condition, steps)]
            if curves:
                ax.plot(np.mean(curves, 0), color=f"C{k}", label=method)
        ax.set_title(f"{study.get('task', '')}: {condition}", fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("mean score", fontsize=7)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return fig
