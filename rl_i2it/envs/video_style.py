"""Video style transfer as an episode: stylise a short clip frame by frame, a few whole-image steps per frame,
with two recurrent memories that live in the state (not in a module).

B episodes step together on one device, torch only. With S the frame size, F frames per clip, K steps per frame
and r the memory channels (``MemoryCodec.channels``):

==========================  ==================================================================================
call                        returns
==========================  ==================================================================================
``reset(seed=None)``        ``obs``: uint8 ``(B, 6 + r, S, S)``: the content frame, the current image, then the
                            two memories' codes (``MemoryCodec``)
``step(action)``            ``obs, reward, terminated, truncated, info``; ``action`` float ``(B, 3 + r, S, S)`` in
                            [0, 1]: the new image, then the proposed memories' codes (what ``VideoActor`` emits)
``info["score"]``           ``(B,)`` minus the style-transfer loss of the image after this step
``info["final_obs"]``       ``(B, 6 + r, S, S)``: the observation this step led to, before auto-reset
``info["initial_score"]``   ``(B,)`` the score of the current frame's first state (the content frame itself)
``last_index``              ``(B,)`` clip indices of the step just taken (the replay stores them, not frames)
``last_position``           ``(B,)`` frame positions in the clip of the step just taken
==========================  ==================================================================================

The timeline of one episode (one clip): frame 0 starts as its own content (the identity); each step *replaces*
the current image by the actor's (quantised to uint8 by the env); after K steps the next frame starts, again as
its own content. Reward: ``reward_scale * (score_t - score_{t-1})`` within a frame (the first step of a frame
is compared with that frame's content). The episode ends (truncation) after the last frame's K-th step.

The memories, both ``(B, M, g, g)`` on the plan grid and stored as uint8 codes in the observation:

* the **step-wise** state ``h``: the planner's ConvGRU state from step to step inside a frame; it is **reset to
  zero at every new frame**;
* the **frame-wise** state ``m``: what earlier frames left behind; the planner proposes a new ``m`` at every step,
  and the env **commits** the proposal of a frame's last step when the next frame starts; it is **reset to zero
  at every new clip** (and stays zero when the task's ``frame_state`` is off).

Both are quantised to 8 bits (``MemoryCodec``) exactly as images are: the policy acts on exactly what the replay
stores, and the learner recomputes the next memories from the stored incoming ones.
"""
from __future__ import annotations

import torch

from ..errors import UserError
from .registration import check_episode_settings, quantise, replace_finished

__all__ = ["MemoryCodec", "ClipSampler", "VideoStyleEnv"]


class MemoryCodec:
    """Two recurrent states ``(B, M, g, g)`` in [-1, 1] <-> ``channels`` uint8 planes ``(B, r, S, S)``.

    The states are flattened one after the other and zero-padded to ``r * S * S`` numbers; a value ``v`` is
    stored as ``round(127 v) + 128`` (so 0 is exact: code 128). ``to_unit`` gives the same codes as floats in
    [0, 1] (what an action carries; the env's ``quantise`` rounds them to the codes).
    """

    def __init__(self, memory_channels: int, grid: tuple[int, int], size: int):
        self.memory_channels, self.grid, self.size = int(memory_channels), tuple(grid), int(size)
        self.numbers = self.memory_channels * self.grid[0] * self.grid[1]
        self.channels = -(-2 * self.numbers // (size * size))  # ceil

    def zeros(self, batch: int, device=None) -> torch.Tensor:
        """The codes of two zero states, uint8 ``(B, r, S, S)``."""
        return torch.full((batch, self.channels, self.size, self.size), 128, dtype=torch.uint8, device=device)

    def to_unit(self, step: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """float states -> float codes in [0, 1] ``(B, r, S, S)`` (differentiable)."""
        flat = torch.cat([step.flatten(1), frame.flatten(1)], 1) * (127.0 / 255.0) + 128.0 / 255.0
        pad = self.channels * self.size * self.size - flat.shape[1]
        flat = torch.cat([flat, flat.new_full((flat.shape[0], pad), 128.0 / 255.0)], 1)
        return flat.view(-1, self.channels, self.size, self.size)

    def decode(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 codes (or float codes in [0, 1]) ``(B, r, S, S)`` -> ``(step, frame)``, each ``(B, M, g, g)``."""
        values = codes.float() if codes.dtype == torch.uint8 else codes * 255.0
        flat = (values.flatten(1)[:, : 2 * self.numbers] - 128.0) / 127.0
        step, frame = flat.split(self.numbers, 1)
        shape = (-1, self.memory_channels, *self.grid)
        return step.reshape(shape), frame.reshape(shape)

    def with_step(self, codes: torch.Tensor, step_codes_from: torch.Tensor) -> torch.Tensor:
        """Codes holding ``step_codes_from``'s step state and ``codes``' frame state (uint8 ``(B, r, S, S)``)."""
        flat, other = codes.flatten(1).clone(), step_codes_from.flatten(1)
        flat[:, : self.numbers] = other[:, : self.numbers]
        return flat.view_as(codes)

    def with_zero_step(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes with the step state reset to zero and the frame state kept."""
        flat = codes.flatten(1).clone()
        flat[:, : self.numbers] = 128
        return flat.view_as(codes)


class ClipSampler:
    """Clips of ``clip_frames`` consecutive frames out of a bank of videos.

    ``frames`` uint8 ``(T, 3, S, S)``: the videos one after the other; ``starts`` ``(N,)`` long: the first frame of
    every clip (a clip never straddles two videos). ``clip(index)`` -> uint8 ``(n, F, 3, S, S)``;
    ``frame(index, position)`` -> uint8 ``(n, 3, S, S)``.
    """

    def __init__(self, frames: torch.Tensor, starts: torch.Tensor, clip_frames: int):
        if len(starts) == 0:
            raise UserError(f"no clip of {clip_frames} frames fits the videos; use fewer clip_frames or more frames")
        self.frames, self.starts, self.clip_frames = frames, starts.to(frames.device), int(clip_frames)
        self.image_shape = tuple(frames.shape[1:])

    @classmethod
    def from_videos(cls, videos: list[torch.Tensor], clip_frames: int, device=None) -> "ClipSampler":
        starts, offset = [], 0
        for video in videos:
            starts += [offset + i for i in range(len(video) - clip_frames + 1)]
            offset += len(video)
        frames = torch.cat(videos).to(device)
        return cls(frames, torch.tensor(starts, dtype=torch.long), clip_frames)

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, len(self.starts), (n,), device=self.starts.device, generator=generator)

    def frame(self, index: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        return self.frames[self.starts[index.long()] + position.long()]

    def clip(self, index: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(self.clip_frames, device=self.starts.device)
        return self.frames[self.starts[index.long()][:, None] + offsets]


class VideoStyleEnv:
    """Batched clip stylisation.

    Parameters
    ----------
    sampler : a ``ClipSampler`` (or anything with ``sample``, ``frame``, ``clip_frames``)
    scorer : ``StyleObjective``-like: ``scorer(image float (B, 3, S, S), content_features) -> {"total": (B,)}``
        and ``scorer.content_features(content uint8) -> dict``; the score is ``-total``
    codec : the ``MemoryCodec`` of the memories
    num_envs : B
    frame_steps : K, steps per frame
    frame_state : commit the frame-wise memory between frames (``False``: it stays zero, the ablation)
    reward_mode : ``"improvement"`` (default) or ``"absolute"`` (``reward_scale * score``)
    auto_reset : start a new clip where one ends (training); off for evaluation
    """

    def __init__(self, sampler, scorer, codec: MemoryCodec, num_envs: int, frame_steps: int,
                 frame_state: bool = True, reward_mode: str = "improvement", reward_scale: float = 1.0,
                 auto_reset: bool = True, device: torch.device | str = "cpu", seed: int = 0):
        check_episode_settings(reward_mode, num_envs, frame_steps * int(sampler.clip_frames))
        if frame_steps < 1:
            raise UserError(f"frame_steps must be >= 1; got {frame_steps}")
        self.sampler, self.scorer, self.codec = sampler, scorer, codec
        self.num_envs, self.frame_steps, self.frame_state = int(num_envs), int(frame_steps), bool(frame_state)
        self.clip_frames = int(sampler.clip_frames)
        self.max_steps = self.clip_frames * self.frame_steps
        self.reward_mode, self.reward_scale = reward_mode, float(reward_scale)
        self.auto_reset, self.device = auto_reset, torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._state: dict[str, torch.Tensor] = {}
        self._features: dict[str, torch.Tensor] = {}
        self._clips: torch.Tensor | None = None  # frames given to reset_to (evaluation), else None
        self.last_index = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.last_position = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ episode state
    def _frame(self, index: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        if self._clips is not None:
            return self._clips[torch.arange(len(position), device=self.device), position]
        return self.sampler.frame(index, position)

    def score(self, image: torch.Tensor, features: dict) -> torch.Tensor:
        """Minus the style-transfer loss of uint8 images ``(B, 3, S, S)``, ``(B,)``."""
        with torch.no_grad():
            return -self.scorer(image.float() / 255.0, features)["total"]

    def _start(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        position = torch.zeros_like(index)
        content = self._frame(index, position)
        features = self.scorer.content_features(content)
        score = self.score(content, features)
        state = {"index": index, "position": position, "step": torch.zeros_like(index),
                 "steps": torch.zeros_like(index), "content": content, "current": content.clone(),
                 "memory": self.codec.zeros(len(index), self.device), "score": score, "initial_score": score.clone()}
        state.update({f"feature:{k}": v for k, v in features.items()})
        return state

    def observation(self, content: torch.Tensor | None = None, current: torch.Tensor | None = None,
                    memory: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(B, 6 + r, S, S)`` (default: the env's own episodes); the learner rebuilds stored ones with it."""
        s = self._state
        content = s["content"] if content is None else content
        current = s["current"] if current is None else current
        memory = s["memory"] if memory is None else memory
        return torch.cat([content, current, memory], 1)

    def _features_of(self, state: dict) -> dict:
        return {k.split(":", 1)[1]: v for k, v in state.items() if k.startswith("feature:")}

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._clips = None
        self._state = self._start(self.sampler.sample(self.num_envs, self.generator))
        return self.observation()

    def reset_to(self, clips: torch.Tensor) -> torch.Tensor:
        """Start episodes on given clips, uint8 ``(B, F, 3, S, S)`` with F = ``clip_frames`` (evaluation)."""
        if clips.dim() != 5 or clips.shape[1] != self.clip_frames or clips.dtype != torch.uint8:
            raise UserError(f"clips must be uint8 (B, {self.clip_frames}, 3, S, S); got {tuple(clips.shape)} "
                            f"{clips.dtype}")
        self._clips = clips.to(self.device)
        index = torch.full((clips.shape[0],), -1, dtype=torch.long, device=self.device)
        self._state = self._start(index)
        return self.observation()

    @property
    def current(self) -> torch.Tensor:
        return self._state["current"]

    @property
    def memory(self) -> torch.Tensor:
        return self._state["memory"]

    @property
    def state(self) -> dict[str, torch.Tensor]:
        """The episodes' tensors (read only): index, position, step, steps, content, current, memory, scores."""
        return self._state

    # ------------------------------------------------------------------ transition
    def step(self, action: torch.Tensor):
        s, codec = self._state, self.codec
        expected = (s["current"].shape[0], 3 + codec.channels, *s["current"].shape[2:])
        if tuple(action.shape) != expected:
            raise ValueError(f"action must be (B, 3 + r, S, S) = {expected}; got {tuple(action.shape)}")
        self.last_index, self.last_position = s["index"], s["position"]
        quantised = quantise(action.detach())
        image, proposal = quantised[:, :3], quantised[:, 3:]
        score = self.score(image, self._features_of(s))
        if self.reward_mode == "improvement":
            reward = self.reward_scale * (score - s["score"])
        else:
            reward = self.reward_scale * score
        step, steps = s["step"] + 1, s["steps"] + 1
        frame_end = step >= self.frame_steps
        truncated = frame_end & (s["position"] >= self.clip_frames - 1)
        terminated = torch.zeros_like(truncated)
        info_score = score
        # within a frame: the image and the new step state; the frame state is untouched
        s.update(current=image, memory=codec.with_step(s["memory"], proposal), step=step, steps=steps, score=score)
        advance = frame_end & ~truncated
        if bool(advance.any()):  # a host sync only where a frame may end (every K-th step in lockstep training)
            committed = proposal if self.frame_state else codec.zeros(len(step), self.device)
            following = {"position": torch.where(advance, s["position"] + 1, s["position"])}
            content = self._frame(s["index"].clamp_min(0), following["position"])
            features = self.scorer.content_features(content)
            following.update(content=content, current=content, step=torch.zeros_like(step),
                             memory=codec.with_zero_step(self._commit(s["memory"], committed)))
            following["score"] = self.score(content, features)
            following["initial_score"] = following["score"]
            following.update({f"feature:{k}": v for k, v in features.items()})
            replace_finished(s, {k: following.get(k, s[k]) for k in s}, advance)
        final_obs = self.observation()
        done = truncated
        info = {"score": info_score, "final_obs": final_obs, "done": done, "initial_score": s["initial_score"],
                "steps": steps, "frame_end": frame_end}
        if not self.auto_reset or not bool(done.any()):  # fresh clips (two VGG passes) only when one ends
            return final_obs, reward, terminated, truncated, info
        replace_finished(s, self._start(self.sampler.sample(self.num_envs, self.generator)), done)
        return self.observation(), reward, terminated, truncated, info

    def _commit(self, memory: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        """Codes with the proposal's frame state (the frame-wise memory after this frame) and any step state."""
        flat, other = memory.flatten(1).clone(), proposal.flatten(1)
        n = self.codec.numbers
        flat[:, n: 2 * n] = other[:, n: 2 * n]
        return flat.view_as(memory)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Episodes by reference: clip index and frame position, not the frames (rebuilt from the sampler)."""
        kept = ("index", "position", "step", "steps", "current", "memory", "score", "initial_score")
        return {"episodes": {k: self._state[k].clone() for k in kept}, "generator": self.generator.get_state(),
                "last_index": self.last_index.clone(), "last_position": self.last_position.clone()}

    def load_state_dict(self, state: dict) -> None:
        episodes = {k: v.to(self.device) for k, v in state["episodes"].items()}
        self._clips = None
        episodes["content"] = self.sampler.frame(episodes["index"].clamp_min(0), episodes["position"])
        features = self.scorer.content_features(episodes["content"])
        episodes.update({f"feature:{k}": v for k, v in features.items()})
        self._state = episodes
        self.generator.set_state(state["generator"])
        self.last_index = state["last_index"].to(self.device)
        self.last_position = state["last_position"].to(self.device)
