"""Figures for the notebooks: image grids, flow fields, step panels, learning curves, widget players.

Widgets degrade gracefully: every player first draws a static figure (what papermill, nbval and a
rendered notebook show), then, when ipywidgets is importable and ``interactive=True``, a live slider.

==========================================  ==============================================================
function                                    draws
==========================================  ==============================================================
``show_images(images, titles, ncols)``      a grid of 2-D images (uint8 or float), returns the figure
``plot_flow(ax, flow, step)``               a displacement field ``(2, H, W)`` as a deformed grid
``step_panel(moved, fixed, steps)``         moving -> ... -> moved at chosen steps, with the fixed image
``learning_curves(rows, keys)``             seaborn line plots of ``metrics.jsonl`` rows
``episode_player(frames, flows, rewards)``  a static strip + an ipywidgets slider over steps
==========================================  ==============================================================
"""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

__all__ = ["to_numpy_image", "show_images", "plot_flow", "step_panel", "learning_curves", "episode_player",
           "save_figure"]


def to_numpy_image(image) -> np.ndarray:
    """``(1, H, W)``, ``(H, W)`` or ``(3, H, W)`` tensor/array -> ``(H, W)`` or ``(H, W, 3)`` float in [0, 1]."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    array = array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    elif array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    return np.clip(array, 0, 1)


def show_images(images, titles=None, ncols: int | None = None, size: float = 1.6, cmap: str = "gray"):
    """A grid of images; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    ncols = ncols or len(images)
    nrows = (len(images) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(to_numpy_image(images[k]), cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return fig


def plot_flow(ax, flow, step: int = 2, color: str = "tab:red", scale: float = 1.0) -> None:
    """Draw ``x -> x + flow(x)`` as a deformed grid (every ``step`` pixels). ``flow``: ``(2, H, W)``, pixels."""
    flow = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow)
    _, height, width = flow.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = rows + scale * flow[0], cols + scale * flow[1]
    for r in range(0, height, step):
        ax.plot(x[r], y[r], color=color, linewidth=0.6)
    for c in range(0, width, step):
        ax.plot(x[:, c], y[:, c], color=color, linewidth=0.6)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_aspect("equal")


def step_panel(moved, fixed, steps, scores=None, size: float = 1.5):
    """One row per pair: the moving image at step 0, the moved image at each of ``steps``, then the fixed one.

    ``moved``: uint8 ``(T+1, B, 1, H, W)`` from ``evaluate.rollout_registration``; ``fixed``: ``(B, 1, H, W)``;
    ``scores``: optional ``(T+1, B)`` Dice shown in the titles.
    """
    import matplotlib.pyplot as plt

    pairs = moved.shape[1]
    columns = list(steps) + ["fixed"]
    fig, axes = plt.subplots(pairs, len(columns), figsize=(size * len(columns), size * pairs), squeeze=False)
    for b in range(pairs):
        for c, step in enumerate(columns):
            ax = axes[b, c]
            ax.axis("off")
            image = fixed[b] if step == "fixed" else moved[step, b]
            ax.imshow(to_numpy_image(image), cmap="gray", vmin=0, vmax=1)
            if b == 0 or scores is not None:
                title = "fixed" if step == "fixed" else ("moving" if step == 0 else f"t={step}")
                if scores is not None and step != "fixed":
                    title += f"\nDice {float(scores[step][b]):.2f}"
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(rows: list[dict], keys=("episode_score", "aux_ncc", "critic_loss", "alpha"), hue=None):
    """Seaborn line plots of log rows (from ``metrics.jsonl``) against env steps; ``hue`` names a column."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        sns.lineplot(data=frame, x="env_steps", y=key, hue=hue, ax=ax, errorbar=("ci", 95) if hue else None)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def episode_player(frames, fixed, flows=None, rewards=None, scores=None, interactive: bool = True,
                   static_steps: int = 6):
    """Step through one registration episode.

    ``frames``: ``(T+1, 1, H, W)`` moved images (uint8 or float); ``fixed``: ``(1, H, W)``; ``flows``:
    ``(T+1, 2, H, W)`` accumulated fields (optional); ``rewards``: ``(T,)``; ``scores``: ``(T+1,)``.
    Draws a static strip of ``static_steps`` evenly spaced steps (always), then returns an ipywidgets
    ``VBox`` with a slider when ``interactive`` (None when ipywidgets is missing or not interactive).
    """
    import matplotlib.pyplot as plt

    last = len(frames) - 1

    def draw(step, axes):
        for ax in axes:
            ax.clear()
            ax.axis("off")
        axes[0].imshow(to_numpy_image(frames[step]), cmap="gray", vmin=0, vmax=1)
        title = f"moved, t={step}"
        if scores is not None:
            title += f"\nDice {float(scores[step]):.3f}"
        axes[0].set_title(title, fontsize=8)
        axes[1].imshow(to_numpy_image(fixed), cmap="gray", vmin=0, vmax=1)
        axes[1].set_title("fixed", fontsize=8)
        if flows is not None:
            axes[2].imshow(to_numpy_image(frames[0]), cmap="gray", vmin=0, vmax=1, alpha=0.4)
            plot_flow(axes[2], flows[step])
            reward = f", r={float(rewards[step - 1]):+.3f}" if rewards is not None and step > 0 else ""
            axes[2].set_title(f"field{reward}", fontsize=8)

    width = 3 if flows is not None else 2
    shown = sorted(set(np.linspace(0, last, min(static_steps, last + 1)).round().astype(int).tolist()))
    fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown), 1.9), squeeze=False)
    for ax, step in zip(axes.flat, shown):
        ax.imshow(to_numpy_image(frames[step]), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        ax.set_title(f"t={step}" + (f"\n{float(scores[step]):.2f}" if scores is not None else ""), fontsize=8)
    fig.tight_layout()
    plt.show()
    if not interactive:
        return None
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    output = widgets.Output()
    slider = widgets.IntSlider(value=0, min=0, max=last, description="step", continuous_update=False)

    def render(change=None):
        with output:
            output.clear_output(wait=True)
            figure, axes_row = plt.subplots(1, width, figsize=(2.4 * width, 2.6))
            draw(slider.value, list(np.atleast_1d(axes_row)))
            figure.tight_layout()
            plt.show()

    slider.observe(render, names="value")
    render()
    return widgets.VBox([slider, output])


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_figure(fig, path, runs: list[str] | None = None, config: dict | None = None, seed: int | None = None,
                **extra) -> Path:
    """Save ``fig`` (PNG) with a provenance sidecar ``<name>.json``: runs, config, seed, commit, date."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    sidecar = {"figure": path.name, "runs": runs or [], "config": config, "seed": seed, "commit": git_commit(),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str))
    return path
