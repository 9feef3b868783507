"""rl_i2it.synthesis: the designs and stopping studies as chapter 22 reads them."""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from rl_i2it.synthesis import design_frame, designs_figure, load_results, stopping_figure, stopping_frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _paired(difference, low, high, significant, better):
    return {"difference": difference, "ci95": [low, high], "significant": significant, "better": better}


def _designs(higher_is_better: bool) -> dict:
    row = {"design": "bottleneck", "final": 5.0, "plan_shuffle_drop": 0.3, "q_rank_correlation": 0.1, "sigma": 0.5,
           "alpha": 1e-3, "vs_aux_only": _paired(-0.4, -0.6, -0.2, True, "a" if not higher_is_better else "b"),
           "vs_cascade": _paired(0.1, -0.1, 0.3, False, None)}
    return {"task": "t", "preset": "smoke", "seeds": [0, 1, 2],
            "metric": {"name": "loss" if not higher_is_better else "dice", "higher_is_better": higher_is_better},
            "rows": [row]}


def test_design_frame_turns_every_advantage_so_that_positive_is_better():
    lower = design_frame([_designs(False)]).iloc[0]
    assert lower["advantage_aux_only"] == pytest.approx(0.4)  # rl's loss 0.4 below aux_only's: an advantage
    assert (lower["advantage_aux_only_low"], lower["advantage_aux_only_high"]) == pytest.approx((0.2, 0.6))
    assert lower["beats_aux_only"] and not lower["loses_to_aux_only"]
    assert not lower["beats_cascade"] and not lower["loses_to_cascade"]
    higher = design_frame([_designs(True)]).iloc[0]
    assert higher["advantage_aux_only"] == pytest.approx(-0.4) and higher["loses_to_aux_only"]


def test_committed_designs_and_stopping_studies_draw():
    designs = load_results(ROOT / "figures" / "designs")
    assert designs, "figures/designs holds the committed designs.json files"
    frame = design_frame(list(designs.values()))
    assert set(frame["task"]) >= {"digits", "brain2d"}
    assert len(frame) == sum(len(d["rows"]) for d in designs.values())
    assert (frame["advantage_aux_only_low"] <= frame["advantage_aux_only"] + 1e-12).all()
    fig = designs_figure(frame)
    assert len([ax for ax in fig.axes if ax.get_title()]) == len(set(zip(frame["task"], frame["setting"])))
    assert frame["beats_cascade"].map(type).eq(bool).all(), "a design without a cascade verdict neither won nor lost"

    study = load_results(ROOT / "figures" / "stopping")["brain2d-course"]
    table = stopping_frame(study)
    assert (table["oracle"] >= table["best_single_step"] - 1e-9).all()
    assert (table["best_single_step"] >= table["last"] - 1e-9).all()
    fig = stopping_figure(study)
    assert len(fig.axes) == len(study["conditions"])
    longest = max(study["steps"])
    assert all(len(line.get_xdata()) == longest + 1 for line in fig.axes[0].lines)


def test_load_results_of_a_missing_folder_is_empty(tmp_path):
    assert load_results(tmp_path / "nothing") == {}
    (tmp_path / "a.json").write_text(json.dumps({"x": 1}))
    assert load_results(tmp_path) == {"a": {"x": 1}}
