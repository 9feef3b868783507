"""Configuration: the fields every task shares, the preset registry, validation and the YAML round trip.

Each task declares its own frozen dataclass (a subclass of ``TrainConfig`` holding only the task's fields) and its
presets ``smoke`` / ``course`` / ``paper`` beside its task, in ``rl_i2it/tasks/<task>.py``, and registers both with
``register_config``. ``make_config`` builds and validates one before any data loads.

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

__all__ = ["TrainConfig", "PRESETS", "FAST_REGISTRATION", "FAST_IMAGE", "resolve_preset", "make_config",
           "register_config", "to_yaml", "from_yaml", "from_dict", "config_classes", "validate",
           "preset_differences", "field_notes", "REASONS"]

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
    amp: str = "off"  #: "bf16": the networks' forward passes under bfloat16 autocast (a GPU option; "off": fp32)
    memory_format: str = "channels_last"  #: convolutions' layout: NHWC ("channels_last", faster on CPU) or "contiguous"
    compile: bool = False  #: torch.compile the planner, actor and critics (needs a C compiler on the CPU)
    # --- the policy's networks and the episode's reward (every task; task defaults in its registered presets)
    image_size: int = 64  #: S, the side of the (square or cubic) images
    planner_widths: tuple[int, ...] = (16, 32, 64, 64)  #: planner levels; the plan grid is S / 2^(levels - 1)
    critic_widths: tuple[int, ...] = (16, 32, 64, 64)  #: the critic's encoder levels
    plan_channels: int = 4  #: plan = plan_channels x grid numbers
    actor_skips: bool = True  #: the actor also sees the planner's skip features (the authors' U-Net)
    # --- plan authority (the designs that make the plan and the critic matter; defaults: the authors' design)
    plan_kl: str = "full"  #: "full": KL(π ‖ N(0, I)), which pins σ at 1; "mean": ½|μ|² only, σ left to α; "none"
    skip_source: str = "state"  #: "state": skips of the whole state; "condition": of the conditioning image only
    skip_dropout: float = 0.0  #: each learner-batch item's skips zeroed with this probability
    plan_gate: bool = False  #: a step scaled by a gain in [0, 1] read from the plan alone (step-type actions)
    reward_mode: str = "improvement"  #: "improvement" (score gain + done bonus) or the authors' "absolute" score
    reward_scale: float = 1.0  #: reward per unit of score

    def validate(self) -> None:
        """A one-line ``UserError`` for a bad value; a task's config extends it with its own checks (called by
        ``make_config`` and ``from_dict`` before any data loads)."""
        check_field_types(self)  # types first: the range checks below compare numbers
        checks = [
            (self.batch_size >= 1, f"batch size must be >= 1; got {self.batch_size}"),
            (self.num_envs >= 1, f"number of environments must be >= 1; got {self.num_envs}"),
            (self.total_env_steps >= 1, f"total_env_steps must be >= 1; got {self.total_env_steps}"),
            (self.replay_ratio >= 0, f"replay ratio must be >= 0; got {self.replay_ratio}"),
            (self.buffer_capacity >= self.num_envs, f"buffer capacity {self.buffer_capacity} must hold at least one "
                                                    f"step of {self.num_envs} envs"),
            (self.actor_every >= 1, f"actor_every must be >= 1; got {self.actor_every}"),
            (self.amp in AMP_MODES, f"unknown amp {self.amp!r}; use one of {AMP_MODES}"),
            (self.memory_format in MEMORY_FORMATS, f"unknown memory_format {self.memory_format!r}; use one of "
                                                   f"{MEMORY_FORMATS}"),
            (self.reward_mode in REWARD_MODES, f"unknown reward mode {self.reward_mode!r}; use one of {REWARD_MODES}"),
            (self.image_size >= 1, f"image_size must be >= 1; got {self.image_size}"),
            (len(self.planner_widths) >= 1, f"planner_widths must name at least one level; got {self.planner_widths}"),
            (self.plan_channels >= 1, f"plan_channels must be >= 1; got {self.plan_channels}"),
            (self.plan_kl in PLAN_KL_MODES, f"unknown plan_kl {self.plan_kl!r}; use one of {PLAN_KL_MODES}"),
            (self.skip_source in SKIP_SOURCES, f"unknown skip_source {self.skip_source!r}; use one of "
                                               f"{SKIP_SOURCES}"),
            (0.0 <= self.skip_dropout < 1.0, f"skip_dropout is a probability in [0, 1); got {self.skip_dropout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def check_divisible(self, at_least: int = 1) -> None:
        """The image must survive the planner's ``len(planner_widths) - 1`` halvings (and be divisible by
        ``at_least``, e.g. an actor's own downsampling); a one-line ``UserError`` otherwise."""
        halvings = 2 ** (len(self.planner_widths) - 1)
        if self.image_size % halvings or self.image_size % at_least:
            raise UserError(f"image size {self.image_size} must be divisible by {max(halvings, at_least)} for planner "
                            f"widths {self.planner_widths}; change image_size or use fewer levels")


REWARD_MODES = ("improvement", "absolute")
PLAN_KL_MODES = ("full", "mean", "none")
SKIP_SOURCES = ("state", "condition")
AMP_MODES = ("off", "bf16")
MEMORY_FORMATS = ("channels_last", "contiguous")  # rl_i2it/nn/execution.py applies them

#: CPU settings of the registration tasks' smoke and course presets (tuned for time to quality on a 2-core CPU, see
#: the digits chapter): learning-rate-1e-3 networks, a short horizon (γ = 0.95 for 10-30 step episodes), and a
#: temperature that starts low and adapts fast so the entropy bonus never swamps Dice-improvement rewards
FAST_REGISTRATION = dict(gamma=0.95, init_log_alpha=-5.0, lr_alpha=1e-2, kl_weight=1e-4, lr_planner=1e-3,
                         lr_actor=1e-3, lr_critic=1e-3)
#: CPU settings of the image tasks' smoke and course presets (face, photo, image and video style): learning is
#: update-bound, and the SAC term at weight 0.1 (at 1.0 the critic's gradient through the plan swamped the L1 in
#: short runs: 16.0 vs 16.8 dB on the face hole at smoke, same updates)
FAST_IMAGE = dict(gamma=0.9, init_log_alpha=-5.0, lr_alpha=1e-2, kl_weight=1e-3, rl_weight=0.1, lr_planner=1e-3,
                  lr_actor=1e-3, lr_critic=1e-3)

_CONFIGS: dict[str, tuple[type[TrainConfig], dict[str, dict]]] = {}


def _registry() -> dict[str, tuple[type[TrainConfig], dict[str, dict]]]:
    """The registered tasks' configs. Task modules register theirs when ``rl_i2it.tasks`` is imported; this module
    never imports a task at load time, so importing it stays cheap and the import graph has no cycle."""
    import rl_i2it.tasks  # noqa: F401  (registers the built-in tasks)

    return _CONFIGS




def config_classes() -> dict[str, type[TrainConfig]]:
    return {name: cls for name, (cls, _) in _registry().items()}


def register_config(task: str, cls: type[TrainConfig], presets: dict[str, dict], defaults: dict | None = None) -> None:
    """A task's config class and presets (each preset on top of the task's ``defaults``), registered once.

    ``tasks.register_task`` calls it; a new task plugs in without touching the CLI.
    """
    missing = set(PRESETS) - set(presets)
    if missing:
        raise ValueError(f"task {task!r} lacks presets {sorted(missing)}")
    names = {f.name for f in dataclasses.fields(cls)}
    for preset, values in presets.items():
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"task {task!r} preset {preset!r} sets unknown field(s) {sorted(unknown)}")
    _CONFIGS[task] = (cls, {name: {**(defaults or {}), "task": task, **values} for name, values in presets.items()})


def resolve_preset(preset: str) -> str:
    """``auto`` -> ``smoke`` under ``RL_I2IT_SMOKE=1``, else ``course``; others pass through (validated)."""
    if preset == "auto":
        return "smoke" if os.environ.get("RL_I2IT_SMOKE", "") == "1" else "course"
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of auto, {', '.join(PRESETS)}")
    return preset


def make_config(task: str, preset: str = "auto", **overrides) -> TrainConfig:
    """The config of ``task`` at ``preset``, with keyword overrides (validated by name)."""
    configs = _registry()
    if task not in configs:
        raise UserError(f"unknown task {task!r}; choose one of: {', '.join(sorted(configs))}")
    cls, presets = configs[task]
    preset = resolve_preset(preset)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise UserError(f"unknown config field(s) {sorted(unknown)} for task {task!r}")
    values = {**presets[preset], **{k: v for k, v in overrides.items() if v is not None}, "preset": preset}
    return validate(cls(**values))


def validate(cfg: TrainConfig) -> TrainConfig:
    """``cfg.validate()`` (the shared checks and the task's own), then ``cfg``."""
    cfg.validate()
    return cfg


def to_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


def from_dict(values: dict) -> TrainConfig:
    configs = _registry()
    task = values.get("task")
    if task not in configs:
        raise UserError(f"config names unknown task {task!r}; known: {', '.join(sorted(configs))}")
    cls = configs[task][0]
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - fields
    if unknown:
        raise UserError(f"config has unknown field(s) {sorted(unknown)} for task {task!r}")
    converted = {k: tuple(v) if typing.get_origin(hints[k]) is tuple else v for k, v in values.items()}
    return validate(cls(**converted))


def from_yaml(text: str) -> TrainConfig:
    return from_dict(yaml.safe_load(text))
# ============================================================================ field types (issue 16)
_LOWEST = {"log_every_env_steps": 1, "checkpoint_every_env_steps": 1}  # the loop divides by these


def _type_name(annotation) -> str:
    """``tuple[int, ...]`` -> ``"a list of int"``; ``float`` -> ``"a number"``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
            return f"a list of {plural.get(args[0], _type_name(args[0]))}"
        return f"a list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string",
            type(None): "null"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _has_type(value, annotation) -> bool:
    """Whether ``value`` fits ``annotation``: an int fits ``float``, a bool fits only ``bool``; unknown kinds pass."""
    import numbers

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is typing.Any:
        return True
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return any(_has_type(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_has_type(v, args[0]) for v in value)
        return len(args) == len(value) and all(_has_type(v, a) for v, a in zip(value, args))
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def check_field_types(cfg: TrainConfig) -> TrainConfig:
    """Refuse a field whose value is not of its declared type, or below its lowest allowed value; returns ``cfg``.

    Run by ``validate`` (so by ``make_config``, ``from_dict`` / ``from_yaml``, the CLI's ``--set`` and a notebook's
    papermill parameters) before anything is written. An int is a number; ``true`` is not an integer.

    >>> make_config("digits", "smoke", seed="abc")
    Traceback (most recent call last):
    ...
    rl_i2it.errors.UserError: config field seed must be an integer; got 'abc' (str)
    """
    hints = typing.get_type_hints(type(cfg))
    for field in dataclasses.fields(cfg):
        value, annotation = getattr(cfg, field.name), hints.get(field.name)
        if annotation is not None and not _has_type(value, annotation):
            hint = ""
            if isinstance(value, str) and annotation in (float, int):
                try:
                    float(value)
                    hint = f" (YAML reads {value} as text: write it with a dot and a signed exponent, e.g. 1.0e-3)"
                except ValueError:
                    pass
            raise UserError(f"config field {field.name} must be {_type_name(annotation)}; got {value!r} "
                            f"({type(value).__name__}){hint}")
        lowest = _LOWEST.get(field.name)
        if lowest is not None and value < lowest:
            raise UserError(f"config field {field.name} must be >= {lowest}; got {value!r}")
    return cfg


#: why a CPU preset departs from the paper preset: field -> a key of ``REASONS`` (other fields: "task")
_REASON_OF = {
    **{f: "scale" for f in ("image_size", "total_env_steps", "num_envs", "bootstrap_env_steps", "batch_size",
                            "buffer_capacity", "bank_size", "planner_widths", "critic_widths", "actor_widths",
                            "eval_pairs", "eval_steps", "max_episode_steps", "hole_size", "train_pairs", "train_faces",
                            "eval_faces", "eval_images", "clip_frames", "frame_steps", "log_every_env_steps",
                            "checkpoint_every_env_steps", "replay_ratio", "plan_channels", "plan_size", "disc_widths",
                            "baseline_widths", "memory_channels", "eval_frames", "eval_synthetic",
                            "eval_flow_iterations", "max_video_frames", "style_size", "save_buffer")},
    **{f: "fast" for f in ("gamma", "init_log_alpha", "lr_alpha", "kl_weight", "lr_planner", "lr_actor",
                           "lr_critic", "lr_disc", "actor_every", "gan_start_updates")},
    "rl_weight": "rl_weight", "smooth_weight": "smooth_weight",
}
#: the reasons, in words
REASONS = {
    "scale": "scaled down for a 2-core CPU: sizes, budget, widths, evaluation set (save_buffer: resumes bit-exactly)",
    "fast": "a run of minutes: the temperature starts low (α = e^-5) and adapts fast, learning rates are higher, the "
            "discount shorter, every update trains the planner, the GAN phase starts earlier",
    "rl_weight": "image tasks on a CPU: at weight 1.0 the critic's gradient through the plan swamped the L1 in short "
                 "runs (measured when the presets were set: 16.0 vs 16.8 dB on the face hole at smoke)",
    "smooth_weight": "per-step smoothness: at SPAC's weight 1 the step-wise policy keeps raising NCC after "
                     "alignment and Dice falls (seen in smoke runs); 30 keeps each small step smooth",
    "task": "a choice of this task's presets: the comment above them in rl_i2it/tasks/ says why",
}


def field_notes(cls: type) -> dict[str, str]:
    """field -> its ``#:`` note in the class body (subclasses first), e.g. "truncation (the authors': 20)"."""
    import inspect
    import re

    notes: dict[str, str] = {}
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for name, note in re.findall(r"^\s+(\w+)\s*:[^=\n]*=[^\n]*#:\s*(.+)$", source, re.M):
            notes.setdefault(name, note.strip())
    return notes


def preset_differences(task: str, preset: str) -> list[dict]:
    """Every field where ``preset`` departs from the ``paper`` preset (the authors' settings): its value at both,
    what the field is (its ``#:`` note), and why the preset departs (a key of ``REASONS``)."""
    cfg, paper = make_config(task, preset), make_config(task, "paper")
    notes = field_notes(type(cfg))
    return [{"field": f.name, preset: getattr(cfg, f.name), "paper": getattr(paper, f.name),
             "what it is": notes.get(f.name, ""), "why": _REASON_OF.get(f.name, "task")}
            for f in dataclasses.fields(cfg)
            if f.name not in ("preset", "seed") and getattr(cfg, f.name) != getattr(paper, f.name)]

