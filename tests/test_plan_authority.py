"""The plan-authority designs (issue 19): each builds, trains, resumes bit-exactly; the gate's range; the bottleneck
really removes the current image from the skips; the plan regulariser leaves σ to the temperature; the critic's
rank correlation against realised scores."""
from __future__ import annotations

import json
import math

import numpy as np

import pytest
import torch

from rl_i2it import sac
from rl_i2it.actor import GATE_INIT_BIAS, Actor, drop_skips
from rl_i2it.controls import q_rank_correlation
from rl_i2it.errors import UserError
from rl_i2it.planner import ChannelSlice, MaskedImage, Planner
from rl_i2it.train import Trainer

from same import assert_same
from test_task_contract import DEVICE, comparable_state, tiny, without_timing

#: (task, design) pairs: every option on digits, and each on a task whose state it conditions differently
DESIGNS = [
    ("digits", dict(skip_source="condition")),
    ("digits", dict(skip_dropout=0.5)),
    ("digits", dict(plan_gate=True)),
    ("digits", dict(plan_kl="mean")),
    ("face", dict(skip_source="condition", skip_dropout=0.25)),
    ("photo", dict(skip_source="condition")),
    ("image_style", dict(plan_gate=True, plan_kl="none")),
    ("video_style", dict(plan_gate=True)),
]


@pytest.mark.parametrize("task_name,design", DESIGNS, ids=[f"{t}-{'-'.join(d)}" for t, d in DESIGNS])
def test_each_design_trains_and_resumes_bit_exactly(task_name, design, tmp_path):
    cfg = tiny(task_name, **design)
    whole = Trainer(cfg, run_dir=tmp_path / "whole", device=DEVICE)
    whole.train()
    part = Trainer(cfg, run_dir=tmp_path / "part", device=DEVICE)
    part.train(until_env_steps=cfg.checkpoint_every_env_steps)
    resumed = Trainer(cfg, run_dir=tmp_path / "part", device=DEVICE, if_exists="resume")
    resumed.train()
    assert resumed.updates == whole.updates > 0
    assert_same(comparable_state(resumed), comparable_state(whole))
    logs = [without_timing([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()])
            for d in (tmp_path / "whole", tmp_path / "part")]
    assert logs[0] == logs[1]
    assert {"alpha", "sigma", "sigma_min"} <= set(logs[0][-1])  # every row carries the plan's spread and α


def test_the_bottleneck_lets_the_current_image_reach_the_action_only_through_the_plan():
    torch.manual_seed(0)
    planner = Planner(2, (16, 16), (4, 8, 8), 2, condition=ChannelSlice(0, 1))
    actor = Actor(planner, 2, head="flow")
    torch.nn.init.normal_(actor.out.weight, std=0.1)  # a trained-looking actor, not the near-zero start
    state = torch.rand(3, 2, 16, 16)
    other = state.clone()
    other[:, 1] = torch.rand(3, 16, 16)  # only the moved (current) image differs
    plan = torch.randn(3, planner.plan_dim)
    with torch.no_grad():
        dist_a, skips_a, _ = planner(state)
        dist_b, skips_b, _ = planner(other)
        assert torch.equal(actor(plan, skips_a), actor(plan, skips_b))  # a fixed plan: the same action
        assert not torch.allclose(dist_a.mean, dist_b.mean)  # the plan sees the current image ...
        assert not torch.allclose(actor(dist_a.mean, skips_a), actor(dist_b.mean, skips_b))  # ... and moves the action
    # the default design (skips of the whole state) lets it through without the plan
    open_planner = Planner(2, (16, 16), (4, 8, 8), 2)
    open_actor = Actor(open_planner, 2, head="flow")
    torch.nn.init.normal_(open_actor.out.weight, std=0.1)
    with torch.no_grad():
        assert not torch.allclose(open_actor(plan, open_planner(state)[1]), open_actor(plan, open_planner(other)[1]))


def test_inpainting_condition_hides_what_was_painted():
    state = torch.rand(2, 4, 8, 8)
    state[:, 3] = 0
    state[:, 3, 2:6, 2:6] = 1  # the hole
    painted = state.clone()
    painted[:, :3, 2:6, 2:6] = torch.rand(2, 3, 4, 4)
    assert torch.equal(MaskedImage()(state), MaskedImage()(painted))
    assert not torch.equal(MaskedImage()(state)[:, :3], state[:, :3])  # the hole is zeroed, not passed through


def test_the_gate_scales_the_step_within_zero_and_one():
    torch.manual_seed(0)
    planner = Planner(2, (16, 16), (4, 8, 8), 2)
    gated, plain = Actor(planner, 2, head="flow", gate=True), Actor(planner, 2, head="flow")
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gate.")})
    torch.nn.init.normal_(gated.out.weight, std=0.1), plain.out.weight.data.copy_(gated.out.weight)
    skips = planner(torch.rand(4, 2, 16, 16))[1]
    plan = torch.randn(4, planner.plan_dim)
    with torch.no_grad():
        assert gated.gain(plan) == pytest.approx([torch.sigmoid(torch.tensor(GATE_INIT_BIAS)).item()] * 4, abs=1e-2)
        gated.gate.bias.fill_(-100.0)
        assert torch.count_nonzero(gated(plan, skips)) == 0  # gain 0: stop
        gated.gate.bias.fill_(100.0)
        assert torch.allclose(gated(plan, skips), plain(plan, skips))  # gain 1: the decoded step
        gated.gate.weight.normal_(std=10.0)
        gated.gate.bias.zero_()
        gain = gated.gain(plan * 100)
        assert ((gain >= 0) & (gain <= 1)).all() and gain.min() < 0.1 and gain.max() > 0.9
        assert (gated(plan, skips).abs() <= 1.0 + 1e-6).all()  # never beyond max_step


def test_a_gate_on_a_whole_image_action_is_refused():
    planner = Planner(3, (8, 8), (4, 8), 1)
    with pytest.raises(UserError, match="plan_gate.*step-type"):
        Actor(planner, 3, head="image", gate=True)


@pytest.mark.parametrize("task_name,design", [("image_style", dict(skip_source="condition")),
                                              ("video_style", dict(skip_dropout=0.5))])
def test_designs_a_task_cannot_take_are_refused(task_name, design):
    with pytest.raises(UserError, match="use skip_source=state, skip_dropout=0"):
        Trainer(tiny(task_name, **design), device=DEVICE)


@pytest.mark.parametrize("field,value,message", [("plan_kl", "half", "unknown plan_kl"),
                                                 ("skip_source", "moved", "unknown skip_source"),
                                                 ("skip_dropout", 1.0, "skip_dropout is a probability")])
def test_bad_design_values_are_one_line_errors(field, value, message):
    with pytest.raises(UserError, match=message):
        tiny("digits", **{field: value})


def test_skip_dropout_drops_whole_items():
    skips = [torch.ones(1000, 2, 4, 4), torch.ones(1000, 3, 2, 2)]
    dropped = drop_skips(skips, 0.3, torch.Generator().manual_seed(0))
    kept = dropped[0].flatten(1).all(1)
    assert torch.equal(kept, dropped[1].flatten(1).all(1))  # one draw per item, shared by the levels
    assert torch.equal(dropped[0][~kept], torch.zeros_like(dropped[0][~kept]))
    assert 0.25 < 1 - kept.float().mean().item() < 0.35
    assert drop_skips(skips, 0.0) is skips


def test_the_mean_regulariser_leaves_sigma_to_the_temperature():
    mu = torch.randn(4, 6, requires_grad=True)
    log_sigma = torch.full((4, 6), 0.0, requires_grad=True)  # σ = 1, the bound
    dist = torch.distributions.Independent(torch.distributions.Normal(mu, log_sigma.exp()), 1)
    full, mean = sac.plan_regulariser(dist, "full"), sac.plan_regulariser(dist, "mean")
    assert torch.allclose(full, sac.kl_to_standard_normal(dist))
    assert torch.allclose(mean, 0.5 * mu.pow(2).sum(-1))
    assert torch.equal(sac.plan_regulariser(dist, "none"), torch.zeros(4))
    grad_full = torch.autograd.grad(full.sum(), log_sigma, retain_graph=True)[0]
    assert torch.count_nonzero(grad_full) == 0  # the full KL holds σ at 1: its gradient there is σ - 1/σ = 0
    smaller = torch.distributions.Independent(torch.distributions.Normal(mu, 0.1 * log_sigma.exp()), 1)
    assert (sac.plan_regulariser(smaller, "full") > full).all()  # and punishes any σ below it ...
    assert torch.allclose(sac.plan_regulariser(smaller, "mean"), mean)  # ... which the mean part does not


def test_the_full_kl_pushes_sigma_up_where_the_mean_regulariser_leaves_it_to_alpha():
    rows = {}
    for mode in ("full", "mean"):
        trainer = Trainer(tiny("digits", plan_kl=mode, total_env_steps=256, kl_weight=1.0), device=DEVICE)
        rows[mode] = trainer.train()
    assert rows["full"][0]["sigma"] == pytest.approx(rows["mean"][0]["sigma"], rel=0.05)  # the same start
    assert rows["full"][-1]["sigma"] > rows["full"][0]["sigma"]  # the KL's σ - 1/σ < 0 below 1: σ climbs to its bound
    assert rows["mean"][-1]["sigma"] < rows["full"][-1]["sigma"]  # without that push, only α's entropy term moves σ


def test_q_rank_correlation_is_a_correlation_and_leaves_the_env_alone():
    trainer = Trainer(tiny("digits"), device=DEVICE)
    trainer.train()
    task = trainer.task
    env = task.make_env(task.env.sampler, 6, auto_reset=False, seed=1)
    obs = task.initial_batch(env)["obs"]
    before = env.state_dict()
    rho = q_rank_correlation(task, env, obs, plans_per_state=5, seed=0)
    assert math.isnan(rho) or -1.0 <= rho <= 1.0
    assert_same(env.state_dict(), before)
    assert rho == q_rank_correlation(task, env, obs, plans_per_state=5, seed=0) or math.isnan(rho)


def test_designs_run_side_by_side_against_the_reference_controls(tmp_path, capsys):
    from rl_i2it.__main__ import main
    from rl_i2it.designs import design_table, run_designs
    from rl_i2it.report import designs_section
    from rl_i2it.viz import alpha_sigma_traces
    from test_task_contract import LOOP, TINY

    settings = dict(task="digits", preset="smoke", seeds=(0, 1, 2), run_dir=tmp_path, designs=["default", "gate"],
                    updates=4, cascade_steps=2, smooth_weights=(1.0,), device="cpu", progress=False,
                    overrides={**LOOP, **TINY["digits"]})
    result = run_designs(**settings)
    rows = {r["design"]: r for r in result["rows"]}
    assert list(rows) == ["default", "gate"] and (tmp_path / "designs.json").exists()
    for row in rows.values():
        assert len(row["per_seed"]) == 3 and row["plan_shuffle_drop"] is not None
        for key in ("vs_aux_only", "vs_cascade", "vs_own_aux_only"):
            assert isinstance(row[key]["significant"], bool) and len(row[key]["per_seed"]) == 3
    # the default design's rl is the reference's rl, so against the reference aux_only it is its own aux_only
    assert rows["default"]["vs_aux_only"] == rows["default"]["vs_own_aux_only"]
    assert rows["gate"]["final"] != rows["default"]["final"]  # the gate changes what is trained
    assert "| gate |" in design_table(result["rows"], result["metric"]["name"])
    assert result["reference_settings"]["cascade_steps"] == 2  # the README names the k the cascade column used
    assert "controls; cascade k = 2." in designs_section(result)
    assert all(len(r["traces"]) == 3 and r["traces"]["0"][-1]["sigma"] > 0 for r in result["rows"])
    figure = alpha_sigma_traces(result["rows"])
    assert [len(ax.lines) for ax in figure.axes] == [2, 3, 2]  # a line per design (+ the σ bound)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/results/*.json")}
    assert run_designs(**settings)["rows"] == result["rows"]  # resumed: every run reused
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/results/*.json")}
    assert main(["designs", "--task", "digits", "--run-dir", str(tmp_path), "--designs", "wide"]) == 2
    assert "unknown design(s) ['wide']" in capsys.readouterr().err


def test_stopping_oracle_bounds_every_fixed_step():
    """The oracle (each pair's best step) is at least the best single step for all pairs, which is at least the
    final and the first step's Dice; per_step agrees with the pinned evaluation of the same pairs."""
    from rl_i2it.config import make_config
    from rl_i2it.controls import stopping_oracle
    from rl_i2it.tasks import make_task
    from rl_i2it.tasks.brain_registration import evaluation_pairs

    cfg = make_config("brain2d", "smoke", eval_pairs=6)
    task = make_task(cfg, "cpu")
    torch.manual_seed(0)
    for p in task.actor.parameters():  # a policy that moves pixels: random weights, not the zero-initialised head
        torch.nn.init.normal_(p, std=0.05)
    pairs = evaluation_pairs(cfg)
    found = stopping_oracle(task.step_scores(task.policy(), pairs, steps=4))
    assert len(found["per_step"]) == 5
    assert found["oracle"] >= found["best_fixed_step_score"] - 1e-6 >= max(found["final"], found["per_step"][0]) - 2e-6
    assert 0 <= found["oracle_steps"] <= 4
    pinned = task.evaluate(task.policy(), steps=4, pairs=pairs)
    assert np.allclose(found["per_step"], pinned.score_per_step, atol=1e-5)
    assert found["per_step"][-1] != found["per_step"][0], "the random actor moved the labels"


def test_target_sigma_design_targets_the_entropy_of_that_sigma():
    from rl_i2it.designs import DESIGNS, entropy_per_dim

    for sigma in (0.09, 0.5, 1.0):
        assert entropy_per_dim(sigma) == pytest.approx(torch.distributions.Normal(0.0, sigma).entropy().item())
    per_dim = DESIGNS["target_sigma_0.5"]["target_entropy_per_dim"]
    assert tiny("digits", target_entropy_per_dim=per_dim).target_entropy_per_dim == per_dim
    assert entropy_per_dim(0.5) > -1.0, "a target above the -|A| rule's: σ can reach it while the plan matters"
