"""A conditional PatchGAN discriminator (pix2pix's): it judges an image *together with its source*.

=================================  ========================  =============================================
call                               output                    meaning
=================================  ========================  =============================================
``disc(source, image)``            ``(B, 1, h, w)`` logits   how real each overlapping patch of the pair
                                                             (source, image) looks; both ``(B, 3, S, S)``
                                                             in [0, 1]
``patch_adversarial_loss(l, r)``   scalar                    BCE of every patch logit against 1 (real) or 0
=================================  ========================  =============================================

Seeing the source is what makes it conditional: an output that looks like a photo but does not fit its label
map or edge map is fake to it (the authors' ``NetD`` saw the output alone, upstream.md §3.5). Layout as
pix2pix's ``n_layers`` PatchGAN: 4x4 stride-2 convolutions over ``widths``, one 4x4 stride-1 convolution,
then a 4x4 convolution to one logit per patch; spectral norm instead of BatchNorm on all but the first
(``nn/blocks.py``: no BatchNorm). With widths (64, 128, 256) the receptive field is 70x70 pixels (pix2pix's).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ConditionalPatchDiscriminator", "patch_adversarial_loss"]


class ConditionalPatchDiscriminator(nn.Module):
    """``(source (B, C_s, S, S), image (B, 3, S, S))`` in [0, 1] -> ``(B, 1, S / 2^n - 2, S / 2^n - 2)`` logits.

    ``S`` must be at least ``2 ** len(widths) * 4`` so a patch map is left.
    """

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256), source_channels: int = 3, image_channels: int = 3):
        super().__init__()
        if not widths:
            raise ValueError("a conditional discriminator needs at least one width")
        layers, channels = [], source_channels + image_channels
        for k, width in enumerate(widths):
            conv = nn.Conv2d(channels, width, 4, stride=2, padding=1)
            layers += [conv if k == 0 else spectral_norm(conv), nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        layers += [spectral_norm(nn.Conv2d(channels, channels, 4, stride=1, padding=1)), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(channels, 1, 4, stride=1, padding=1)
        self.min_size = 2 ** len(widths) * 4

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if source.shape[0] != image.shape[0] or source.shape[2:] != image.shape[2:]:
            raise ValueError(f"source {tuple(source.shape)} and image {tuple(image.shape)} must have the same "
                             f"batch and size")
        if image.shape[-1] < self.min_size:
            raise ValueError(f"images of {image.shape[-1]} px are too small for this discriminator "
                             f"(at least {self.min_size}); use fewer widths")
        return self.score(self.features(torch.cat([source, image], 1) * 2 - 1))


def patch_adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE of every patch logit (any shape) against all-real (1.0) or all-fake (0.0) float targets."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    return nn.functional.binary_cross_entropy_with_logits(logits, target)
