"""Deformable brain MRI registration (SPAC's task, upstream.md §6) on data that ships with nilearn.

Tasks ``brain2d`` (axial slices) and ``brain3d`` (the brain's bounding cube, small sizes). Pairs are
synthetic (``data/deformations.py``): the source is deformed twice by random diffeomorphisms and its
intensities changed twice, so the field that registers moving onto fixed is known and the error to it is
a metric besides label Dice, folding and NCC. 2-D training pairs come from the training slices, the
pinned evaluation pairs from held-out slices (every ``held_out_every``-th) with their own seed; held-out
slices are neighbours of training slices, so they test new deformations and intensities far more than
new anatomy: a second subject (Colin27, ``subject="colin27"``) is the real test.

========================================  ================================================================
member                                    meaning
========================================  ================================================================
``BrainPairs``                            the training bank: ``sample(n, generator)`` -> pair dicts
``BrainRegistrationTask.evaluate``        the pinned protocol of a ``Policy``: label Dice per step, per
                                          label, NCC, folding, error to the true field (pixels)
``BrainRegistrationTask.score_fields``    the same scores of any sequence of fields as an ``EvalResult``
                                          (a policy's rollout; per-pair iterative optimisation)
``evaluation_pairs(...)``                 the held-out pairs (with ``true_flow``)
``registration_report(pairs, flows)``     the protocol's metrics of a sequence of fields, as a dict
========================================  ================================================================
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..config import FAST_REGISTRATION, TrainConfig
from ..data.brain import SUBJECTS, axial_slices, crop_cube, load_subject
from ..data.deformations import synthetic_pairs
from ..envs.labelled_registration import LabelledRegistrationEnv
from ..errors import UserError
from ..evaluate import EvalResult, item_scores_of, metric_table
from ..nn.functional import folding_fraction, label_dice, ncc, warp, warp_labels
from ..policy import Policy, rollout
from .base import evaluation_steps
from .registration import RegistrationTask, check_registration

__all__ = ["BrainConfig", "BrainRegistrationTask", "Brain3DTask", "BrainPairs", "evaluation_pairs",
           "registration_report", "source_images", "check_pairs", "label_names", "EVAL_SEED"]


@dataclass(frozen=True)
class BrainConfig(TrainConfig):
    """Deformable brain MRI registration (tasks ``brain2d`` and ``brain3d``; upstream.md §6, SPAC).

    Pairs are synthetic: a slice (2-D) or the brain cube (3-D) of the MNI152 template deformed twice by
    random diffeomorphisms, with scanner-like intensity changes, so the true field is known. Reward and
    metric: mean Dice of the grey- and white-matter labels; auxiliary loss: -NCC + smoothness.
    """

    task: str = "brain2d"
    subject: str = "mni152"  #: "mni152" (nilearn) or "colin27" (Debian mricron-data)
    z_range: tuple[int, ...] = (50, 120)  #: axial slices used (2-D)
    held_out_every: int = 4  #: every k-th slice is held out for evaluation (2-D)
    deformation_strength: float = 1.5  #: velocity amplitude in pixels at 64 px, scaled with image_size (~2 px mean)
    deformation_grid: int = 5  #: control lattice of the random velocity fields
    deform_fixed: bool = True  #: deform the fixed image too (more varied pairs)
    intensity_changes: bool = True  #: gamma, bias field and noise, independently for fixed and moving
    bank_size: int = 2048  #: training pairs generated once at start-up (the env draws from them)
    max_step: float = 1.0  #: the largest displacement per step, pixels
    max_episode_steps: int = 20
    done_bonus: float = 1.0
    dice_threshold: float = 0.95
    ncc_window: int = 9
    smooth_weight: float = 1.0
    eval_pairs: int = 128  #: held-out pairs of the pinned evaluation protocol
    eval_steps: int = 20  #: T, deterministic steps per evaluation episode

    def validate(self) -> None:
        super().validate()
        self.check_divisible()
        check_registration(self)
        if self.subject not in SUBJECTS and not self.subject.startswith("prepared:"):
            raise UserError(f"unknown brain subject {self.subject!r}; choose one of {', '.join(SUBJECTS)} or "
                            f"prepared:<set>/<subject> (made by data_scripts/prepare_brain_volumes.py)")
        if self.task == "brain3d":
            if self.image_size < 8:
                raise UserError(f"brain cube size {self.image_size} is too small; use at least 8 voxels")
            return
        if len(self.z_range) != 2:
            raise UserError(f"z_range must be two slice indices (low, high); got {self.z_range}")
        if self.held_out_every < 2:
            raise UserError(f"held_out_every must be >= 2 (every k-th slice is held out); got {self.held_out_every}")


_BRAIN_PRESETS: dict[str, dict] = {
    # CPU presets: a strong smoothness weight on every step's field (30, not SPAC's 1) keeps the composed field
    # close to the true one; with 1 the policy keeps raising NCC by distortions and the field error grows
    "smoke": dict(FAST_REGISTRATION, image_size=32, total_env_steps=12_000, num_envs=32, bootstrap_env_steps=1_000,
                  batch_size=32, replay_ratio=2.0, buffer_capacity=12_000, bank_size=1024,
                  planner_widths=(8, 16, 16, 16), critic_widths=(8, 16, 16, 16), max_episode_steps=10,
                  smooth_weight=30.0, log_every_env_steps=2_000, checkpoint_every_env_steps=6_000, eval_pairs=48,
                  eval_steps=10),
    # 64 px trains too slowly for a CPU course (aux NCC had not moved after 470 updates): the course preset
    # is the smoke one trained 3.3x longer on a bigger bank; 64 and 128 px are for a GPU
    "course": dict(FAST_REGISTRATION, image_size=32, total_env_steps=40_000, num_envs=32, bootstrap_env_steps=1_000,
                   batch_size=32, replay_ratio=2.0, buffer_capacity=20_000, bank_size=4096,
                   planner_widths=(8, 16, 16, 16), critic_widths=(8, 16, 16, 16), max_episode_steps=10,
                   smooth_weight=30.0, log_every_env_steps=2_000, checkpoint_every_env_steps=10_000,
                   eval_steps=10),
    # SPAC's settings (upstream.md §6) on 2-D slices of the authors' 128 px scale; fixes as for digits
    "paper": dict(image_size=128, total_env_steps=1_000_000, num_envs=64, bootstrap_env_steps=20_000,
                  batch_size=32, replay_ratio=3.2, buffer_capacity=50_000, bank_size=4096,
                  planner_widths=(16, 32, 64, 64, 64), critic_widths=(16, 32, 64, 64, 64), max_step=1.0,
                  lr_planner=8e-6, lr_actor=4e-5, lr_critic=4e-5, init_log_alpha=-1.0, log_every_env_steps=10_000,
                  checkpoint_every_env_steps=100_000),
}
_BRAIN3D_PRESETS: dict[str, dict] = {
    "smoke": dict(_BRAIN_PRESETS["smoke"], task="brain3d", image_size=24, bank_size=64, total_env_steps=256,
                  num_envs=4, bootstrap_env_steps=64, batch_size=4, buffer_capacity=256, planner_widths=(4, 8, 8),
                  critic_widths=(4, 8, 8), eval_pairs=4, eval_steps=4, log_every_env_steps=128,
                  checkpoint_every_env_steps=256),
    "course": dict(_BRAIN_PRESETS["course"], task="brain3d", image_size=32, bank_size=256, total_env_steps=4_000,
                   num_envs=8, batch_size=8, buffer_capacity=4_000, planner_widths=(8, 16, 16),
                   critic_widths=(8, 16, 16), eval_pairs=16, eval_steps=10, log_every_env_steps=500),
    "paper": dict(_BRAIN_PRESETS["paper"], task="brain3d", image_size=128, bank_size=512, num_envs=4, batch_size=4,
                  buffer_capacity=800, planner_widths=(16, 32, 64, 64, 64, 64), critic_widths=(16, 32, 64, 64, 64)),
}

BRAIN_DEFAULTS = dict(image_size=64, planner_widths=(8, 16, 32, 32), critic_widths=(8, 16, 32, 32), plan_channels=1,
                      reward_scale=10.0)  # slices are resampled to image_size², cubes to image_size³

EVAL_SEED = 2024
_GENERATION_CHUNK = 128


def label_names(cfg: BrainConfig) -> tuple[str, ...]:
    """Names of labels 1..L of ``cfg.subject`` (grey and white matter for the shipped brains)."""
    return load_subject(cfg.subject).label_names


def source_images(cfg: BrainConfig, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and labels ``(K, 1, *S)`` of ``cfg.subject``: 2-D slices of ``split`` or the 3-D cube."""
    volume = load_subject(cfg.subject)
    if cfg.task == "brain3d":
        return crop_cube(volume, cfg.image_size)
    images, labels, z = axial_slices(volume, cfg.image_size, tuple(cfg.z_range))
    held_out = z % cfg.held_out_every == 0
    keep = held_out if split == "test" else ~held_out
    return images[keep], labels[keep]


def deformation_pixels(cfg: BrainConfig) -> float:
    """The velocity amplitude in pixels: ``deformation_strength`` is given at 64 px and scales with the size."""
    return cfg.deformation_strength * cfg.image_size / 64


def _generate(cfg: BrainConfig, images, labels, n: int, seed: int, with_truth: bool) -> dict[str, torch.Tensor]:
    """``n`` synthetic pairs, generated in chunks (bounded memory), deterministic from ``seed``."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    chunks = []
    for start in range(0, n, _GENERATION_CHUNK):
        chunks.append(synthetic_pairs(images, labels, len(label_names(cfg)), min(_GENERATION_CHUNK, n - start),
                                      deformation_pixels(cfg), cfg.deformation_grid, generator,
                                      deform_fixed=cfg.deform_fixed, intensity=cfg.intensity_changes,
                                      with_truth=with_truth))
    return {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}


def check_pairs(pairs: dict[str, torch.Tensor], image_shape: tuple[int, ...]) -> None:
    """One-line errors for evaluation pairs the task cannot score."""
    required = ("moving", "fixed", "moving_labels", "fixed_labels")
    missing = [k for k in required if k not in pairs]
    if missing:
        raise UserError(f"brain pairs lack {missing}; give uint8 tensors {required} of shape (B, 1, *S)")
    expected = pairs["moving"].shape
    if len(expected) != len(image_shape) + 2 or tuple(expected[2:]) != tuple(image_shape) or expected[1] != 1:
        raise UserError(f"moving images have shape {tuple(expected)}; this run registers (B, 1, "
                        f"{', '.join(map(str, image_shape))}) (resample them to the run's image_size)")
    for key in required[1:]:
        if pairs[key].shape != expected:
            raise UserError(f"brain pairs: {key} has shape {tuple(pairs[key].shape)} but moving has "
                            f"{tuple(expected)}; fixed, moving and their labels must share one shape")
    for key in ("moving_labels", "fixed_labels"):
        if not (pairs[key] > 0).flatten(1).any(1).all():
            raise UserError(f"brain pairs: some {key} maps are empty (all background); Dice needs labels")


class BrainPairs:
    """A bank of ``cfg.bank_size`` synthetic training pairs on the device; the env draws from it.

    Generating a pair costs two velocity integrations; drawing from a bank made once keeps the env step
    as cheap as the digits one.
    """

    def __init__(self, cfg: BrainConfig, device: torch.device):
        images, labels = source_images(cfg, "train")
        self.bank = {k: v.to(device) for k, v in
                     _generate(cfg, images.to(device), labels.to(device), cfg.bank_size, cfg.seed + 7, False).items()}
        self.image_shape = tuple(images.shape[2:])
        self.num_sources = images.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(0, self.bank["moving"].shape[0], (n,), device=self.bank["moving"].device,
                              generator=generator)
        return {k: self.bank[k][index] for k in ("moving", "fixed", "moving_labels", "fixed_labels")}


def evaluation_pairs(cfg: BrainConfig, n: int | None = None, device="cpu") -> dict[str, torch.Tensor]:
    """The pinned held-out pairs (seed ``EVAL_SEED``) with ``true_flow``."""
    images, labels = source_images(cfg, "test")
    return _generate(cfg, images.to(device), labels.to(device), n or cfg.eval_pairs, EVAL_SEED, True)


def validation_pairs(cfg: BrainConfig, n: int, seed: int, device="cpu") -> dict[str, torch.Tensor]:
    """``n`` new synthetic pairs of the training slices (seed ``seed``, never ``EVAL_SEED``): a validation split for
    choosing settings without the test pairs."""
    images, labels = source_images(cfg, "train")
    return _generate(cfg, images.to(device), labels.to(device), n, seed, True)


def step_label_dice(pairs: dict[str, torch.Tensor], flows: list[torch.Tensor], num_labels: int) -> torch.Tensor:
    """``(T+1, B, L)``: the Dice of every label of every pair after each accumulated field ``flows[t]``."""
    return torch.stack([label_dice(warp_labels(pairs["moving_labels"], flow, num_labels), pairs["fixed_labels"],
                                   num_labels) for flow in flows])


def registration_report(pairs: dict[str, torch.Tensor], flows: list[torch.Tensor], names: tuple[str, ...],
                        window: int = 9) -> dict:
    """The protocol's metrics of a sequence of accumulated fields ``flows[t]`` ``(B, N, *S)`` (t = 0 first).

    Dice is averaged over labels and pairs; ``field_error`` is the mean distance (pixels) to the true
    field inside the fixed image's labelled region; folding is of the last field. ``names``: of labels 1..L.
    """
    dice = step_label_dice(pairs, flows, len(names))  # (T+1, B, L)
    error_steps = []
    mask = (pairs["fixed_labels"] > 0).float()
    for flow in flows if "true_flow" in pairs else []:
        distance = (flow - pairs["true_flow"]).norm(dim=1, keepdim=True)
        error_steps.append(((distance * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)).mean())
    moving, fixed = pairs["moving"].float() / 255, pairs["fixed"].float() / 255
    final = flows[-1]
    report = {
        "dice_identity": dice[0].mean().item(),
        "dice_final": dice[-1].mean().item(),
        "dice_per_step": dice.mean((1, 2)).tolist(),
        "dice_per_label": {name: dice[-1, :, k].mean().item() for k, name in enumerate(names)},
        "dice_per_label_identity": {name: dice[0, :, k].mean().item() for k, name in enumerate(names)},
        "folding_fraction": folding_fraction(final).mean().item(),
        "ncc_identity": ncc(fixed, moving, window).mean().item(),
        "ncc_final": ncc(fixed, warp(moving, final), window).mean().item(),
        "n_pairs": int(dice.shape[1]),
        "item_scores": item_scores_of(dice[0].mean(1), dice[-1].mean(1)),
    }
    if error_steps:
        errors = torch.stack(error_steps).tolist()
        report.update(field_error_identity=errors[0], field_error_final=errors[-1], field_error_per_step=errors)
    return report


class BrainRegistrationTask(RegistrationTask):
    name = "brain2d"

    def __init__(self, cfg: BrainConfig, device: torch.device):
        self.label_names = label_names(cfg)
        super().__init__(cfg, device, BrainPairs(cfg, device))

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0) -> LabelledRegistrationEnv:
        cfg = self.cfg
        return LabelledRegistrationEnv(sampler, num_envs, cfg.max_episode_steps, len(self.label_names),
                                       reward_mode=cfg.reward_mode, reward_scale=cfg.reward_scale,
                                       done_bonus=cfg.done_bonus, dice_threshold=cfg.dice_threshold,
                                       auto_reset=auto_reset, device=self.device, seed=seed)

    def validation_options(self, n: int, seed: int) -> dict:
        """``evaluate`` options scoring a policy on a validation split of the training data (``validation_pairs``)."""
        return {"pairs": validation_pairs(self.cfg, n, seed, self.device)}

    def protocol(self, steps: int, n_pairs: int) -> dict:
        cfg = self.cfg
        source = ("the brain cube" if cfg.task == "brain3d"
                  else f"held-out axial slices (z % {cfg.held_out_every} == 0 in {tuple(cfg.z_range)})")
        return {
            "pairs": f"{n_pairs} synthetic pairs of {cfg.subject}, {source}, seed {EVAL_SEED}",
            "deformation": f"two SVFs, amplitude {deformation_pixels(cfg):g} px, lattice {cfg.deformation_grid}",
            "steps": steps,
            "policy": "deterministic (plan mean)",
            "dice": "mean over labels: " + ", ".join(self.label_names),
            "field_error": "mean |flow - true flow| in pixels inside the fixed labels",
        }

    def rollout_pairs(self, policy: Policy, pairs: dict[str, torch.Tensor], steps: int, keep: int = 8) -> dict:
        """Run ``policy`` on ``pairs``; returns the fields of every step and frames of the first ``keep``."""
        env = self.make_env(self.env.sampler, len(pairs["moving"]), auto_reset=False)
        obs = env.start_episodes({k: pairs[k] for k in ("moving", "fixed", "moving_labels", "fixed_labels")})
        records = rollout(env, policy, obs, steps, lambda env, obs: (env.flow.clone(), obs[:keep, 1:].cpu()))
        flows = [flow for flow, _ in records]
        return {"flows": flows, "moved": torch.stack([moved for _, moved in records]),
                "fixed": pairs["fixed"][:keep].cpu(), "keep_flows": torch.stack([f[:keep].cpu() for f in flows])}

    def step_scores(self, policy: Policy, pairs: dict[str, torch.Tensor], steps: int) -> torch.Tensor:
        """``(T+1, B)``: every pair's label Dice (mean over labels) after every step of ``policy`` on ``pairs`` (a
        dict like ``evaluation_pairs``)."""
        pairs = {k: v.to(self.device) for k, v in pairs.items()}
        with torch.no_grad():
            flows = self.rollout_pairs(policy, pairs, steps)["flows"]
        return step_label_dice(pairs, flows, len(self.label_names)).mean(2)

    def evaluate(self, policy: Policy, steps: int | None = None, n_pairs: int | None = None,
                 pairs: dict | None = None) -> EvalResult:
        """The pinned protocol of ``policy``: mean label Dice per step (the score), the error to the true field per
        step (``field_error``, when the pairs carry ``true_flow``), NCC, folding and per-label Dice.
        ``pairs`` (a dict like ``evaluation_pairs``) replaces the held-out pairs."""
        cfg = self.cfg
        started = time.perf_counter()
        steps = evaluation_steps(steps, cfg.eval_steps)
        if pairs is None:
            pairs = evaluation_pairs(cfg, n_pairs, self.device)
        check_pairs(pairs, self.image_shape)
        pairs = {k: v.to(self.device) for k, v in pairs.items()}
        episode = self.rollout_pairs(policy, pairs, steps)
        result = self.score_fields(pairs, episode.pop("flows"), self.protocol(steps, len(pairs["moving"])))
        result.artifacts["_rollout"] = episode
        result.timing["seconds"] = time.perf_counter() - started
        return result

    def score_fields(self, pairs: dict[str, torch.Tensor], flows: list[torch.Tensor], protocol: dict) -> EvalResult:
        """The protocol's scores of accumulated fields ``flows[t]`` ``(B, N, *S)`` on ``pairs`` (t = 0: the
        identity): what ``evaluate`` reports of a policy's rollout, and the chapter of per-pair iterative
        optimisation (``[zero field, optimised field]``)."""
        report = registration_report(pairs, flows, self.label_names, self.cfg.ncc_window)
        tables = {"dice": metric_table(report.pop("dice_per_step")),
                  "ncc": metric_table(identity=report.pop("ncc_identity"), final=report.pop("ncc_final")),
                  "folding_fraction": metric_table(identity=0.0, final=report["folding_fraction"])}  # no field: no fold
        metrics = {"dice": True, "ncc": True, "folding_fraction": False}
        if "field_error_per_step" in report:
            tables["field_error"] = metric_table(report.pop("field_error_per_step"))
            metrics["field_error"] = False
        items = report.pop("item_scores")
        details = {k: v for k, v in report.items()
                   if k not in ("dice_identity", "dice_final", "field_error_identity", "field_error_final")}
        return EvalResult(task=self.name, protocol=protocol, score_name="dice", higher_is_better=True,
                          score_per_step=tables["dice"]["per_step"], metrics=metrics, tables=tables, details=details,
                          item_scores=items)


class Brain3DTask(BrainRegistrationTask):
    name = "brain3d"
