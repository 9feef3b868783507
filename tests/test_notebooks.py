"""The course notebooks: hygiene of the stored files, papermill parameters, and one real papermill run.

Executing every notebook is nbval's job (``pytest --nbval-lax notebooks/``, run by the Makefile); here:

1. every ``notebooks/NN_*.ipynb`` keeps the house rules (DESIGN §8): kernel ``python3``; exactly one cell
   tagged ``parameters`` holding plain literal assignments, each with its comment, at least ``preset``
   (default ``"auto"``), ``device``, ``seed``, ``run_dir`` and ``if_exists`` (default ``"resume"``), followed
   by a ``notebook_setup(...)`` call; no stored outputs or execution counts except in cells marked
   ``# NBVAL_CHECK_OUTPUT``; learning goals, summary and exercises; a solutions file; a row in the README;
2. papermill's parameter inspection (what ``papermill --help-notebook`` prints) lists those parameters;
3. the README's promise: ``papermill notebooks/10_digits_transform.ipynb OUT -p preset smoke -p seed 3
   -p run_dir DIR`` runs to the end and leaves a run directory behind.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMETERS = ("preset", "device", "seed", "run_dir", "if_exists")
REQUIRED_DEFAULTS = {"preset": "auto", "if_exists": "resume"}
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
# papermill needs a Jupyter kernel for the interpreter running the tests; sys.executable makes sure the
# papermill CLI and its python3 kernel come from the same environment (jupyter_client maps "python" to it)
PAPERMILL = [sys.executable, "-m", "papermill"]

notebook_params = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def parameter_cells(nb) -> list[int]:
    return [k for k, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]


def headings(nb) -> list[str]:
    return [line.lstrip("#").strip().lower() for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def test_chapters_exist():
    assert NOTEBOOKS, f"no chapters notebooks/NN_*.ipynb under {NOTEBOOK_DIR}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two chapters share a number: {[p.name for p in NOTEBOOKS]}"


@notebook_params
def test_notebook_is_valid_and_uses_python3(path):
    nb = read(path)
    nbformat.validate(nb)
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{path.name}: kernelspec {kernel!r}; store notebooks with the python3 kernel"


@notebook_params
def test_parameters_cell(path):
    nb = read(path)
    tagged = parameter_cells(nb)
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'; papermill needs exactly one"
    cell = nb.cells[tagged[0]]
    assert cell.cell_type == "code", f"{path.name}: the parameters cell must be a code cell"
    tree = ast.parse(cell.source)
    lines = cell.source.splitlines()
    values = {}
    for statement in tree.body:
        assert isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) \
            and statement.value is not None, \
            f"{path.name}: parameters cell line {statement.lineno} is not an annotated `name: type = literal` " \
            f"assignment (papermill --help-notebook shows the type)"
        name = statement.target.id
        try:
            values[name] = ast.literal_eval(statement.value)
        except ValueError:
            pytest.fail(f"{path.name}: parameter {name!r} is not a literal (papermill and --help-notebook need one)")
        line = lines[statement.end_lineno - 1]
        assert "#" in line and line.split("#", 1)[1].strip(), \
            f"{path.name}: parameter {name!r} needs a comment saying what it does (`{name} = ...  # ...`)"
        assert statement.lineno == statement.end_lineno and line.count("=") == 1, \
            f"{path.name}: papermill skips parameter lines with more than one '=' or spanning lines: {line!r}"
    assert all(len(line) <= 99 for line in lines), \
        f"{path.name}: parameters cell lines over 99 characters overflow JupyterLab at 1,400 px; move detail to a " \
        f"comment line above"
    missing = [name for name in REQUIRED_PARAMETERS if name not in values]
    assert not missing, f"{path.name}: parameters cell lacks {missing}"
    for name, default in REQUIRED_DEFAULTS.items():
        assert values[name] == default, f"{path.name}: {name} defaults to {values[name]!r}; it must be {default!r}"
    later_code = "\n".join(c.source for c in nb.cells[tagged[0] + 1:] if c.cell_type == "code")
    assert "notebook_setup(" in later_code, \
        f"{path.name}: no rl_i2it.notebook.notebook_setup(...) call after the parameters cell"


@notebook_params
def test_outputs_stripped_except_checked_cells(path):
    nb = read(path)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if CHECK_MARKER in cell.source:
            assert cell.outputs, f"{path.name} cell {k}: marked {CHECK_MARKER} but stores no output to check"
            assert cell.execution_count is not None, \
                f"{path.name} cell {k}: a checked cell needs its execution count (nbval calls it unrun otherwise)"
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            assert not errors, f"{path.name} cell {k}: stored output is an error"
        else:
            assert not cell.outputs, f"{path.name} cell {k}: stored outputs; strip them (only {CHECK_MARKER} keeps any)"
            assert cell.execution_count is None, f"{path.name} cell {k}: stored execution count; strip it"


#: JupyterLab at 1,400 px with its file browser open shows ~121 characters of code before a cell scrolls sideways
#: (measured in tests/test_browser.py: a 124-character line overflowed by 13 px)
MAX_CODE_LINE = 120


@notebook_params
def test_code_lines_fit_at_1400px(path):
    long = [(k, len(line)) for k, cell in enumerate(read(path).cells) if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"{path.name}: (cell, length) of code lines over {MAX_CODE_LINE} characters: {long}; wrap them"


@notebook_params
def test_goals_summary_exercises(path):
    nb = read(path)
    first_markdown = [c.source.lower() for c in nb.cells[:4] if c.cell_type == "markdown"]
    assert any("goals" in text for text in first_markdown), f"{path.name}: learning goals must open the chapter"
    found = headings(nb)
    for section in ("summary", "exercises"):
        assert any(section in h for h in found), f"{path.name}: no '{section}' heading"


@notebook_params
def test_solutions_and_readme_row(path):
    number = path.name[:2]
    solutions = sorted((NOTEBOOK_DIR / "solutions").glob(f"{number}_*.md"))
    assert solutions, f"{path.name}: no notebooks/solutions/{number}_*.md with the exercise solutions"
    assert all(s.read_text().strip() for s in solutions), f"{path.name}: empty solutions file"
    readme = NOTEBOOK_DIR / "README.md"
    assert readme.exists() and path.name in readme.read_text(), \
        f"{path.name}: add a row for it to the chapter table in notebooks/README.md"


@notebook_params
def test_papermill_inspection_lists_parameters(path):
    papermill = pytest.importorskip("papermill")
    found = papermill.inspect_notebook(str(path))
    missing = [name for name in REQUIRED_PARAMETERS if name not in found]
    assert not missing, f"{path.name}: papermill does not see parameters {missing}; found {sorted(found)}"
    assert found["preset"]["default"] == '"auto"'
    for name, info in found.items():
        assert info["help"], f"{path.name}: papermill shows no help for {name!r} (the comment after its value)"
        assert info["inferred_type_name"] not in ("None", ""), f"{path.name}: papermill shows no type for {name!r}"


def test_papermill_help_notebook_cli():
    path = NOTEBOOK_DIR / "10_digits_transform.ipynb"
    if not path.exists():
        pytest.skip("chapter 10 not written yet")
    result = subprocess.run([*PAPERMILL, "--help-notebook", str(path)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for name in REQUIRED_PARAMETERS:
        assert re.search(rf"^\s*{name}\b", result.stdout, re.MULTILINE), f"--help-notebook lacks {name}:\n{result.stdout}"


@pytest.mark.slow
def test_papermill_runs_digits_chapter_at_smoke(tmp_path):
    """The README's command: trains the smoke preset (tens of seconds), evaluates, writes figures."""
    path = NOTEBOOK_DIR / "10_digits_transform.ipynb"
    if not path.exists():
        pytest.skip("chapter 10 not written yet")
    out = tmp_path / "10_out.ipynb"
    run_dir = tmp_path / "run"
    env = dict(os.environ)
    env.pop("RL_I2IT_SMOKE", None)  # the explicit -p preset smoke must win on its own
    result = subprocess.run(
        [*PAPERMILL, str(path), str(out), "-p", "preset", "smoke", "-p", "seed", "3", "-p", "run_dir", str(run_dir),
         "--cwd", str(NOTEBOOK_DIR), "--no-progress-bar", "--kernel", "python3"],
        capture_output=True, text=True, timeout=1500, cwd=ROOT, env=env)
    assert result.returncode == 0, f"papermill failed:\n{result.stderr[-4000:]}"
    executed = read(out)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    config = (run_dir / "config.yaml").read_text()
    assert re.search(r"^preset: smoke$", config, re.MULTILINE) and re.search(r"^seed: 3$", config, re.MULTILINE)
    assert (run_dir / "metrics.jsonl").read_text().strip()
    assert (run_dir / "checkpoint.pt").exists()
    figures = sorted((run_dir / "figures").glob("*.png"))
    assert figures, f"no figures in {run_dir / 'figures'}"
    for figure in figures:
        sidecar = json.loads(figure.with_suffix(".json").read_text())
        assert sidecar["seed"] == 3 and sidecar["runs"], f"{figure.name}: provenance sidecar lacks seed or runs"
