"""A local patch discriminator with spectral normalisation (the authors' ``LocalD``, our sizes configurable).

=========================  ===================  ==============================================
call                       output               meaning
=========================  ===================  ==============================================
``disc(patch)``            ``(B,)`` logits      how real a ``(B, 3, h, h)`` patch in [0, 1] looks
=========================  ===================  ==============================================

4x4 stride-2 convolutions, spectral norm on all but the first (as the authors'), LeakyReLU 0.2, then a
convolution over what is left of the patch to one logit. It returns logits, never probabilities: the loss
is ``binary_cross_entropy_with_logits`` with float targets (the authors' int64 ``torch.full`` targets crash
``BCELoss`` on PyTorch >= 1.7, upstream.md §2.8).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["PatchDiscriminator", "adversarial_loss"]


class PatchDiscriminator(nn.Module):
    """``(B, 3, h, h)`` -> ``(B,)`` logits; ``h`` must be divisible by ``2 ** len(widths)``."""

    def __init__(self, patch_size: int, widths: tuple[int, ...] = (64, 128, 256, 512), in_channels: int = 3):
        super().__init__()
        factor = 2 ** len(widths)
        if patch_size % factor:
            raise ValueError(f"patch size {patch_size} must be divisible by {factor} for discriminator widths {widths}")
        layers, channels = [], in_channels
        for k, width in enumerate(widths):
            conv = nn.Conv2d(channels, width, 4, stride=2, padding=1)
            layers += [conv if k == 0 else spectral_norm(conv), nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(channels, 1, patch_size // factor)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(patch * 2 - 1)).flatten(1).mean(1)


def adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE of ``(B,)`` logits against all-real (1.0) or all-fake (0.0) float targets."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    return nn.functional.binary_cross_entropy_with_logits(logits, target)
