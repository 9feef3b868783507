"""Throughput and memory benchmark: ``python -m rl_i2it bench --task digits --preset paper --json``.

Measures, at batch B (environments stepped together) on one device, each for ``seconds``:

=================================  =================================================================
key                                what
=================================  =================================================================
``forward_ceiling_actions_per_s``  planner + actor + env step, no learning, no buffer: the limit
``collect_env_steps_per_s``        the trainer's collect step (acting + env + buffer insert + stats)
``updates_per_s``                  learner updates alone (critic + planner/actor + α + target)
``learner_samples_per_s``          ``updates_per_s × batch_size``
``env_steps_per_s``                the whole loop at ``replay_ratio`` samples trained per env step
``learner_bound_env_steps_per_s``  ``learner_samples_per_s / replay_ratio``: what the loop could reach
``loop_vs_learner_bound``          the ratio of the two (1.0 = no overhead beyond learning)
``replay_bytes_per_transition``    storage of one transition in the buffer
``peak_memory_mb``                 peak resident memory (CPU) or peak allocated (CUDA)
``train_seconds_estimate``         the preset's whole training run (its env steps, replay ratio, batch and
                                   envs) from the measured collect and update rates; what the chapters'
                                   compute banners read from ``figures/compute/`` (``bench --out``,
                                   ``make compute-times``; ``rl_i2it/compute_times.py``)
=================================  =================================================================
"""
from __future__ import annotations

import os
import platform
import resource
import time

import torch

from .config import make_config
from .errors import UserError
from .nn.execution import cpu_has_native_bf16
from .planner import sample_plan
from .device import resolve_device
from .train import Trainer

__all__ = ["run_benchmark", "train_seconds_estimate"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, device: torch.device, seconds: float, warmup: int = 3) -> float:
    """Calls per second of ``fn`` over at least ``seconds`` (after a warm-up)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 4 == 0:
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return calls / elapsed


def train_seconds_estimate(cfg, collect_env_steps_per_s: float, updates_per_s: float) -> float:
    """Seconds of ``cfg``'s whole training run: its env steps at the collect rate plus its learner updates (after
    the bootstrap, ``replay_ratio / batch_size`` per env step) at the update rate."""
    updates = max(0, cfg.total_env_steps - cfg.bootstrap_env_steps) * cfg.replay_ratio / cfg.batch_size
    return cfg.total_env_steps / collect_env_steps_per_s + updates / updates_per_s


def machine_description(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device)}
    if device.type == "cpu":
        info["cpu_native_bf16"] = cpu_has_native_bf16()  # where --amp bf16 pays (the README's execution options)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_benchmark(task: str = "digits", preset: str = "paper", batch: int | None = None,
                  batch_size: int | None = None, device: str = "auto", seconds: float = 3.0,
                  replay_ratio: float | None = 3.2, **overrides) -> dict:
    """Throughput and memory of ``task`` at ``preset`` (``overrides``: any config field, e.g. image_size).

    ``replay_ratio``: samples trained per env step in the loop measurement; the default is the authors' 3.2, so a
    comparison with their loop stays like for like; ``None`` keeps the preset's own.
    """
    if replay_ratio is not None and replay_ratio <= 0:
        raise UserError(f"--replay-ratio must be > 0; got {replay_ratio}")
    if batch is not None and batch < 1:
        raise UserError(f"--batch must be >= 1; got {batch}")
    if seconds <= 0:
        raise UserError(f"--seconds must be > 0; got {seconds}")
    device = resolve_device(device)
    preset_cfg = make_config(task, preset, **overrides)  # the run the estimate is for (bench changes the loop)
    cfg = make_config(task, preset, **{**overrides, "num_envs": batch, "batch_size": batch_size,
                      "replay_ratio": replay_ratio, "bootstrap_env_steps": 0, "total_env_steps": 10**12,
                      "log_every_env_steps": 10**12})
    replay_ratio = cfg.replay_ratio
    trainer = Trainer(cfg, run_dir=None, device=device)
    env, planner, actor = trainer.task.env, trainer.planner, trainer.actor
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    @torch.no_grad()
    def act_and_step():
        dist, skips, _ = planner(trainer.obs)
        trainer.obs = env.step(actor(sample_plan(dist, trainer.policy_generator), skips))[0]

    forward = _rate(act_and_step, device, seconds) * cfg.num_envs
    collect = _rate(trainer.collect, device, seconds) * cfg.num_envs
    while len(trainer.buffer) < cfg.batch_size:
        trainer.collect()
    updates = _rate(trainer.update, device, seconds)
    samples = updates * cfg.batch_size

    start_steps = trainer.env_steps
    trainer.train(until_env_steps=trainer.env_steps + cfg.num_envs)  # warm-up
    _sync(device)
    start_steps, started = trainer.env_steps, time.perf_counter()
    chunk = max(cfg.num_envs, int(cfg.batch_size / replay_ratio) * 4)
    while time.perf_counter() - started < seconds:
        trainer.train(until_env_steps=trainer.env_steps + chunk)
        _sync(device)
    loop = (trainer.env_steps - start_steps) / (time.perf_counter() - started)

    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    bound = samples / replay_ratio
    same_shape = (preset_cfg.num_envs, preset_cfg.batch_size) == (cfg.num_envs, cfg.batch_size)
    estimate = train_seconds_estimate(preset_cfg, collect, updates) if same_shape else None
    return {
        "task": cfg.task, "preset": cfg.preset, "num_envs": cfg.num_envs, "batch_size": cfg.batch_size,
        "replay_ratio": replay_ratio, "parameter_counts": trainer.task.parameter_counts(),
        "forward_ceiling_actions_per_s": round(forward, 1),
        "collect_env_steps_per_s": round(collect, 1),
        "collect_vs_forward_ceiling": round(collect / forward, 3),
        "updates_per_s": round(updates, 2),
        "learner_samples_per_s": round(samples, 1),
        "env_steps_per_s": round(loop, 1),
        "learner_bound_env_steps_per_s": round(bound, 1),
        "loop_vs_learner_bound": round(loop / bound, 3),
        "replay_bytes_per_transition": trainer.buffer.bytes_per_transition,
        "peak_memory_mb": round(peak_mb, 1),
        "train_seconds_estimate": round(estimate, 1) if estimate is not None else None,  # None: --batch changed
        "seconds_per_measurement": seconds,
        "machine": machine_description(device),
    }
