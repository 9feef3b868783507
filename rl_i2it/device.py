"""Which device a run uses: ``resolve_device("auto" | "cpu" | "cuda" | "cuda:N")`` -> ``torch.device``."""
from __future__ import annotations

import torch

from .errors import UserError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA request without CUDA is a one-line ``UserError``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return resolved
