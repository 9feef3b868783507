"""TEMPORARY: moved here from tasks/image_style.py by the task-layer refactor."""
from ..tasks.image_style import train_style_baseline

__all__ = ["train_style_baseline"]
