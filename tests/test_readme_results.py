"""The README's results are generated from the committed comparison.json files, never typed by hand."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rl_i2it.compare import load_comparison
from rl_i2it.report import BEGIN, END, readme_block

ROOT = Path(__file__).resolve().parents[1]
COMPARISONS = sorted((ROOT / "figures" / "comparisons").glob("*.json"))
DESIGNS = sorted((ROOT / "figures" / "designs").glob("*.json"))  # python -m rl_i2it designs: designs.json files
STOPPING = sorted((ROOT / "figures" / "stopping").glob("*.json"))  # python -m rl_i2it stopping
SPEEDUPS = sorted((ROOT / "figures" / "compute").glob("ablate-*.json"))  # bench --ablate (make ablations)
QUALITY = sorted((ROOT / "figures" / "compute").glob("quality-*.json"))  # python -m rl_i2it option-quality
BUDGETS = sorted((ROOT / "figures" / "budgets").glob("*.json"))  # python -m rl_i2it budget
COMMAND = ("python -m rl_i2it report --readme README.md --chapters notebooks --figures figures/synthesis "
           "figures/comparisons/*.json figures/designs/*.json figures/stopping/*.json figures/compute/ablate-*.json "
           "figures/compute/quality-*.json figures/budgets/*.json")


def test_committed_comparisons_are_valid():
    assert COMPARISONS, "figures/comparisons/ holds the comparison.json files the README is generated from"
    for path in COMPARISONS:
        comparison = load_comparison(path)
        assert path.stem == f"{comparison['task']}-{comparison['preset']}", path.name
        assert len(comparison["seeds"]) >= 3, f"{path.name}: a committed comparison has at least 3 seeds"


def test_readme_block_is_what_the_files_say():
    text = (ROOT / "README.md").read_text()
    block = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.S)
    assert block, "README.md has no generated results block"
    assert block.group(0) == readme_block(COMPARISONS + DESIGNS + STOPPING + SPEEDUPS + QUALITY + BUDGETS), (
        f"README.md's results differ from the files in figures/comparisons, figures/designs, figures/stopping, "
        f"figures/compute/ablate-* and quality-* and figures/budgets: run {COMMAND}")
    assert COMMAND in text, "the README names the command that generates its results"


def test_report_kinds_and_synthesis_figures(tmp_path):
    from rl_i2it.report import result_kind, write_figures

    assert {result_kind(p) for p in COMPARISONS} == {"comparison"}
    assert {result_kind(p) for p in DESIGNS} == {"designs"}
    assert STOPPING and {result_kind(p) for p in STOPPING} == {"stopping"}
    assert {result_kind(p) for p in SPEEDUPS} <= {"speedups"}
    assert {result_kind(p) for p in QUALITY} <= {"option_quality"}
    written = write_figures(COMPARISONS + DESIGNS + STOPPING, tmp_path)
    assert [p.name for p in written] == ["plan_authority.png"] + [f"stopping-{p.stem}.png" for p in STOPPING]
    for png in written:
        sidecar = json.loads(png.with_suffix(".json").read_text())
        assert png.stat().st_size > 10_000 and sidecar["sources"] and sidecar["commit"]
    committed = ROOT / "figures" / "synthesis"
    assert sorted(p.name for p in committed.glob("*.png")) == sorted(p.name for p in written), (
        f"figures/synthesis/ is not what the committed results draw: run {COMMAND}")


def test_committed_designs_name_their_task_and_preset():
    for path in DESIGNS:
        result = json.loads(path.read_text())
        overrides = "".join(f"-{k}={v}" for k, v in (result.get("overrides") or {}).items())
        assert path.stem == f"{result['task']}-{result['preset']}{overrides}", (
            f"{path.name}: name a designs file <task>-<preset>[-<field>=<value> per override]")
        assert len(result["seeds"]) >= 3 and result["rows"], path.name


def test_chapter_summaries_state_the_committed_comparisons():
    """Each task chapter's summary carries the generated "measured" bullet of its task's committed comparison."""
    import nbformat

    from rl_i2it.report import CHAPTERS, chapter_comparisons, measured_block

    chosen = chapter_comparisons([load_comparison(p) for p in COMPARISONS])
    assert set(chosen) == set(CHAPTERS), f"a committed comparison for every task chapter: {sorted(chosen)}"
    for task, comparison in chosen.items():
        notebook = nbformat.read(ROOT / "notebooks" / f"{CHAPTERS[task]}.ipynb", as_version=4)
        summary = next(c.source for c in notebook.cells if c.source.startswith("## Summary"))
        assert measured_block(comparison) in summary, (
            f"{CHAPTERS[task]}'s summary differs from its comparison: run python -m rl_i2it report --chapters "
            "notebooks figures/comparisons/*.json")


def test_update_chapters_rewrites_only_the_block_and_refuses_a_chapter_without_it(tmp_path):
    import nbformat

    from rl_i2it.errors import UserError
    from rl_i2it.report import CHAPTERS, MEASURED_BEGIN, MEASURED_END, measured_block, update_chapters

    digits = next(p for p in COMPARISONS if p.stem.startswith("digits-"))
    path = tmp_path / f"{CHAPTERS['digits']}.ipynb"
    before = f"## Summary\n\n* kept\n{MEASURED_BEGIN}\nstale text\n{MEASURED_END}\n\n## Exercises"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(before)]), path)
    assert update_chapters(tmp_path, [digits]) == [str(path)]
    after = nbformat.read(path, as_version=4).cells[0].source
    assert after == before.replace(f"{MEASURED_BEGIN}\nstale text\n{MEASURED_END}",
                                   measured_block(load_comparison(digits)))
    assert update_chapters(tmp_path, [digits]) == []  # already up to date
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Summary")]), path)
    with pytest.raises(UserError, match="needs exactly one markdown cell"):
        update_chapters(tmp_path, [digits])


def test_an_ablation_report_becomes_a_readme_table(tmp_path):
    from rl_i2it.report import result_kind
    from rl_i2it.speedups import ablate

    report = {**ablate("digits", "smoke", options=("memory_format",), rounds=2, total_env_steps=128, num_envs=8,
                       bootstrap_env_steps=32, batch_size=8, buffer_capacity=256, planner_widths=(4, 8, 8),
                       critic_widths=(4, 8, 8)), "measured_at": "2026-12-02"}
    path = tmp_path / "ablate-digits.json"
    path.write_text(json.dumps(report))
    assert result_kind(path) == "speedups"
    block = readme_block(COMPARISONS[:1] + [path])
    assert "### Execution options on this CPU" in block and "measured 2026-12-02" in block
    row = next(line for line in block.splitlines() if line.startswith("| digits (smoke) | memory_format"))
    assert "contiguous → channels_last" in row and f"**{report['options']['memory_format']['update_ratio']:.2f}×**" in row


def test_quality_checks_render_without_an_ablation_file():
    assert QUALITY, "figures/compute/quality-*.json: python -m rl_i2it option-quality --out"
    block = readme_block(COMPARISONS[:1] + QUALITY)
    assert "### Execution options on this CPU" in block and "What an option does to the result" in block
    assert "interleaved over" not in block, "no ablation file: no ablation table"


def test_the_solutions_state_the_committed_budget_studies(tmp_path):
    """Chapters 10 and 11's solutions carry the generated table of their task's committed budget study."""
    import shutil

    from rl_i2it.report import update_solutions

    assert {json.loads(p.read_text())["task"] for p in BUDGETS} >= {"digits", "face"}, (
        "figures/budgets/ holds the digits and face studies (python -m rl_i2it budget --out)")
    shutil.copytree(ROOT / "notebooks" / "solutions", tmp_path / "solutions")
    assert update_solutions(tmp_path, BUDGETS) == [], f"the solutions' budget tables are stale: run {COMMAND}"


@pytest.mark.parametrize("path", COMPARISONS, ids=lambda p: p.stem)
def test_each_committed_comparison_names_the_command_that_reruns_it(path, tmp_path):
    """The README's "Rerun:" line, parsed by the real CLI, builds a comparison whose settings are the file's own
    (the run directory check refuses any difference, e.g. a cascade k other than the one measured)."""
    import shlex

    from rl_i2it.__main__ import _settings, build_parser
    from rl_i2it.compare import _Comparison
    from rl_i2it.report import reproduce_command

    comparison = load_comparison(path)
    words = shlex.split(reproduce_command(comparison).replace("--run-dir DIR", f"--run-dir {tmp_path}"))
    assert words[:3] == ["python", "-m", "rl_i2it"]
    args = build_parser().parse_args(words[3:])
    (tmp_path / "settings.json").write_text(json.dumps(comparison["settings"]))
    rebuilt = _Comparison(args.task, args.preset, args.seeds, args.updates, args.run_dir, _settings(args), "cpu",
                          args.cascade_steps, args.smooth_weights, args.methods, False, sweep=args.sweep)
    assert rebuilt.settings == comparison["settings"]
