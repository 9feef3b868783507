"""Inpainting as an episode: fill the square hole in the centre of an image, one whole patch per step.

B episodes step together on one device, torch only. The contract (DESIGN §3), with S the image size and
h the hole size:

============================  ==================================================================
call                          returns
============================  ==================================================================
``reset(seed=None)``          ``obs``: uint8 ``(B, 4, S, S)``: RGB with the current patch pasted
                              into the hole, and channel 3 the hole mask (255 inside)
``step(patch)``               ``obs, reward, terminated, truncated, info``; ``patch`` is float
                              ``(B, 3, h, h)`` in [0, 1]; reward/terminated/truncated are ``(B,)``
``info["score"]``             ``(B,)`` PSNR (dB) of the hole after this step (before auto-reset)
``info["final_obs"]``         ``(B, 4, S, S)`` the observation this step produced, before auto-reset
``info["done"]``              ``(B,)`` terminated | truncated
``info["initial_score"]``     ``(B,)`` PSNR of the finished episode's first state (the mean fill)
``info["steps"]``             ``(B,)`` steps taken in the episode
``info["index"]``             ``(B,)`` the image index (into ``sampler.images``) each row of the
                              step just taken belongs to: what the replay stores instead of the image
                              (-1 for images given to ``start_episodes``)
``start_episodes(episode)``   ``obs`` of episodes on given images: ``{"images": uint8 (B, 3, S, S)}``
============================  ==================================================================

An episode starts with the hole filled with the mean colour of the visible pixels (the "identity": what a
one-line method does); each step *replaces* the hole with the actor's patch (not cumulative, as the
authors'), quantised to uint8 by the env so the policy acts on exactly what the buffer stores. The mask
channel is constant but tells the convolutional planner where the hole is without having to infer it from
content (cheap: the buffer never stores it). Reward ``"improvement"``: ``reward_scale * (PSNR_t - PSNR_{t-1})
+ done_bonus * terminated``; ``"absolute"``: the authors' ``reward_scale * PSNR_t + done_bonus * terminated``.
The episode terminates when the hole's PSNR reaches ``psnr_threshold``; a timeout is truncation. The step itself
(scoring, reward, termination, same-step auto-reset) is ``envs.base.BatchedEnv``'s.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..errors import UserError
from ..nn.functional import psnr
from .base import BatchedEnv
from .common import quantise

__all__ = ["InpaintingEnv", "ImageSampler", "FaceSampler", "hole_slice", "crop_hole", "paste_hole", "mean_fill",
           "check_images"]


class ImageSampler(Protocol):
    """Draws image indices: ``sample(n, generator) -> (n,)`` long, into ``images`` uint8 ``(N, 3, S, S)``."""

    images: torch.Tensor

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor: ...


class FaceSampler:
    """Uniform indices into a fixed bank of images (uint8 ``(N, 3, S, S)`` on the training device)."""

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.image_shape = tuple(images.shape[1:])

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.images.shape[0], (n,), device=self.images.device, generator=generator)


def check_images(images: torch.Tensor, size: int, what: str = "images") -> None:
    """``images`` must be uint8 ``(N, 3, size, size)`` with N >= 1; a one-line ``UserError`` otherwise."""
    if not isinstance(images, torch.Tensor):
        raise UserError(f"{what} must be a torch tensor uint8 (N, 3, {size}, {size}); got {type(images).__name__}")
    if images.dim() != 4 or images.shape[0] < 1:
        raise UserError(f"{what} have shape {tuple(images.shape)}; expected (N, 3, {size}, {size}) with N >= 1")
    if images.shape[1] != 3:
        raise UserError(f"{what} have {images.shape[1]} channel(s) (shape {tuple(images.shape)}); faces must be RGB "
                        f"(N, 3, {size}, {size}): convert grey with .expand(-1, 3, -1, -1) or drop alpha with [:, :3]")
    if tuple(images.shape[2:]) != (size, size):
        raise UserError(f"{what} are {images.shape[2]}x{images.shape[3]}; this task uses {size}x{size}: resize them "
                        f"(e.g. torch.nn.functional.interpolate) or use a config with image_size={images.shape[-1]}")
    if images.dtype != torch.uint8:
        raise UserError(f"{what} have dtype {images.dtype}; convert them to uint8 in 0..255 "
                        f"(x.mul(255).round().to(torch.uint8) for floats in [0, 1])")


def hole_slice(image_size: int, hole_size: int) -> slice:
    """Rows (and columns) of the centred square hole: ``slice(top, top + hole_size)``."""
    if hole_size < 1 or hole_size >= image_size:
        raise UserError(f"hole size {hole_size} does not fit in a {image_size}x{image_size} image; use "
                        f"1 <= hole_size < image_size (the authors': 64 in 128)")
    top = (image_size - hole_size) // 2
    return slice(top, top + hole_size)


def crop_hole(images: torch.Tensor, hole: slice) -> torch.Tensor:
    """``(B, C, S, S)`` -> the hole region ``(B, C, h, h)`` (a view)."""
    return images[..., hole, hole]


def paste_hole(images: torch.Tensor, patch: torch.Tensor, hole: slice) -> torch.Tensor:
    """A copy of ``images`` ``(B, C, S, S)`` with ``patch`` ``(B, C, h, h)`` in the hole."""
    out = images.clone()
    out[..., hole, hole] = patch
    return out


def mean_fill(images: torch.Tensor, hole: slice) -> torch.Tensor:
    """The identity patch: the mean colour of the visible pixels, uint8 ``(B, 3, h, h)``."""
    x = images.float()
    visible = x.sum((2, 3)) - crop_hole(x, hole).sum((2, 3))
    count = x.shape[2] * x.shape[3] - (hole.stop - hole.start) ** 2
    mean = (visible / count).round_().to(torch.uint8)
    size = hole.stop - hole.start
    return mean[:, :, None, None].expand(-1, -1, size, size).contiguous()


class InpaintingEnv(BatchedEnv):
    """Batched centre-hole inpainting.

    Parameters
    ----------
    sampler : draws image indices into its ``images`` (uint8 ``(N, 3, S, S)`` on ``device``)
    num_envs : B, episodes stepped together
    max_steps : episode length; reaching it is truncation
    hole_size : h, the side of the centred square hole
    reward_mode : ``"improvement"`` (default) or the authors' ``"absolute"``
    reward_scale : reward per dB
    done_bonus : added when the episode terminates
    psnr_threshold : the episode terminates once the hole's PSNR reaches it (dB)
    auto_reset : replace finished episodes in the same step (training); off for evaluation
    """

    def __init__(self, sampler: ImageSampler, num_envs: int, max_steps: int, hole_size: int,
                 reward_mode: str = "improvement", reward_scale: float = 1.0, done_bonus: float = 1.0,
                 psnr_threshold: float = 30.0, auto_reset: bool = True, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(num_envs, max_steps, reward_mode, reward_scale, done_bonus, score_threshold=psnr_threshold,
                         auto_reset=auto_reset, device=device, seed=seed)
        self.sampler = sampler
        self.image_size = int(sampler.images.shape[-1])
        self.hole = hole_slice(self.image_size, hole_size)
        self.hole_size = int(hole_size)
        self.psnr_threshold = self.score_threshold
        self.image_shape = (self.image_size, self.image_size)
        mask = torch.zeros(1, 1, self.image_size, self.image_size, dtype=torch.uint8, device=self.device)
        mask[..., self.hole, self.hole] = 255
        self.mask = mask

    @property
    def patch_shape(self) -> tuple[int, int, int]:
        return (3, self.hole_size, self.hole_size)

    # ------------------------------------------------------------------ episodes
    def draw(self, n: int) -> dict[str, torch.Tensor]:
        index = self.sampler.sample(n, self.generator)
        return {"index": index, "images": self.sampler.images[index]}

    def start(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The first state: the hole filled with the mean colour. ``episode``: ``images`` uint8 ``(B, 3, S, S)``
        and their ``index`` into the bank (absent for given images: -1)."""
        images = episode["images"]
        index = episode.get("index")
        if index is None:
            index = torch.full((images.shape[0],), -1, dtype=torch.long, device=self.device)
        truth = crop_hole(images, self.hole).contiguous()
        patch = mean_fill(images, self.hole)
        return {"index": index, "images": images, "truth": truth, "patch": patch, "score": self.score(patch, truth)}

    def start_episodes(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Episodes on given images (evaluation): ``{"images": uint8 (B, 3, S, S)}``, index -1."""
        check_images(episode["images"], self.image_size)
        return super().start_episodes(episode)

    @staticmethod
    def score(patch: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """PSNR (dB) of uint8 patches ``(B, 3, h, h)`` against the truth, on the 0..255 scale, ``(B,)``."""
        return psnr(patch.float(), truth.float(), data_range=255.0)

    def observation(self, images: torch.Tensor | None = None, patch: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(B, 4, S, S)``: ``images`` with ``patch`` in the hole, then the mask (default: the episodes');
        replay rebuilds stored states with it."""
        images = self._state["images"] if images is None else images
        patch = self._state["patch"] if patch is None else patch
        filled = paste_hole(images, patch, self.hole)
        return torch.cat([filled, self.mask.expand(filled.shape[0], -1, -1, -1)], 1)

    @property
    def patch(self) -> torch.Tensor:
        """The current hole content, uint8 ``(B, 3, h, h)``."""
        return self._state["patch"]

    @property
    def truth(self) -> torch.Tensor:
        """The true hole content, uint8 ``(B, 3, h, h)``."""
        return self._state["truth"]

    # ------------------------------------------------------------------ transition
    def check_action(self, action: torch.Tensor) -> None:
        expected = tuple(self._state["patch"].shape)
        if tuple(action.shape) != expected:
            raise ValueError(f"action must be a patch of shape {expected}; got {tuple(action.shape)}")

    def advance(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        """The patch replaces the hole's content (quantised, so the policy sees what the replay stores)."""
        patch = quantise(action)
        return {"patch": patch, "score": self.score(patch, state["truth"])}

    def transition_info(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"index": state["index"]}

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Episodes by reference: the image indices, not the images (they are rebuilt from the sampler)."""
        episodes = {k: v.clone() for k, v in self._state.items() if k not in ("images", "truth")}
        return {"episodes": episodes, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Also reads checkpoints written before issue 15 (their ``last_index`` is not needed any more)."""
        episodes = {k: v.to(self.device) for k, v in state["episodes"].items()}
        images = self.sampler.images[episodes["index"].clamp_min(0)]
        episodes["images"] = images
        episodes["truth"] = crop_hole(images, self.hole).contiguous()
        self._state = episodes
        self.generator.set_state(state["generator"])
