"""Chapter 20's machinery: the paper's figure types and result tables, redrawn from run directories, each file with a
provenance sidecar (``make figures``).

==============================  =====================================================================================
``TASKS``                       (task, chapter, chapter notebook, what the paper shows), in the paper's order
``RunIndex(runs_root, preset)``  the runs of a task at a preset, a chapter's main run, and the inventory table
``FigureWriter(out, index)``     ``save`` (PNG + sidecar naming runs, configs, seeds, commit, date) and ``placeholder``
``step_panel``                  a task chapter's step-by-step picture, gathered with its own sidecar carried along
``digits_grid``                 the authors' MNIST grid (target / source / one-step / ours), from a checkpoint
``per_step_figure``             the protocol's metrics at every step, with the identity and the one-step baseline
``learning_curves``             every run's episode score over env steps, mean and 95 % band over the runs
``result_tables``               each chapter's ``eval_table.csv`` as CSV + markdown + sidecar, and ``results.md``
==============================  =====================================================================================
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from . import viz

__all__ = ["TASKS", "RunIndex", "FigureWriter", "step_panel", "digits_grid", "per_step_figure", "learning_curves",
           "markdown_table", "result_tables", "PANELS", "CURVES"]


class FigureTask(NamedTuple):
    task: str
    chapter: str
    notebook: str
    shows: str


TASKS = [
    FigureTask("digits", "10", "10_digits_transform.ipynb", "MNIST digit transformation, Dice"),
    FigureTask("face", "11", "11_face_inpainting.ipynb", "face inpainting, PSNR/SSIM"),
    FigureTask("photo", "12", "12_photo_translation.ipynb", "paired photo translation (generated facades), PSNR/SSIM"),
    FigureTask("image_style", "13", "13_image_style.ipynb", "image style transfer, style/content loss"),
    FigureTask("video_style", "14", "14_video_style.ipynb", "video style transfer, temporal error"),
    FigureTask("brain2d", "15", "15_medical_registration.ipynb", "brain MRI registration, Dice"),
]

#: task -> the step-by-step picture its chapter writes into ``<run>/figures/``
PANELS = {"digits": "eight_to_zero.png", "face": "patch_step_by_step.png", "photo": "image_step_by_step.png",
          "image_style": "stylised_step_by_step.png", "video_style": "stylised_strip.png", "brain2d": "brain_steps.png"}
#: task -> [(metric in eval.json's "tables", label, scale of the plotted values)]
CURVES = {"digits": [("dice", "Dice", 1)], "brain2d": [("dice", "Dice (GM, WM mean)", 1)],
          "face": [("psnr_hole", "PSNR of the hole (dB)", 1), ("ssim_hole", "SSIM of the hole", 1)],
          "photo": [("psnr", "PSNR (dB)", 1), ("ssim", "SSIM", 1)],
          "image_style": [("total", "style-transfer loss L", 1), ("style", "style loss", 1)],
          "video_style": [("temporal_error_real", "temporal error, real clips (x100)", 100),
                          ("total_loss", "style-transfer loss", 1)]}
#: task -> {curve label: the eval_table.csv column with the same quantity}
BASELINE_COLUMN = {"digits": {"Dice": "Dice"}, "brain2d": {"Dice (GM, WM mean)": "Dice"},
                   "face": {"PSNR of the hole (dB)": "PSNR hole", "SSIM of the hole": "SSIM hole"},
                   "photo": {"PSNR (dB)": "PSNR", "SSIM": "SSIM"},
                   "image_style": {"style-transfer loss L": "L", "style loss": "style"},
                   "video_style": {"temporal error, real clips (x100)": "temporal err. real ×100",
                                   "style-transfer loss": "total loss"}}
BASELINE_WORDS = ("one-step", "baseline", "pix2pix")  # an eval_table row whose name has one of these is the baseline


def read_config(run: Path) -> dict:
    return yaml.safe_load((Path(run) / "config.yaml").read_text())


class RunIndex:
    """The run directories under ``runs_root`` at one preset; a chapter's own run is
    ``<runs_root>/<task>/ch<NN>-<preset>-seed<seed>``."""

    def __init__(self, runs_root: Path, preset: str, seed: int):
        self.runs_root, self.preset, self.seed = Path(runs_root), preset, seed

    def runs_of(self, task: str) -> list[Path]:
        """Every run of ``task`` at this preset with a training log (a chapter's, a sweep's, ...), sorted by path."""
        folder = self.runs_root / task
        configs = sorted(folder.glob("*/config.yaml")) if folder.is_dir() else []
        return [c.parent for c in configs
                if (c.parent / "metrics.jsonl").exists() and read_config(c.parent).get("preset") == self.preset]

    def main_run(self, task: str, chapter: str) -> Path | None:
        """The chapter's own run at this preset and seed, else the first evaluated run of the task at this preset."""
        own = self.runs_root / task / f"ch{chapter}-{self.preset}-seed{self.seed}"
        if (own / "eval.json").exists():
            return own
        evaluated = [run for run in self.runs_of(task) if (run / "eval.json").exists()]
        return evaluated[0] if evaluated else None

    def train_with_chapter(self, entry: FigureTask, notebooks: Path, device: str, summary_dir: Path) -> Path | None:
        """Execute the task's chapter at this preset (a one-job sweep: papermill, its own kernel); its run or None."""
        from . import sweep

        spec = sweep.parse_spec({"sweep": f"ch{entry.chapter}", "notebook": str(Path(notebooks) / entry.notebook),
                                 "grid": {"seed": [self.seed]}, "parameters": {"preset": self.preset, "device": device},
                                 "run_dir": str(self.runs_root / entry.task
                                                / f"ch{entry.chapter}-{self.preset}-seed{self.seed}"),
                                 "summary_dir": str(summary_dir)})
        summary = sweep.run_sweep(spec)
        print(summary[["job", "status", "duration_s", "error"]].to_string(index=False))
        return self.main_run(entry.task, entry.chapter)

    def inventory(self, train=None):
        """``(table, main_runs)``: per task whether its main run exists (and how many runs the preset has);
        ``train(entry) -> run or None`` is called for a missing one when given."""
        import pandas as pd

        rows, main_runs = [], {}
        for entry in TASKS:
            run = self.main_run(entry.task, entry.chapter)
            if run is None and train is not None:
                run = train(entry)
            main_runs[entry.task] = run
            state = (f"missing: run chapter {entry.chapter} first ({entry.notebook}, preset {self.preset})"
                     if run is None else "found")
            rows.append({"task": entry.task, "chapter": entry.chapter, "paper shows": entry.shows, "state": state,
                         "main run": str(run.relative_to(self.runs_root)) if run else "",
                         "runs at this preset": len(self.runs_of(entry.task))})
        return pd.DataFrame(rows).set_index("task"), main_runs


class FigureWriter:
    """Writes figures into ``out``, each with a sidecar; ``written`` lists every file name written, in order."""

    def __init__(self, out: Path, index: RunIndex):
        self.out, self.index, self.written = Path(out), index, []
        self.out.mkdir(parents=True, exist_ok=True)

    def provenance(self, runs: list[Path]) -> dict:
        """Runs (relative to the runs root), their configs (config.yaml, as read) and seeds, for a sidecar."""
        configs = {str(Path(r).relative_to(self.index.runs_root)): read_config(r) for r in runs}
        return {"runs": list(configs), "configs": configs, "seeds": sorted({c.get("seed") for c in configs.values()}),
                "preset": self.index.preset, "runs_root": str(self.index.runs_root)}

    def save(self, fig, name: str, runs: list[Path], **extra) -> Path:
        info = self.provenance(runs)
        seeds = info.pop("seeds")
        path = viz.save_figure(fig, self.out / name, runs=info.pop("runs"), config=info.pop("configs"),
                               seed=seeds[0] if len(seeds) == 1 else None, seeds=seeds, **info, **extra)
        self.written.append(name)
        return path

    def placeholder(self, name: str, title: str, reason: str):
        """A panel that says what is missing and what to run (its sidecar: ``"missing": true``); the figure."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(0.5, 0.28, reason, ha="center", va="center", fontsize=9, color="tab:red", wrap=True)
        self.save(fig, name, [], missing=True, reason=reason)
        return fig

    def sidecars(self) -> dict[str, dict]:
        """figure name -> its sidecar, for every PNG written."""
        return {name: json.loads((self.out / name).with_suffix(".json").read_text())
                for name in self.written if name.endswith(".png")}


def step_panel(writer: FigureWriter, entry: FigureTask, run: Path | None, why_missing: str):
    """``steps_<task>.png``: the chapter's step-by-step picture with a title, or a placeholder; the figure."""
    import matplotlib.pyplot as plt

    name = f"steps_{entry.task}.png"
    source = run / "figures" / PANELS[entry.task] if run is not None else None
    if source is None or not source.exists():
        reason = why_missing if run is None else f"{source} is missing: re-run chapter {entry.chapter}"
        return writer.placeholder(name, f"{entry.task}: step-by-step translation", reason)
    image = plt.imread(source)
    fig, ax = plt.subplots(figsize=(image.shape[1] / 120, image.shape[0] / 120 + 0.3))
    ax.imshow(image)
    ax.axis("off")
    ax.set_title(f"{entry.task}: {entry.shows.split(',')[0]}, step by step ({writer.index.preset}, seed "
                 f"{read_config(run)['seed']})", fontsize=9)
    sidecar = source.with_suffix(".json")
    writer.save(fig, name, [run], source_figure=str(source), palette_colours=256,
                source_provenance=json.loads(sidecar.read_text()) if sidecar.exists() else None)
    return fig


def digits_grid(run: Path, device: str = "cpu", preset: str = ""):
    """The authors' MNIST figure from a digits run: columns target / source / one-step baseline (when the chapter
    kept ``one_step_baseline.pt``) / ours, for four same-class and four cross-class held-out test pairs picked with
    a fixed seed; titles give each pair's Dice. ``(figure, sidecar extras)``."""
    import torch

    from .checkpoint import load_checkpoint
    from .data import load_mnist
    from .evaluate import rollout_registration
    from .nn.functional import dice_score
    from .policy import PlannerPolicy
    from .tasks import make_task
    from .train import load_run

    trainer = load_run(run, device=device)
    cfg, task = trainer.cfg, trainer.task
    baseline_file = Path(run) / "one_step_baseline.pt"
    baseline = None
    if baseline_file.exists():
        stored = load_checkpoint(baseline_file, map_location=trainer.device)
        baseline = make_task(cfg, trainer.device)
        baseline.actor.max_step = cfg.image_size / 4  # the baseline's one large step, as chapter 10 trained it
        baseline.planner.load_state_dict(stored["networks"]["planner"])
        baseline.actor.load_state_dict(stored["networks"]["actor"])
    test = load_mnist("test", cfg.data_source)
    generator = torch.Generator().manual_seed(7)
    pairs = {True: [], False: []}
    while len(pairs[True]) < 4 or len(pairs[False]) < 4:
        i, j = torch.randint(0, len(test.images), (2,), generator=generator).tolist()
        same = bool(test.labels[i] == test.labels[j])
        if i != j and len(pairs[same]) < 4:
            pairs[same].append((i, j))
    chosen = pairs[True] + pairs[False]
    moving = test.images[[i for i, _ in chosen]].unsqueeze(1).to(trainer.device)
    fixed = test.images[[j for _, j in chosen]].unsqueeze(1).to(trainer.device)

    def register(planner, actor, steps):
        env = task.make_env(task.env.sampler, len(moving), auto_reset=False)
        return rollout_registration(PlannerPolicy(planner, actor), env, moving, fixed, steps)["moved"][-1]

    columns = {"target": fixed, "source": moving}
    if baseline is not None:
        columns["one-step baseline"] = register(baseline.planner, baseline.actor, 1)
    columns[f"ours (T={cfg.eval_steps})"] = register(trainer.planner, trainer.actor, cfg.eval_steps)
    images, titles = [], []
    for k, (i, j) in enumerate(chosen):
        for label, batch in columns.items():
            images.append(batch[k].cpu())
            if label == "target":
                titles.append(f"target {int(test.labels[j])} ({'same' if k < 4 else 'cross'})")
            else:
                dice = dice_score(batch[k:k + 1] > 0, fixed[k:k + 1] > 0).item()
                titles.append(f"{label if k == 0 else label.split(' (')[0]}\nDice {dice:.2f}")
    fig = viz.show_images(images, titles, ncols=len(columns), size=1.45)
    fig.suptitle(f"digits: same-class (rows 1-4) and cross-class (rows 5-8) test pairs, {preset}", fontsize=9,
                 y=1.01)
    return fig, {"test_pairs": chosen, "baseline": str(baseline_file) if baseline else None}


def _per_step(results: dict, metric: str):
    """A metric's per-step values from an eval.json (every task has the same schema); None when absent."""
    return (results.get("tables", {}).get(metric) or {}).get("per_step")


def eval_table(run: Path):
    import pandas as pd

    path = Path(run) / "eval_table.csv"
    return pd.read_csv(path, index_col=0) if path.exists() else None


def per_step_figure(task: str, run: Path, preset: str = ""):
    """The task's ``CURVES`` at every step from ``eval.json``, the identity (step 0, dotted) and the one-step
    baseline of the chapter's ``eval_table.csv`` (dashed). The figure."""
    import matplotlib.pyplot as plt

    results = json.loads((Path(run) / "eval.json").read_text())
    table = eval_table(run)
    curves = [(key, label, scale) for key, label, scale in CURVES[task] if _per_step(results, key) is not None]
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3), squeeze=False)
    for ax, (key, label, scale) in zip(axes.flat, curves):
        values = [scale * v for v in _per_step(results, key)]
        ax.plot(range(len(values)), values, marker="o", markersize=3, label="RL-I2IT (ours)")
        if task == "digits" and _per_step(results, "dice_same_class") is not None:
            ax.plot(range(len(values)), _per_step(results, "dice_same_class"), marker="o", markersize=3,
                    label="ours, same class")
        ax.axhline(values[0], color="gray", linestyle=":", label="identity (step 0)")
        column = BASELINE_COLUMN[task].get(label)
        if table is not None and column in table.columns:
            for method in table.index:
                if any(word in method.lower() for word in BASELINE_WORDS):
                    ax.axhline(table.loc[method, column], color="tab:red", linestyle="--", label=method)
        ax.set_xlabel("step t")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    counts = [(results["details"].get(k), what) for k, what in (("n_faces", "faces"), ("n_pairs", "pairs"),
                                                                ("n_images", "images"), ("n_real", "real clips"))]
    held_out = ", ".join(f"{n} held-out {what}" for n, what in counts if n) or "held-out data"
    fig.suptitle(f"{task}: {held_out}, {preset}", fontsize=9)
    fig.tight_layout()
    return fig


def learning_curves(index: RunIndex):
    """``(figure, runs)``: every run's episode score over env steps, one panel per task, seaborn's mean and 95 %
    bootstrap band over the runs (no band for one run, said in the title); ``(None, [])`` when no run has a log."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from .rundir import read_metrics_jsonl

    frames, runs = [], []
    for entry in TASKS:
        for run in index.runs_of(entry.task):
            rows = read_metrics_jsonl(run)  # a torn last line (a killed run) is dropped
            if rows and "episode_score" in rows[0]:
                frames.append(pd.DataFrame(rows).assign(task=entry.task, run=run.name,
                                                        seed=read_config(run).get("seed")))
                runs.append(run)
    if not frames:
        return None, []
    curves = pd.concat(frames, ignore_index=True)
    tasks_drawn = list(dict.fromkeys(curves["task"]))
    fig, axes = plt.subplots(1, len(tasks_drawn), figsize=(4 * len(tasks_drawn), 3), squeeze=False)
    for ax, task in zip(axes.flat, tasks_drawn):
        part = curves[curves["task"] == task]
        n = part["run"].nunique()
        sns.lineplot(data=part, x="env_steps", y="episode_score", errorbar=("ci", 95) if n > 1 else None, ax=ax)
        ax.set_title(f"{task}: {n} run(s), seeds {sorted(part['seed'].unique().tolist())}"
                     + ("" if n > 1 else " (one run: no band)"), fontsize=8)
        ax.set_xlabel("env steps")
        ax.set_ylabel("score at episode end")
    fig.tight_layout()
    return fig, runs


def markdown_table(frame) -> str:
    """A DataFrame as a markdown table: integers without decimals, 4 significant digits, NaN as "not measured"."""
    def cell(value):
        if isinstance(value, float):
            if np.isnan(value):
                return "not measured"
            return str(int(value)) if value.is_integer() else f"{value:.4g}"
        return str(value)

    header = "| " + " | ".join([frame.index.name or "method", *map(str, frame.columns)]) + " |"
    lines = [header, "|" + "---|" * (len(frame.columns) + 1)]
    lines += ["| " + " | ".join([str(index), *(cell(v) for v in row)]) + " |"
              for index, row in zip(frame.index, frame.values)]
    return "\n".join(lines)


def result_tables(writer: FigureWriter, main_runs: dict, why_missing: dict) -> dict:
    """Each task's ``eval_table.csv`` (parameters added where the chapter did not count them, "ms / image" marked not
    measured where it did not time them) as ``results_<task>.csv``/``.md``/``.json`` (sidecar), and every section in
    ``results.md``. Returns ``{task: table}`` for the tasks with one."""
    import pandas as pd

    from .config import from_yaml
    from .tasks import make_task

    sections, tables = [f"# Result tables ({writer.index.preset} preset)\n"], {}
    for entry in TASKS:
        run = main_runs.get(entry.task)
        table = eval_table(run) if run is not None else None
        if table is None:
            sections.append(f"## {entry.task}\n\n"
                            f"{why_missing[entry.task] if run is None else 'eval_table.csv is missing'}\n")
            continue
        if "parameters" not in table.columns:
            policy = make_task(from_yaml((run / "config.yaml").read_text()), "cpu")
            count = sum(p.numel() for m in (policy.planner, policy.actor) for p in m.parameters())
            table["parameters"] = [0 if method == "identity" else count for method in table.index]
        if not any(column.startswith("ms") for column in table.columns):
            table["ms / image"] = np.nan
        name = f"results_{entry.task}"
        table.to_csv(writer.out / f"{name}.csv")
        text = markdown_table(table)
        (writer.out / f"{name}.md").write_text(text + "\n")
        info = writer.provenance([run])
        (writer.out / f"{name}.json").write_text(json.dumps({"table": f"{name}.csv", **info, "commit": viz.git_commit(),
                                                             "date": pd.Timestamp.now(tz="UTC").isoformat()},
                                                            indent=2, default=str))
        writer.written += [f"{name}.csv", f"{name}.md"]
        sections.append(f"## {entry.task} (run `{info['runs'][0]}`)\n\n{text}\n")
        tables[entry.task] = table
    (writer.out / "results.md").write_text("\n".join(sections))
    writer.written.append("results.md")
    return tables
