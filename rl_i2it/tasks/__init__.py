"""Tasks: an env + networks + auxiliary loss + metrics, one file per paper task, and a registry.

``make_task(cfg, device)`` builds the task a config names. A later task plugs in with
``register_task(name, cls)`` (and ``config.register_config``) without touching the CLI.
"""
from __future__ import annotations

import torch

from ..config import TrainConfig
from ..errors import UserError
from .base import Task
from .brain_registration import Brain3DTask, BrainRegistrationTask
from .digits import DigitsTask

__all__ = ["Task", "DigitsTask", "TASKS", "register_task", "make_task"]

TASKS: dict[str, type[Task]] = {"digits": DigitsTask, "brain2d": BrainRegistrationTask, "brain3d": Brain3DTask}


def register_task(name: str, cls: type[Task]) -> None:
    TASKS[name] = cls


def make_task(cfg: TrainConfig, device: torch.device | str = "cpu") -> Task:
    if cfg.task not in TASKS:
        raise UserError(f"unknown task {cfg.task!r}; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[cfg.task](cfg, torch.device(device))


from .face_inpainting import FaceInpaintingTask  # noqa: E402  (issue 6)

register_task("face", FaceInpaintingTask)

from .photo_translation import PhotoTranslationTask  # noqa: E402  (issue 7)

register_task("photo", PhotoTranslationTask)

from .image_style import ImageStyleTask  # noqa: E402  (issue 8)

register_task("image_style", ImageStyleTask)

from .video_style import VideoStyleTask  # noqa: E402  (issue 8, video)

register_task("video_style", VideoStyleTask)
