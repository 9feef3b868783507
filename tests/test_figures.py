"""Chapter 20's machinery (rl_i2it/figures.py) on run directories made here: inventory, sidecars, placeholders,
per-step curves, learning curves over seeds and the result tables."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from rl_i2it import figures  # noqa: E402
from rl_i2it.config import make_config, to_yaml  # noqa: E402


def make_run(root, task, name, seed, preset="smoke", evaluated=True, table=None):
    run = root / task / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(make_config(task, preset, seed=seed)))
    rows = [{"env_steps": 64 * (k + 1), "episode_score": 0.5 + 0.1 * k + 0.01 * seed} for k in range(4)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if evaluated:
        (run / "eval.json").write_text(json.dumps({"tables": {"dice": {"per_step": [0.4, 0.6, 0.7]},
                                                              "dice_same_class": {"per_step": [0.5, 0.7, 0.8]}},
                                                   "details": {"n_pairs": 8}}))
    if table is not None:
        table.to_csv(run / "eval_table.csv")
    return run


def test_inventory_main_runs_and_missing_tasks(tmp_path):
    runs = tmp_path / "runs"
    own = make_run(runs, "digits", "ch10-smoke-seed0", 0)
    make_run(runs, "digits", "sweep-seed1", 1)
    make_run(runs, "digits", "ch10-course-seed0", 0, preset="course")  # another preset: not counted
    index = figures.RunIndex(runs, "smoke", 0)
    assert index.runs_of("digits") == [own, runs / "digits" / "sweep-seed1"]
    assert index.main_run("digits", "10") == own
    assert figures.RunIndex(runs, "smoke", 5).main_run("digits", "10") == own  # no seed-5 run: the first evaluated
    trained = []
    inventory, main_runs = index.inventory(train=lambda entry: trained.append(entry.task))
    assert main_runs["digits"] == own and main_runs["face"] is None
    assert inventory.loc["digits", "state"] == "found" and inventory.loc["digits", "runs at this preset"] == 2
    assert "run chapter 11 first" in inventory.loc["face", "state"]
    assert trained == [e.task for e in figures.TASKS if e.task != "digits"]  # asked to train only what is missing


def test_figures_tables_and_sidecars(tmp_path):
    runs = tmp_path / "runs"
    table = pd.DataFrame({"Dice": [0.4, 0.6, 0.7], "train s": [0.0, 10.0, 10.0]},
                         index=pd.Index(["identity", "one-step baseline", "RL-I2IT (ours)"], name="method"))
    run = make_run(runs, "digits", "ch10-smoke-seed0", 0, table=table)
    second = make_run(runs, "digits", "sweep-seed1", 1)
    index = figures.RunIndex(runs, "smoke", 0)
    writer = figures.FigureWriter(tmp_path / "out", index)

    fig = figures.per_step_figure("digits", run, "smoke")
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_ydata()) == [0.4, 0.6, 0.7]  # ours, every step
    assert any(list(line.get_ydata()) == [0.6, 0.6] for line in lines)  # the one-step baseline's row, dashed
    writer.save(fig, "per_step_digits.png", [run])
    curves, curve_runs = figures.learning_curves(index)
    assert curve_runs == [run, second] and "2 run(s), seeds [0, 1]" in curves.axes[0].get_title()
    writer.save(curves, "learning_curves_over_seeds.png", curve_runs)
    writer.placeholder("steps_face.png", "face: step-by-step translation", "missing: run chapter 11 first")
    plt.close("all")

    sidecars = writer.sidecars()
    assert sidecars["per_step_digits.png"]["runs"] == ["digits/ch10-smoke-seed0"]
    assert sidecars["per_step_digits.png"]["seed"] == 0 and sidecars["per_step_digits.png"]["commit"]
    assert sidecars["learning_curves_over_seeds.png"]["seeds"] == [0, 1]
    assert sidecars["steps_face.png"]["missing"] is True and sidecars["steps_face.png"]["runs"] == []

    why = {e.task: f"missing: run chapter {e.chapter} first" for e in figures.TASKS}
    tables = figures.result_tables(writer, {"digits": run}, why)
    written = tables["digits"]
    assert written.loc["identity", "parameters"] == 0 and written.loc["RL-I2IT (ours)", "parameters"] > 0
    assert written["ms / image"].isna().all()  # not timed by the chapter: said so, not invented
    text = (tmp_path / "out" / "results.md").read_text()
    assert "| RL-I2IT (ours) | 0.7 | 10 |" in text and "not measured" in text
    assert "## face\n\nmissing: run chapter 11 first" in text
    assert json.loads((tmp_path / "out" / "results_digits.json").read_text())["runs"] == ["digits/ch10-smoke-seed0"]
    assert writer.written[-3:] == ["results_digits.csv", "results_digits.md", "results.md"]


def test_markdown_table_formats_numbers():
    frame = pd.DataFrame({"a": [1.0, 0.123456], "b": [float("nan"), 2.5]}, index=pd.Index(["x", "y"], name="m"))
    assert figures.markdown_table(frame).splitlines() == ["| m | a | b |", "|---|---|---|",
                                                          "| x | 1 | not measured |", "| y | 0.1235 | 2.5 |"]


def test_contrasts_figure_has_a_row_per_task_and_preset():
    from pathlib import Path

    from rl_i2it.compare import load_comparison
    from rl_i2it.report import contrast_frame
    from rl_i2it.viz import contrasts_figure

    paths = sorted((Path(__file__).resolve().parents[1] / "figures" / "comparisons").glob("*.json"))
    comparisons = [load_comparison(p) for p in paths]
    fig = contrasts_figure(contrast_frame(comparisons))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(f"{c['task']} ({c['preset']})" for c in comparisons)
    plt.close(fig)


def test_a_palette_figure_is_smaller_and_says_so(tmp_path):
    import numpy as np
    from PIL import Image

    from rl_i2it.viz import save_figure

    noise = np.random.default_rng(0).random((64, 256, 3))
    paths = {}
    for colours in (None, 256):
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.imshow(noise)
        paths[colours] = save_figure(fig, tmp_path / f"{colours}.png", palette_colours=colours)
        plt.close(fig)
    with Image.open(paths[256]) as image:
        assert image.mode == "P" and len(image.getcolors(maxcolors=1024)) <= 256
    assert paths[256].stat().st_size < paths[None].stat().st_size
    assert json.loads(paths[256].with_suffix(".json").read_text())["palette_colours"] == 256
    assert "palette_colours" not in json.loads(paths[None].with_suffix(".json").read_text())
