"""TEMPORARY: moved here from tasks/video_style.py by the task-layer refactor."""
from ..tasks.video_style import train_per_frame_baseline

__all__ = ["train_per_frame_baseline"]
