"""Video style transfer as an episode: stylise a short clip frame by frame, a few whole-image steps per frame,
with two recurrent memories that live in the state (not in a module).

B episodes step together on one device, torch only. With S the frame size, F frames per clip, K steps per frame
and r the memory channels (``MemoryCodec.channels``):

==========================  ==================================================================================
call                        returns
==========================  ==================================================================================
``reset(seed=None)``        ``obs``: uint8 ``(B, 6 + r, S, S)``: the content frame, the current image, then the
                            two memories' codes (``MemoryCodec``)
``start_episodes(``         the same on given clips uint8 ``(B, F, 3, S, S)`` (evaluation)
``{"clips": clips})``
``step(action)``            ``obs, reward, terminated, truncated, info``; ``action`` float ``(B, 3 + r, S, S)`` in
                            [0, 1]: the new image, then the proposed memories' codes (what ``VideoActor`` emits)
``info["score"]``           ``(B,)`` minus the style-transfer loss of the image after this step
``info["final_obs"]``       ``(B, 6 + r, S, S)``: the observation this step led to, before auto-reset
``info["initial_score"]``   ``(B,)`` the score of the current frame's first state (the content frame itself)
``info["index"]``,          ``(B,)`` clip index and frame position of the step just taken (the replay stores
``info["position"]``        them, not frames)
``info["next_position"]``   ``(B,)`` the frame position of ``final_obs`` (one more after a frame's last step,
                            except at the clip's end)
``info["frame_end"]``       ``(B,)`` bool: the step was its frame's last
==========================  ==================================================================================

The timeline of one episode (one clip): frame 0 starts as its own content (the identity); each step *replaces*
the current image by the actor's (quantised to uint8 by the env); after K steps the next frame starts, again as
its own content. Reward (``common.step_reward``): ``reward_scale * (score_t - score_{t-1})`` within a frame (the
first step of a frame is compared with that frame's content). The episode ends (truncation, never termination)
after the last frame's K-th step.

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
from .base import BatchedEnv
from .common import quantise, replace_finished

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
    every clip (a clip never straddles two videos). ``frame(index, position)`` -> uint8 ``(n, 3, S, S)``.
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


class VideoStyleEnv(BatchedEnv):
    """Batched clip stylisation on ``BatchedEnv``'s step (the reward from ``common.step_reward``).

    Parameters
    ----------
    sampler : a ``ClipSampler`` (or anything with ``sample``, ``frame``, ``clip_frames``); ``None`` for an env that
        only plays given clips (``start_episodes({"clips": ...})``, evaluation)
    scorer : ``StyleObjective``-like: ``scorer(image float (B, 3, S, S), content_features) -> {"total": (B,)}``
        and ``scorer.content_features(content uint8) -> dict``; the score is ``-total``
    codec : the ``MemoryCodec`` of the memories
    num_envs : B
    frame_steps : K, steps per frame
    frame_state : commit the frame-wise memory between frames (``False``: it stays zero, the ablation)
    reward_mode : ``"improvement"`` (default) or ``"absolute"`` (``reward_scale * score``); no episode terminates,
        so the done bonus never applies
    auto_reset : start a new clip where one ends (training); off for evaluation
    clip_frames : F (default: the sampler's)

    All rows step in lockstep (they start together and every clip has ``F x K`` steps), so the env keeps a
    host-side count of the steps since they started and never reads a device tensor to decide whether a frame or
    a clip may end.
    """

    def __init__(self, sampler, scorer, codec: MemoryCodec, num_envs: int, frame_steps: int,
                 frame_state: bool = True, reward_mode: str = "improvement", reward_scale: float = 1.0,
                 auto_reset: bool = True, device: torch.device | str = "cpu", seed: int = 0,
                 clip_frames: int | None = None):
        if frame_steps < 1:
            raise UserError(f"frame_steps must be >= 1; got {frame_steps}")
        clip_frames = int(sampler.clip_frames if clip_frames is None else clip_frames)
        super().__init__(num_envs, frame_steps * clip_frames, reward_mode, reward_scale, auto_reset=auto_reset,
                         device=device, seed=seed)
        self.sampler, self.scorer, self.codec = sampler, scorer, codec
        self.frame_steps, self.frame_state, self.clip_frames = int(frame_steps), bool(frame_state), clip_frames
        self._clips: torch.Tensor | None = None  # frames of given clips (evaluation), else None
        self._clock = 0  # steps since the rows started (host-side; the rows step in lockstep)

    # ------------------------------------------------------------------ episodes
    def _frame(self, index: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        if self._clips is not None:
            return self._clips[torch.arange(len(position), device=self.device), position]
        return self.sampler.frame(index, position)

    def score(self, image: torch.Tensor, features: dict) -> torch.Tensor:
        """Minus the style-transfer loss of uint8 images ``(B, 3, S, S)``, ``(B,)``."""
        with torch.no_grad():
            return -self.scorer(image.float() / 255.0, features)["total"]

    def _features_of(self, state: dict) -> dict:
        return {k.split(":", 1)[1]: v for k, v in state.items() if k.startswith("feature:")}

    def draw(self, n: int) -> dict[str, torch.Tensor]:
        return {"index": self.sampler.sample(n, self.generator)}

    def start(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Clips by ``index`` into the sampler, or given ``clips`` uint8 ``(B, F, 3, S, S)`` (evaluation; their
        index is -1)."""
        if "clips" in episode:
            clips = episode["clips"]
            if clips.dim() != 5 or clips.shape[1] != self.clip_frames or clips.dtype != torch.uint8:
                raise UserError(f"clips must be uint8 (B, {self.clip_frames}, 3, S, S); got {tuple(clips.shape)} "
                                f"{clips.dtype}")
            self._clips = clips
            index = torch.full((clips.shape[0],), -1, dtype=torch.long, device=self.device)
        else:
            self._clips, index = None, episode["index"]
        self._clock = 0
        position = torch.zeros_like(index)
        content = self._frame(index, position)
        features = self.scorer.content_features(content)
        score = self.score(content, features)
        state = {"index": index, "position": position, "step": torch.zeros_like(index),
                 "steps": torch.zeros_like(index), "content": content, "current": content.clone(),
                 "memory": self.codec.zeros(len(index), self.device), "score": score, "initial_score": score.clone()}
        state.update({f"feature:{k}": v for k, v in features.items()})
        return state

    def observation(self) -> torch.Tensor:
        s = self._state
        return torch.cat([s["content"], s["current"], s["memory"]], 1)

    @property
    def current(self) -> torch.Tensor:
        return self._state["current"]

    @property
    def memory(self) -> torch.Tensor:
        return self._state["memory"]

    # ------------------------------------------------------------------ transition
    def check_action(self, action: torch.Tensor) -> None:
        current = self._state["current"]
        expected = (current.shape[0], 3 + self.codec.channels, *current.shape[2:])
        if tuple(action.shape) != expected:
            raise ValueError(f"action must be (B, 3 + r, S, S) = {expected}; got {tuple(action.shape)}")

    def transition_info(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The step about to be taken: clip ``index``, frame ``position``, ``frame_end`` (it is the frame's last
        step) and ``next_position``: the position of the step's final observation (one more at a frame's end,
        except at the clip's end), all ``(B,)``."""
        frame_end = state["step"] + 1 >= self.frame_steps
        following = (frame_end & (state["position"] < self.clip_frames - 1)).long()
        return {"index": state["index"], "position": state["position"], "frame_end": frame_end,
                "next_position": state["position"] + following}

    def advance(self, state: dict[str, torch.Tensor], action: torch.Tensor) -> dict[str, torch.Tensor]:
        """The new image replaces the current one and the proposed step memory the old one; the proposal is kept
        for ``settle`` (which commits its frame memory at a frame's end)."""
        quantised = quantise(action)
        image, proposal = quantised[:, :3], quantised[:, 3:]
        self._clock += 1
        return {"current": image, "memory": self.codec.with_step(state["memory"], proposal),
                "step": state["step"] + 1, "score": self.score(image, self._features_of(state)),
                "proposal": proposal}

    def settle(self, state: dict[str, torch.Tensor]) -> None:
        """A frame's last step (except the clip's) starts the next frame as its own content, the step memory
        zero and the frame memory the last step's proposal (zero without ``frame_state``)."""
        proposal = state.pop("proposal")
        if self._clock % self.frame_steps or self._clock >= self.max_steps:
            return  # no row is at a frame's end, or all are at the clip's end (lockstep)
        codec, step = self.codec, state["step"]
        following = (step >= self.frame_steps) & (state["position"] < self.clip_frames - 1)
        committed = proposal if self.frame_state else codec.zeros(len(step), self.device)
        position = torch.where(following, state["position"] + 1, state["position"])
        content = self._frame(state["index"].clamp_min(0), position)
        features = self.scorer.content_features(content)
        score = self.score(content, features)
        fresh = {"position": position, "content": content, "current": content, "step": torch.zeros_like(step),
                 "memory": codec.with_zero_step(self._commit(state["memory"], committed)), "score": score,
                 "initial_score": score, **{f"feature:{k}": v for k, v in features.items()}}
        replace_finished(state, {k: fresh.get(k, state[k]) for k in state}, following)

    def may_end(self, steps: torch.Tensor) -> bool:
        return self._clock >= self.max_steps  # fresh clips (two VGG passes) only when the clips end

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
        return {"episodes": {k: self._state[k].clone() for k in kept}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Also reads older checkpoints (their ``last_index``/``last_position`` are not needed any more)."""
        episodes = {k: v.to(self.device) for k, v in state["episodes"].items()}
        self._clips = None
        episodes["content"] = self.sampler.frame(episodes["index"].clamp_min(0), episodes["position"])
        features = self.scorer.content_features(episodes["content"])
        episodes.update({f"feature:{k}": v for k, v in features.items()})
        self._state = episodes
        self._clock = int(episodes["steps"].max()) if len(episodes["steps"]) else 0  # lockstep: one count
        self.generator.set_state(state["generator"])
