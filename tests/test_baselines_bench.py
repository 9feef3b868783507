"""The one-step baseline and the benchmark run end to end and report what they promise."""
from rl_i2it.baselines import train_one_step_baseline
from rl_i2it.bench import run_benchmark
from rl_i2it.config import make_config


def test_one_step_baseline_trains_and_is_evaluated_with_one_step():
    cfg = make_config("digits", "smoke", planner_widths=(4, 8, 8), critic_widths=(4, 8, 8), eval_pairs=16)
    results = train_one_step_baseline(cfg, seconds=2.0, device="cpu", batch_size=16)
    assert results["baseline"]["iterations"] > 0
    assert results["protocol"]["steps"] == 1 and len(results["dice_per_step"]) == 2
    planner, actor = results["_networks"]["planner"], results["_networks"]["actor"]
    assert results["baseline"]["parameters"] == sum(p.numel() for m in (planner, actor) for p in m.parameters())


def test_benchmark_reports_every_figure():
    report = run_benchmark("digits", "smoke", batch=8, batch_size=16, device="cpu", seconds=0.3)
    for key in ("forward_ceiling_actions_per_s", "collect_env_steps_per_s", "learner_samples_per_s", "updates_per_s",
                "env_steps_per_s", "replay_bytes_per_transition", "peak_memory_mb", "machine"):
        assert key in report, key
    assert report["replay_bytes_per_transition"] <= 3200  # the issue's goal (authors': 12.7 KB)
    assert report["env_steps_per_s"] > 0 and report["updates_per_s"] > 0
