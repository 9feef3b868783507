"""Registration scored on anatomical labels (brain MRI): the reward is the improvement of mean label Dice.

Same env as ``RegistrationEnv`` (observation ``[fixed, moved]`` uint8, composed flow, same-step auto-reset);
only the score differs. The sampler returns a dict with ``moving``, ``fixed``, ``moving_labels`` and
``fixed_labels`` (uint8 ``(B, 1, *S)``, 0 = background, 1..L the labels); every step the moving label
map is warped by the accumulated field (one-hot, bilinear, argmax: ``nn.functional.warp_labels``) and
the score is the mean over labels of its Dice with the fixed labels. Dice is thresholded: a reward and
a metric, never a loss.
"""
from __future__ import annotations

import torch

from ..nn.functional import label_dice, warp_labels
from .registration import RegistrationEnv

__all__ = ["LabelledRegistrationEnv"]


class LabelledRegistrationEnv(RegistrationEnv):
    """``RegistrationEnv`` whose score is mean label Dice; ``num_labels`` foreground labels."""

    def __init__(self, sampler, num_envs: int, max_steps: int, num_labels: int, **kwargs):
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1; got {num_labels}")
        self.num_labels = int(num_labels)
        super().__init__(sampler, num_envs, max_steps, **kwargs)

    def warped_labels(self, state: dict[str, torch.Tensor], flow: torch.Tensor) -> torch.Tensor:
        """The moving labels carried by ``flow``: uint8 ``(B, 1, *S)``."""
        return warp_labels(state["moving_labels"], flow, self.num_labels)

    def score_pairs(self, state: dict[str, torch.Tensor], moved: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        for key in ("moving_labels", "fixed_labels"):
            if key not in state:
                raise ValueError(f"labelled registration needs {key!r} with every pair (got {sorted(state)})")
        dice = label_dice(self.warped_labels(state, flow), state["fixed_labels"], self.num_labels)
        return dice.mean(1)
