"""The README's results are generated from the committed comparison.json files, never typed by hand."""
from __future__ import annotations

import json
import re
from pathlib import Path

from rl_i2it.compare import load_comparison
from rl_i2it.report import BEGIN, END, readme_block

ROOT = Path(__file__).resolve().parents[1]
COMPARISONS = sorted((ROOT / "figures" / "comparisons").glob("*.json"))
DESIGNS = sorted((ROOT / "figures" / "designs").glob("*.json"))  # python -m rl_i2it designs: designs.json files


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
    assert block.group(0) == readme_block(COMPARISONS + DESIGNS), (
        "README.md's results differ from figures/comparisons/*.json and figures/designs/*.json: run "
        "python -m rl_i2it report --readme README.md figures/comparisons/*.json figures/designs/*.json")


def test_committed_designs_name_their_task_and_preset():
    for path in DESIGNS:
        result = json.loads(path.read_text())
        assert path.stem == f"{result['task']}-{result['preset']}", path.name
        assert len(result["seeds"]) >= 3 and result["rows"], path.name
