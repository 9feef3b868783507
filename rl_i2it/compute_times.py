"""How long a chapter trains, per preset: the compute banner at the top of every task chapter (10-15).

Two measured sources, never a typed number:

* ``figures/compute/<task>-<preset>.json``: ``python -m rl_i2it bench --task T --preset P --out FILE`` (``make
  compute-times`` writes every task at smoke and course): the policy's whole training run estimated from the
  collect and update rates measured on the machine that wrote it (its ``machine`` and ``measured_at`` say which);
* ``figures/comparisons/<task>-<preset>.json``: the wall time the committed comparison's ``rl`` runs actually took
  (one CPU core per run when it ran on Ray; the median over seeds).

``banner(task, trainings)`` turns them into one markdown paragraph: bench's estimate where there is one (checked:
image_style at course trained in 186 s against its 188 s estimate), else the comparison's time (its runs shared the
machine, so it overstates); a preset with neither says so and names the command that measures it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["PRESETS", "banner", "measured_seconds", "options_sentence"]

PRESETS = ("smoke", "course")


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _project(root: Path | None) -> Path:
    """``root``, or the project's own folder when None."""
    if root is not None:
        return root
    from .notebook import project_root

    return project_root()


def measured_seconds(task: str, preset: str, root: Path | None = None) -> dict:
    """``{"estimate": s or None, "machine": str, "measured_at": str, "comparison": s or None, "seeds": n}`` for the
    policy's training at ``preset`` (``None`` where nothing committed measured it)."""
    root = _project(root)
    found = {"estimate": None, "machine": "", "measured_at": "", "comparison": None, "seeds": 0}
    bench = root / "figures" / "compute" / f"{task}-{preset}.json"
    if bench.exists():
        report = json.loads(bench.read_text())
        found["estimate"] = report.get("train_seconds_estimate")
        machine = report.get("machine", {})
        found["machine"] = (f"{machine.get('cpu_count', '?')} CPUs, {machine.get('torch_threads', '?')} torch "
                            f"threads, {machine.get('device', '?')}")
        found["measured_at"] = report.get("measured_at", "")
    comparison = root / "figures" / "comparisons" / f"{task}-{preset}.json"
    if comparison.exists():
        seconds = json.loads(comparison.read_text())["methods"].get("rl", {}).get("train_seconds") or []
        if seconds:
            found["comparison"], found["seeds"] = float(np.median(seconds)), len(seconds)
    return found


def banner(task: str, trainings: str = "the policy", root: Path | None = None) -> str:
    """The chapter's compute banner (markdown). ``trainings``: what the chapter trains, in words (for example
    "the policy, then a one-step baseline for the same wall time")."""
    parts = []
    for preset in PRESETS:
        found = measured_seconds(task, preset, root)
        said = []
        if found["estimate"] is not None:
            said.append(f"≈ {_minutes(found['estimate'])} estimated by `bench` ({found['machine']}"
                        + (f", {found['measured_at']}" if found["measured_at"] else "") + ")")
        if found["comparison"] is not None and found["estimate"] is None:  # ran beside other runs: second best
            said.append(f"{_minutes(found['comparison'])} measured in the committed comparison (median of "
                        f"{found['seeds']} runs, one CPU core each, beside other runs)")
        parts.append(f"**{preset}**: " + ("; ".join(said) if said else "not measured yet"))
    return (f"**Compute.** Training the policy: {' · '.join(parts)} · **paper**: meant for a GPU. This chapter "
            f"trains {trainings}; evaluation adds a little. Your machine's estimate: "
            f"`python -m rl_i2it bench --task {task} --preset course`." + options_sentence(task, root))


def options_sentence(task: str, root: Path | None = None) -> str:
    """What ``bench --ablate`` measured for ``task`` (``figures/compute/ablate-<task>.json``), as one sentence
    (empty when nothing was measured): the default layout's gain and bf16 autocast's, which stays opt-in."""
    path = _project(root) / "figures" / "compute" / f"ablate-{task}.json"
    if not path.exists():
        return ""
    options = json.loads(path.read_text())["options"]
    said = []
    if "memory_format" in options:
        said.append(f"the default NHWC layout (`memory_format: channels_last`) made its learner updates "
                    f"{options['memory_format']['update_ratio']:.2f}× as fast as NCHW")
    if "amp" in options:
        said.append(f"bfloat16 autocast (`--amp bf16`, off by default: it needs a CPU with bf16 instructions) "
                    f"{options['amp']['update_ratio']:.2f}× on top")
    return (" On the machine that measured it (`bench --ablate`), " + "; ".join(said) + ".") if said else ""
