"""TEMPORARY: moved here from tasks/photo_translation.py by the task-layer refactor."""
from ..tasks.photo_translation import train_pix2pix_baseline

__all__ = ["train_pix2pix_baseline"]
