"""Tasks: an env + networks + auxiliary loss + metrics, one file per paper task, and one registry.

``make_task(cfg, device)`` builds the task a config names. Every task registers itself here in one way,
``register_task(name, task_class, config_class, presets, defaults)``, which also registers its config and presets
with ``config.register_config``; a new task plugs in the same way without touching the CLI.
"""
from __future__ import annotations

import torch

from ..config import TrainConfig, register_config
from ..errors import UserError
from ..nn.execution import apply_memory_format, task_modules
from .base import Task
from .brain_registration import _BRAIN3D_PRESETS, _BRAIN_PRESETS, BRAIN_DEFAULTS, Brain3DTask, BrainConfig, \
    BrainRegistrationTask
from .digits import _DIGITS_PRESETS, DIGITS_DEFAULTS, DigitsConfig, DigitsTask
from .face_inpainting import _FACE_PRESETS, FACE_DEFAULTS, FaceConfig, FaceInpaintingTask
from .image_style import _STYLE_PRESETS, STYLE_DEFAULTS, ImageStyleTask, StyleConfig
from .photo_translation import _PHOTO_PRESETS, PHOTO_DEFAULTS, PhotoConfig, PhotoTranslationTask
from .video_style import _VIDEO_PRESETS, VIDEO_DEFAULTS, VideoStyleConfig, VideoStyleTask

__all__ = ["Task", "DigitsTask", "TASKS", "register_task", "make_task"]

TASKS: dict[str, type[Task]] = {}


def register_task(name: str, task_class: type[Task], config_class: type[TrainConfig], presets: dict[str, dict],
                  defaults: dict | None = None) -> None:
    """Register a task, its config class and its ``smoke`` / ``course`` / ``paper`` presets (over ``defaults``)."""
    register_config(name, config_class, presets, defaults)
    TASKS[name] = task_class


def make_task(cfg: TrainConfig, device: torch.device | str = "cpu") -> Task:
    if cfg.task not in TASKS:
        raise UserError(f"unknown task {cfg.task!r}; choose one of: {', '.join(sorted(TASKS))}")
    cfg.validate()  # a config edited with dataclasses.replace is checked too, before any data loads
    task = TASKS[cfg.task](cfg, torch.device(device))
    for module in task_modules(task):  # NHWC by default: the same numbers, faster convolutions on a CPU
        apply_memory_format(module, cfg.memory_format)
    return task


register_task("digits", DigitsTask, DigitsConfig, _DIGITS_PRESETS, DIGITS_DEFAULTS)
register_task("brain2d", BrainRegistrationTask, BrainConfig, _BRAIN_PRESETS, BRAIN_DEFAULTS)
register_task("brain3d", Brain3DTask, BrainConfig, _BRAIN3D_PRESETS, BRAIN_DEFAULTS)
register_task("face", FaceInpaintingTask, FaceConfig, _FACE_PRESETS, FACE_DEFAULTS)
register_task("photo", PhotoTranslationTask, PhotoConfig, _PHOTO_PRESETS, PHOTO_DEFAULTS)
register_task("image_style", ImageStyleTask, StyleConfig, _STYLE_PRESETS, STYLE_DEFAULTS)
register_task("video_style", VideoStyleTask, VideoStyleConfig, _VIDEO_PRESETS, VIDEO_DEFAULTS)
