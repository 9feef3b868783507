"""Inpainting as an episode: fill the square hole in the centre of an image, one whole patch per step.

B episodes step together on one device, torch only. The contract (DESIGN §3), with S the image size and
h the hole size:

==========================  ==================================================================
call                        returns
==========================  ==================================================================
``reset(seed=None)``        ``obs``: uint8 ``(B, 4, S, S)``: RGB with the current patch pasted
                            into the hole, and channel 3 the hole mask (255 inside)
``step(patch)``             ``obs, reward, terminated, truncated, info``; ``patch`` is float
                            ``(B, 3, h, h)`` in [0, 1]; reward/terminated/truncated are ``(B,)``
``info["score"]``           ``(B,)`` PSNR (dB) of the hole after this step (before auto-reset)
``info["final_obs"]``       ``(B, 4, S, S)`` the observation this step produced, before auto-reset
``info["done"]``            ``(B,)`` terminated | truncated
``info["initial_score"]``   ``(B,)`` PSNR of the finished episode's first state (the mean fill)
``info["steps"]``           ``(B,)`` steps taken in the episode
``last_index``              ``(B,)`` the image index (into ``sampler.images``) each row of the
                            step just taken belongs to: what the replay stores instead of the image
==========================  ==================================================================

An episode starts with the hole filled with the mean colour of the visible pixels (the "identity": what a
one-line method does); each step *replaces* the hole with the actor's patch (not cumulative, as the
authors'), quantised to uint8 by the env so the policy acts on exactly what the buffer stores. The mask
channel is constant but tells the convolutional planner where the hole is without having to infer it from
content (cheap: the buffer never stores it). Reward ``"improvement"``: ``reward_scale * (PSNR_t - PSNR_{t-1})
+ done_bonus * terminated``; ``"absolute"``: the authors' ``reward_scale * PSNR_t + done_bonus * terminated``.
The episode terminates when the hole's PSNR reaches ``psnr_threshold``; a timeout is truncation.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..errors import UserError
from ..nn.functional import psnr
from .registration import check_episode_settings, quantise, replace_finished, step_reward

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


class InpaintingEnv:
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
        check_episode_settings(reward_mode, num_envs, max_steps)
        self.sampler, self.num_envs, self.max_steps = sampler, int(num_envs), int(max_steps)
        self.image_size = int(sampler.images.shape[-1])
        self.hole = hole_slice(self.image_size, hole_size)
        self.hole_size = int(hole_size)
        self.reward_mode, self.reward_scale, self.done_bonus = reward_mode, float(reward_scale), float(done_bonus)
        self.psnr_threshold = float(psnr_threshold)
        self.auto_reset, self.device = auto_reset, torch.device(device)
        self.image_shape = (self.image_size, self.image_size)
        mask = torch.zeros(1, 1, self.image_size, self.image_size, dtype=torch.uint8, device=self.device)
        mask[..., self.hole, self.hole] = 255
        self.mask = mask
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._state: dict[str, torch.Tensor] = {}
        self.last_index = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    @property
    def patch_shape(self) -> tuple[int, int, int]:
        return (3, self.hole_size, self.hole_size)

    # ------------------------------------------------------------------ episode state
    def _start(self, index: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
        truth = crop_hole(images, self.hole).contiguous()
        patch = mean_fill(images, self.hole)
        score = self.score(patch, truth)
        return {"index": index, "images": images, "truth": truth, "patch": patch,
                "steps": torch.zeros(images.shape[0], dtype=torch.long, device=self.device),
                "score": score, "initial_score": score.clone()}

    def _draw(self, n: int) -> dict[str, torch.Tensor]:
        index = self.sampler.sample(n, self.generator)
        return self._start(index, self.sampler.images[index])

    @staticmethod
    def score(patch: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """PSNR (dB) of uint8 patches ``(B, 3, h, h)`` against the truth, on the 0..255 scale, ``(B,)``."""
        return psnr(patch.float(), truth.float(), data_range=255.0)

    def observation(self, images: torch.Tensor | None = None, patch: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(B, 4, S, S)``: ``images`` with ``patch`` in the hole, then the mask (default: the episodes')."""
        images = self._state["images"] if images is None else images
        patch = self._state["patch"] if patch is None else patch
        filled = paste_hole(images, patch, self.hole)
        return torch.cat([filled, self.mask.expand(filled.shape[0], -1, -1, -1)], 1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._state = self._draw(self.num_envs)
        return self.observation()

    def reset_to(self, images: torch.Tensor) -> torch.Tensor:
        """Start episodes on given images (uint8 ``(B, 3, S, S)``; index -1); evaluation uses this."""
        check_images(images, self.image_size)
        images = images.to(self.device)
        index = torch.full((images.shape[0],), -1, dtype=torch.long, device=self.device)
        self._state = self._start(index, images)
        return self.observation()

    @property
    def patch(self) -> torch.Tensor:
        """The current hole content, uint8 ``(B, 3, h, h)``."""
        return self._state["patch"]

    @property
    def truth(self) -> torch.Tensor:
        """The true hole content, uint8 ``(B, 3, h, h)``."""
        return self._state["truth"]

    # ------------------------------------------------------------------ transition
    def step(self, patch: torch.Tensor):
        s = self._state
        if tuple(patch.shape) != tuple(s["patch"].shape):
            raise ValueError(f"action must be a patch of shape {tuple(s['patch'].shape)}; got {tuple(patch.shape)}")
        self.last_index = s["index"]
        new_patch = quantise(patch.detach())
        score = self.score(new_patch, s["truth"])
        steps = s["steps"] + 1
        terminated = score >= self.psnr_threshold
        truncated = (steps >= self.max_steps) & ~terminated
        reward = step_reward(score, s["score"], terminated, self.reward_mode, self.reward_scale, self.done_bonus)
        s.update(patch=new_patch, steps=steps, score=score)
        final_obs = self.observation()
        done = terminated | truncated
        info = {"score": score, "final_obs": final_obs, "done": done, "initial_score": s["initial_score"],
                "steps": steps}
        if not self.auto_reset:
            return final_obs, reward, terminated, truncated, info
        replace_finished(s, self._draw(self.num_envs), done)
        return self.observation(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Episodes by reference: the image indices, not the images (they are rebuilt from the sampler)."""
        episodes = {k: v.clone() for k, v in self._state.items() if k not in ("images", "truth")}
        return {"episodes": episodes, "generator": self.generator.get_state(), "last_index": self.last_index.clone()}

    def load_state_dict(self, state: dict) -> None:
        episodes = {k: v.to(self.device) for k, v in state["episodes"].items()}
        images = self.sampler.images[episodes["index"].clamp_min(0)]
        episodes["images"] = images
        episodes["truth"] = crop_hole(images, self.hole).contiguous()
        self._state = episodes
        self.generator.set_state(state["generator"])
        self.last_index = state["last_index"].to(self.device)
