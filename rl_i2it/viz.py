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
``plan_explorer(planner, actor, state)``    a grid of decoded flows + ipywidgets sliders over plan components
``method_diagram()``                        the RL-I2IT loop (planner, plan, actor, env, critic) as boxes
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
           "plan_explorer", "method_diagram", "save_figure", "comparison_figure", "contrasts_figure",
           "alpha_sigma_traces"]


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


def _interactive_widgets():
    """The ipywidgets module, or None when it is not installed (the static figure then stands alone)."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    return widgets


def episode_player(frames, fixed, flows=None, rewards=None, scores=None, interactive: bool = True,
                   static_steps: int = 6):
    """Step through one registration episode.

    ``frames``: ``(T+1, 1, H, W)`` moved images (uint8 or float); ``fixed``: ``(1, H, W)``; ``flows``:
    ``(T+1, 2, H, W)`` accumulated fields (optional); ``rewards``: ``(T,)``; ``scores``: ``(T+1,)``.
    Draws a static strip of ``static_steps`` evenly spaced steps (always; with the fields in a second row
    when ``flows`` is given), then returns an ipywidgets ``VBox`` with a slider when ``interactive``
    (None when ipywidgets is missing or not interactive). The live panel shows the moved image, the fixed
    image and the field with the step's reward.
    """
    import matplotlib.pyplot as plt

    last = len(frames) - 1

    def reward_text(step):
        return f"r={float(rewards[step - 1]):+.2f}" if rewards is not None and step > 0 else ""

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
            reward = reward_text(step)
            axes[2].set_title("field" + (f", {reward}" if reward else ""), fontsize=8)

    width = 3 if flows is not None else 2
    shown = sorted(set(np.linspace(0, last, min(static_steps, last + 1)).round().astype(int).tolist()))
    rows = 2 if flows is not None else 1
    fig, axes = plt.subplots(rows, len(shown), figsize=(1.5 * len(shown), 1.75 * rows), squeeze=False)
    for k, step in enumerate(shown):
        ax = axes[0, k]
        ax.imshow(to_numpy_image(frames[step]), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        title = f"t={step}"
        if scores is not None:
            title += f"  Dice {float(scores[step]):.2f}"
        if reward_text(step):
            title += "\n" + reward_text(step)
        ax.set_title(title, fontsize=7)
        if flows is not None:
            ax = axes[1, k]
            ax.imshow(to_numpy_image(frames[0]), cmap="gray", vmin=0, vmax=1, alpha=0.4)
            plot_flow(ax, flows[step])
            ax.axis("off")
    fig.tight_layout()
    plt.show()
    widgets = _interactive_widgets() if interactive else None
    if widgets is None:
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


def _plan_label(index: int, plan_shape: tuple[int, ...]) -> str:
    """``p[c, r, k]`` style name of a flat plan index on its grid (the channel is left out when there is one)."""
    position = np.unravel_index(index, plan_shape)
    if plan_shape[0] == 1:
        position = position[1:]
    return "p[" + ",".join(str(int(i)) for i in position) + "]"


def _quiver(ax, delta, every: int = 2, color: str = "tab:cyan"):
    """Arrows of a small field ``(2, H, W)`` scaled so the longest is ~``2 * every`` pixels; returns the scale."""
    delta = delta.detach().cpu().numpy() if isinstance(delta, torch.Tensor) else np.asarray(delta)
    _, height, width = delta.shape
    peak = float(np.abs(delta).max())
    if peak < 1e-12:
        return 0.0
    gain = 2.0 * every / peak
    rows, cols = np.mgrid[every // 2:height:every, every // 2:width:every]
    sub = delta[:, every // 2::every, every // 2::every]
    keep = np.hypot(sub[0], sub[1]) > 0.05 * peak  # no dots where nothing moves
    rows, cols, sub = rows[keep], cols[keep], sub[:, keep]
    # a pull-back field: the pixel at x shows what was at x + u, so content moves by -u; draw that motion
    ax.quiver(cols, rows, -gain * sub[1], gain * sub[0], color=color, angles="xy", scale_units="xy", scale=1,
              width=0.012, headwidth=3.5, headlength=4)
    return gain


def plan_explorer(planner, actor, state, components=None, values=(-2.0, 0.0, 2.0), limit: float = 3.0,
                  flow_scale: float = 1.0, interactive: bool = True, base: str = "mean"):
    """Move a few plan components by hand and see what the actor decodes: the flow and the warped image.

    ``state``: uint8 ``(1, 2, H, W)`` or ``(2, H, W)``, channel 0 fixed and 1 moved (a registration
    observation). The base plan is the planner's mean for ``state`` (``base="mean"``) or zeros
    (``base="zero"``); each of ``components`` (flat plan indices; default four spread over the plan grid)
    gets an offset. Draws a static grid first: rows are components, columns the offsets ``values``; each
    panel shows the warped image, its decoded field as a red grid (``flow_scale`` times enlarged) and, in
    cyan, how the content moves relative to the base plan (arrows rescaled to be visible: the title gives
    the true size). Then, when ``interactive`` and ipywidgets is importable, returns a ``VBox`` of sliders
    (offsets in ``[-limit, limit]``) over a live panel; else None.
    """
    import matplotlib.pyplot as plt

    from .envs.common import quantise
    from .nn.functional import dice_score, warp
    from .policy import eval_mode

    state = torch.as_tensor(state)
    if state.dim() == 3:
        state = state.unsqueeze(0)
    if state.dim() != 4 or state.shape[0] != 1 or state.shape[1] != 2:
        raise ValueError(f"plan_explorer needs one 2-D registration state (1, 2, H, W); got {tuple(state.shape)}")
    if base not in ("mean", "zero"):
        raise ValueError(f"base must be 'mean' or 'zero'; got {base!r}")
    device = next(planner.parameters()).device
    state = state.to(device)
    plan_shape = (planner.plan_channels, *planner.plan_grid)
    plan_dim = int(np.prod(plan_shape))
    if components is None:
        grid = planner.plan_grid
        spots = [(grid[0] // 4, grid[1] // 4), (grid[0] // 4, 3 * grid[1] // 4), (grid[0] // 2, grid[1] // 2),
                 (3 * grid[0] // 4, grid[1] // 2)]
        components = [int(np.ravel_multi_index((0, *spot), plan_shape)) for spot in spots]
    components = [int(c) for c in components]
    bad = [c for c in components if not 0 <= c < plan_dim]
    if bad:
        raise ValueError(f"plan components {bad} are outside the plan's {plan_dim} numbers")
    with torch.no_grad(), eval_mode(planner):
        dist, skips, _ = planner(state)
        base_plan = dist.mean.clone() if base == "mean" else torch.zeros_like(dist.mean)
    fixed_u8, moved_u8 = state[:, :1], state[:, 1:]
    moved = moved_u8.float() / 255.0
    dice_before = float(dice_score(moved_u8 > 0, fixed_u8 > 0)[0])

    def decode(offsets: dict[int, float]):
        plan = base_plan.clone()
        for c, v in offsets.items():
            plan[0, c] += float(v)
        with torch.no_grad(), eval_mode(actor):
            flow = actor(plan, skips)
            warped = warp(moved, flow)
        dice_after = float(dice_score(quantise(warped) > 0, fixed_u8 > 0)[0])
        return flow[0].cpu(), warped[0].cpu(), dice_after

    base_flow = decode({})[0]

    def draw_warped(ax, flow, warped, title):
        ax.imshow(to_numpy_image(warped), cmap="gray", vmin=0, vmax=1)
        plot_flow(ax, flow, step=3, scale=flow_scale)
        _quiver(ax, flow - base_flow)
        ax.set_title(title, fontsize=7)
        ax.axis("off")

    values = list(values)
    fig, axes = plt.subplots(len(components), len(values), figsize=(1.55 * len(values), 1.6 * len(components)),
                             squeeze=False)
    for r, c in enumerate(components):
        for k, v in enumerate(values):
            flow, warped, _ = decode({c: v})
            change = float((flow - base_flow).abs().max())
            draw_warped(axes[r, k], flow, warped, f"{_plan_label(c, plan_shape)} {v:+g}\n"
                        f"max|u| {flow.abs().max():.2f}, |Δu| {change:.2g}px")
    fig.tight_layout()
    plt.show()
    widgets = _interactive_widgets() if interactive else None
    if widgets is None:
        return None
    sliders = [widgets.FloatSlider(value=0.0, min=-limit, max=limit, step=0.25, continuous_update=False,
                                   description=_plan_label(c, plan_shape)) for c in components]
    output = widgets.Output()

    def render(change=None):
        flow, warped, dice_after = decode({c: s.value for c, s in zip(components, sliders)})
        with output:
            output.clear_output(wait=True)
            figure, (a0, a1, a2) = plt.subplots(1, 3, figsize=(6.6, 2.5))
            a0.imshow(to_numpy_image(fixed_u8[0]), cmap="gray", vmin=0, vmax=1)
            a0.set_title(f"fixed\nDice before {dice_before:.3f}", fontsize=8)
            a0.axis("off")
            draw_warped(a1, flow, warped, f"warped (grid x{flow_scale:g}, cyan: change)\n"
                        f"Dice after {dice_after:.3f}")
            change_map = (warped - moved[0].cpu())[0].numpy()
            bound = max(float(np.abs(change_map).max()), 1e-6)
            a2.imshow(change_map, cmap="bwr", vmin=-bound, vmax=bound)
            a2.set_title(f"warped - moved (±{bound:.2g})\nmax|u| {flow.abs().max():.2f}px", fontsize=8)
            a2.axis("off")
            figure.tight_layout()
            plt.show()

    for s in sliders:
        s.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox(sliders[:2]), widgets.HBox(sliders[2:]), output])


def method_diagram(plan_dim: int = 49, plan_grid: str = "1x7x7", state_shape: str = "2x28x28",
                   action_shape: str = "2x28x28", reward: str = "10 ΔDice (+1 if done)", ax=None):
    """The RL-I2IT loop as boxes and arrows: state -> planner -> plan -> actor -> action -> env, and the
    critic scoring (state, plan); the defaults describe the digits task. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        fig, ax = plt.subplots(figsize=(8.4, 3.2))
    else:
        fig = ax.figure
    ax.set_xlim(0, 10.4)
    ax.set_ylim(-0.15, 4.0)
    ax.axis("off")
    row_y = 1.65  # the main row: state, planner, plan, actor, action
    boxes = {  # name: (x, y, text, colour)
        "state": (0.15, row_y, f"state $s_t$\n(fixed, moved)\n{state_shape} uint8", "#e8eef7"),
        "planner": (2.25, row_y, "planner $\\psi$\nencoder", "#cfe3c9"),
        "plan": (4.25, row_y, f"plan $p_t$\n{plan_dim} numbers\n({plan_grid})", "#fbe3b3"),
        "actor": (6.25, row_y, "actor $\\phi$\ndecoder", "#cfe3c9"),
        "action": (8.3, row_y, f"action $a_t$\nflow {action_shape}\npixels", "#f6d0cb"),
        "critic": (4.25, row_y + 1.45, "critic $Q(s_t, p_t)$", "#e3d5f0"),
        "env": (4.25, 0.0, f"env: compose + warp\nreward $r_t$ = {reward}", "#eeeeee"),
    }
    width, height = 1.85, 0.85
    centres = {}
    for name, (x, y, text, colour) in boxes.items():
        w = 3.4 if name == "env" else width
        xx = x - (w - width) / 2
        ax.add_patch(FancyBboxPatch((xx, y), w, height, boxstyle="round,pad=0.04", fc=colour, ec="0.3", lw=0.8))
        ax.text(xx + w / 2, y + height / 2, text, ha="center", va="center", fontsize=7.5)
        centres[name] = (xx, y, w)

    def arrow(start, end, ls="-", rad=0.0, colour="0.2"):
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0, ls=ls,
                                                            connectionstyle=f"arc3,rad={rad}"))

    mid = row_y + height / 2
    for a, b in (("state", "planner"), ("planner", "plan"), ("plan", "actor"), ("actor", "action")):
        xa, _, wa = centres[a]
        xb, _, _ = centres[b]
        arrow((xa + wa + 0.04, mid), (xb - 0.04, mid))
    xp, _, wp = centres["planner"]
    xa, _, _ = centres["actor"]
    arrow((xp + wp / 2, row_y - 0.04), (xa + width / 2, row_y - 0.04), ls="--", rad=0.25, colour="tab:green")
    ax.text((xp + wp / 2 + xa + width / 2) / 2, row_y - 0.62, "skips (encoder features)", ha="center", va="top",
            fontsize=7, color="tab:green")
    critic_y = row_y + 1.45
    arrow((4.25 + width / 2, row_y + height + 0.04), (4.25 + width / 2, critic_y - 0.04))
    xs, _, ws = centres["state"]
    arrow((xs + ws / 2, row_y + height + 0.04), (4.25 - 0.06, critic_y + height / 2), rad=-0.25)
    xe, ye, we = centres["env"]
    xact, _, wact = centres["action"]
    arrow((xact + wact / 2, row_y - 0.04), (xe + we + 0.04, ye + height / 2), rad=-0.3)
    arrow((xe - 0.04, ye + height / 2), (xs + ws / 2, row_y - 0.04), rad=-0.3)
    ax.text(xs + ws / 2 + 0.15, 0.55, "$s_{t+1}$", fontsize=8, color="0.2")
    fig.tight_layout()
    return fig


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_figure(fig, path, runs: list[str] | None = None, config: dict | None = None, seed: int | None = None,
                palette_colours: int | None = None, **extra) -> Path:
    """Save ``fig`` (PNG) with a provenance sidecar ``<name>.json``: runs, config, seed, commit, date.
    ``palette_colours``: store the PNG with that many colours (``quantize_png``; for image grids a reviewer keeps in
    git: about 4x smaller, the sidecar says so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if palette_colours:
        quantize_png(path, palette_colours)
        extra["palette_colours"] = palette_colours
    sidecar = {"figure": path.name, "runs": runs or [], "config": config, "seed": seed, "commit": git_commit(),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str))
    return path


def quantize_png(path, colours: int = 256) -> Path:
    """Rewrite the PNG at ``path`` with an adaptive palette of ``colours`` colours (median cut), in place."""
    from PIL import Image

    path = Path(path)
    with Image.open(path) as image:
        quantized = image.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    quantized.save(path, optimize=True)
    return path


def comparison_figure(comparison: dict):
    """Two panels of a ``comparison.json``: the score per step of the multi-step methods (mean over seeds), and
    every method's final score with its 95 % interval (the dashed line: the identity)."""
    import matplotlib.pyplot as plt

    metric = comparison["metric"]
    methods = comparison["methods"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
    for name in ("rl", "aux_only", "cascade", "one_step_iterated", "rl_plan_shuffled", "rl_plan_zero"):
        if name in methods and len(methods[name]["per_step"]) > 2:
            left.plot(range(len(methods[name]["per_step"])), methods[name]["per_step"], marker="o", markersize=2,
                      label=name, linestyle="--" if name.startswith("rl_plan") else "-")
    if "one_step" in methods:
        left.axhline(methods["one_step"]["final"], color="black", linewidth=0.8, label="one_step (T = 1)")
    left.set_xlabel("step")
    left.set_ylabel(metric["name"])
    left.legend(fontsize=7)
    left.set_title("per step, mean over seeds", fontsize=9)
    names = [n for n in methods if n != "identity"]
    finals = [methods[n]["final"] for n in names]
    low = [methods[n]["final"] - methods[n]["ci95"][0] for n in names]
    high = [methods[n]["ci95"][1] - methods[n]["final"] for n in names]
    right.errorbar(range(len(names)), finals, yerr=[np.maximum(low, 0), np.maximum(high, 0)], fmt="o", capsize=3)
    if "identity" in methods:
        right.axhline(methods["identity"]["final"], color="grey", linestyle="--", linewidth=0.8, label="identity")
        right.legend(fontsize=7)
    right.set_xticks(range(len(names)))
    right.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    arrow = "higher" if metric["higher_is_better"] else "lower"
    right.set_title(f"final {metric['name']} ({arrow} is better), 95 % interval; {len(comparison['seeds'])} seed(s), "
                    f"{comparison['budget']['updates']} updates each", fontsize=9)
    fig.tight_layout()
    return fig


def contrasts_figure(frame):
    """``report.contrast_frame`` as one panel per contrast: each task's paired difference relative to the policy's
    own gain over the identity, with its 95 % interval; filled markers are significant. One row per (task, preset)."""
    import matplotlib.pyplot as plt

    contrasts = list(dict.fromkeys(frame["contrast"]))
    frame = frame.assign(row=frame["task"] + " (" + frame["preset"] + ")")
    tasks = list(dict.fromkeys(frame["row"]))
    fig, axes = plt.subplots(1, len(contrasts), figsize=(3.1 * len(contrasts), 0.45 * len(tasks) + 1.6),
                             sharey=True, squeeze=False)
    for ax, contrast in zip(axes[0], contrasts):
        part = frame[frame["contrast"] == contrast]
        for _, row in part.iterrows():
            y = tasks.index(row["row"])
            ax.plot([row["relative_low"], row["relative_high"]], [y, y], color="tab:blue", linewidth=1.5)
            ax.plot(row["relative"], y, "o", color="tab:blue", markerfacecolor="tab:blue" if row["significant"]
                    else "white")
        ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(contrast, fontsize=8)
        ax.set_xlabel("difference / policy's gain", fontsize=8)
    axes[0][0].set_yticks(range(len(tasks)))
    axes[0][0].set_yticklabels(tasks)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig


def alpha_sigma_traces(rows: list[dict]):
    """``designs.design_rows`` as three panels over learner updates: α (log scale), the plan's mean σ and its
    minimum, one line per design (mean over seeds; the band spans the seeds). Does the temperature regulate
    anything, and does σ leave its bound?"""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    for row in rows:
        traces = [t for t in row.get("traces", {}).values() if t]
        if not traces:
            continue
        length = min(len(t) for t in traces)
        updates = [traces[0][k]["updates"] for k in range(length)]
        for ax, key in zip(axes, ("alpha", "sigma", "sigma_min")):
            values = np.array([[t[k][key] if t[k][key] is not None else np.nan for k in range(length)]
                               for t in traces], dtype=float)
            line, = ax.plot(updates, np.nanmean(values, 0), label=row["design"])
            ax.fill_between(updates, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.15)
    axes[0].set_yscale("log")
    for ax, title in zip(axes, ("α (temperature)", "σ, mean over plan numbers", "σ, minimum")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("learner updates", fontsize=8)
    axes[1].axhline(1.0, color="grey", linestyle="--", linewidth=0.8)  # the bound σ <= 1
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def who_trains_what(detach_plan_grad: bool = False):
    """The learner update as a picture: the forward pass (grey) from the state through the planner's encoder, the
    plan head, the plan, the actor's skips and decoder to the action, and the critic; and, per loss, the networks
    its gradient reaches (coloured dashed arrows, drawn along the path the gradient takes backwards).
    ``detach_plan_grad=True`` draws the authors' ``sample()``: the −Q arrow stops at the plan."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    boxes = {"state": (0.8, 2.0, "state s"), "encoder": (3.0, 2.0, "planner encoder"),
             "head": (5.2, 3.1, "plan head\n(μ, σ)"), "plan": (7.4, 3.1, "plan p ~ π(·|s)"),
             "skips": (5.2, 0.9, "skips\n(encoder features)"), "actor": (9.6, 2.0, "actor decoder"),
             "action": (11.8, 2.0, "action a\n(field, patch, image)"),
             "critic": (9.6, 4.4, "critic Q(s, p)\n(own encoder)"), "alpha": (11.8, 4.4, "temperature α")}
    fig, ax = plt.subplots(figsize=(12.5, 4.8))
    for name, (x, y, text) in boxes.items():
        ax.add_patch(FancyBboxPatch((x - 0.75, y - 0.33), 1.5, 0.66, boxstyle="round,pad=0.05", facecolor="#f2f2f2",
                                    edgecolor="grey"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(a, b, color="grey", style="-", offset=0.0):
        """From the edge of box ``a`` to the edge of box ``b`` (``offset``: shifted up or down, to keep the forward
        arrow and the gradient arrows of one edge apart)."""
        (x0, y0, _), (x1, y1, _) = boxes[a], boxes[b]
        dx, dy = x1 - x0, y1 - y0
        t = min(0.82 / abs(dx) if dx else np.inf, 0.4 / abs(dy) if dy else np.inf)  # where the line leaves a box
        ax.annotate("", xy=(x1 - t * dx, y1 - t * dy + offset), xytext=(x0 + t * dx, y0 + t * dy + offset),
                    arrowprops=dict(arrowstyle="->", color=color, linestyle=style, lw=1.4 if style == "-" else 1.8,
                                    shrinkA=0, shrinkB=0))

    for a, b in (("state", "encoder"), ("encoder", "head"), ("head", "plan"), ("encoder", "skips"),
                 ("plan", "actor"), ("skips", "actor"), ("actor", "action"), ("plan", "critic")):
        arrow(a, b)
    aux, rl, td, temp = "tab:blue", "tab:red", "tab:green", "tab:purple"
    # the auxiliary loss on the action: back through the decoder, into both of its inputs
    for a, b in (("action", "actor"), ("actor", "skips"), ("skips", "encoder"), ("actor", "plan"), ("plan", "head"),
                 ("head", "encoder")):
        arrow(a, b, aux, "--", offset=-0.14)
    # −min Q(s, p) + α log π: through the plan into the planner, the critic frozen; log π reaches the head directly
    if not detach_plan_grad:
        for a, b in (("critic", "plan"), ("plan", "head"), ("head", "encoder")):
            arrow(a, b, rl, "--", offset=0.14)
    ax.text(boxes["critic"][0] - 0.9, boxes["critic"][1] + 0.5, "TD loss → critic only", color=td, fontsize=8)
    ax.text(boxes["alpha"][0] - 0.6, boxes["alpha"][1] + 0.5, "temperature loss → α only", color=temp, fontsize=8)
    handles = [plt.Line2D([], [], color=aux, linestyle="--", label="auxiliary loss (task's): actor, skips, plan, "
                                                                    "encoder"),
               plt.Line2D([], [], color=rl, linestyle="--",
                          label="−min Q + α log π (SAC), and the plan's KL bound: plan head and encoder, never "
                                "the actor"
                          + (" (cut by sample(): only α log π remains)" if detach_plan_grad else "")),
               plt.Line2D([], [], color="grey", label="forward pass")]
    ax.legend(handles=handles, loc="lower right", fontsize=7.5, frameon=False)
    ax.set_xlim(-0.1, 12.7)
    ax.set_ylim(0.2, 5.1)
    ax.axis("off")
    ax.set_title("Who trains what in one learner update" + (" (the authors' sample() bug)" if detach_plan_grad else ""),
                 fontsize=10)
    return fig
