"""Deterministic evaluation: one result type for every task, and the registration tasks' rollout and metrics.

==========================================  ==============================================================
name                                        meaning
==========================================  ==============================================================
``EvalResult``                              a task's pinned protocol, scored: the score per step (step 0 =
                                            the first state, the identity), every metric's table, timing,
                                            named comparison methods; ``to_json()`` has the same top-level
                                            keys for every task (``EVAL_KEYS``)
``rollout_registration(policy, env,``       dict: ``moved`` uint8 ``(T+1, B, 1, *S)`` (step 0 = identity),
``moving, fixed, steps)``                   ``fixed`` ``(B, 1, *S)``, ``flow`` ``(B, N, *S)`` accumulated
``registration_metrics(rollout, thr)``      dict: ``dice_identity``, ``dice_final``, ``dice_per_step``
                                            (T+1 means), ``folding_fraction``, ``n_pairs``
==========================================  ==============================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .nn.functional import dice_score, folding_fraction
from .policy import Policy, rollout

__all__ = ["EvalResult", "EVAL_KEYS", "metric_table", "item_scores_of", "rollout_registration",
           "step_dice", "registration_metrics"]

#: the top-level keys of every task's ``eval.json`` (registration tasks add ``dice_identity``, ``dice_final`` and
#: ``dice_per_step``, the same numbers as the ``score_*`` keys)
EVAL_KEYS = ("task", "protocol", "score_name", "higher_is_better", "score_identity", "score_final", "score_per_step",
             "metrics", "tables", "timing", "comparisons", "details")


def metric_table(per_step: list[float] | None = None, identity: float | None = None,
                 final: float | None = None) -> dict:
    """``{"identity", "final", "per_step"}`` of one metric's per-step means (step 0 = identity), or of a metric
    measured only at the first state and the end (``per_step`` None)."""
    if per_step is None:
        return {"identity": identity, "final": final, "per_step": None}
    return {"identity": per_step[0], "final": per_step[-1], "per_step": list(per_step)}


def item_scores_of(identity: torch.Tensor, final: torch.Tensor) -> dict[str, list[float]]:
    """``EvalResult.item_scores`` from the per-item scores ``(N,)`` at the first state and at the end."""
    return {"identity": identity.detach().float().cpu().flatten().tolist(),
            "final": final.detach().float().cpu().flatten().tolist()}


@dataclass
class EvalResult:
    """A task's evaluation protocol, scored.

    ``score_name`` is the primary metric's key in ``metrics`` and ``tables`` (its description, if any, is
    ``protocol["score"]``); ``score_per_step`` is its mean at steps 0..T (0 = the first state: the identity);
    ``metrics`` maps every metric reported to whether higher is better; ``tables`` holds each metric's table
    (``metric_table``) and any sub-protocol's (a strict mask, same-class pairs); ``details`` holds the rest that
    is JSON-able and task-specific (counts, a baseline's training record); ``artifacts`` holds tensors and
    networks for figures and is never serialised; ``item_scores`` holds the score of every evaluation item at the
    first state and the end (``item_scores_of``), for comparisons paired over items. ``comparisons`` is filled by comparisons of named methods.

    For the chapters written against the older dict results, ``result[key]`` reads a top-level key, then a
    ``details`` entry, then an artifact (``"_rollout"``); ``result[key] = value`` writes a detail (an artifact
    when the key starts with ``_``).
    """

    task: str
    protocol: dict
    score_name: str
    higher_is_better: bool
    score_per_step: list[float]
    metrics: dict[str, bool] = field(default_factory=dict)
    tables: dict[str, dict] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    comparisons: dict[str, dict] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the score of every evaluation item (pair, face, image, clip) at the first state and the end, in the
    #: protocol's fixed order: ``{"identity": [...], "final": [...]}`` (paired comparisons); not in ``to_json``
    item_scores: dict[str, list[float]] | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.metrics and self.score_name not in self.metrics:
            raise ValueError(f"score_name {self.score_name!r} must be one of the metrics {sorted(self.metrics)} (a "
                             f"description of the score belongs in protocol['score'])")

    @property
    def score_identity(self) -> float:
        return self.score_per_step[0]

    @property
    def score_final(self) -> float:
        return self.score_per_step[-1]

    def to_json(self) -> dict:
        """The JSON-able result: ``EVAL_KEYS`` (+ the ``dice_*`` aliases for registration tasks)."""
        out = {"task": self.task, "protocol": self.protocol, "score_name": self.score_name,
               "higher_is_better": self.higher_is_better, "score_identity": self.score_identity,
               "score_final": self.score_final, "score_per_step": list(self.score_per_step),
               "metrics": dict(self.metrics), "tables": self.tables, "timing": self.timing,
               "comparisons": self.comparisons, "details": self.details}
        if self.score_name == "dice":
            out.update(dice_identity=self.score_identity, dice_final=self.score_final,
                       dice_per_step=list(self.score_per_step))
        return _finite(out)

    # ------------------------------------------------------------------ dict-style access (chapters, scripts)
    def __getitem__(self, key: str) -> Any:
        if key.startswith("_"):
            return self.artifacts[key]
        top = self.to_json()
        if key in top:
            return top[key]
        return self.details[key]

    def __setitem__(self, key: str, value: Any) -> None:
        (self.artifacts if key.startswith("_") else self.details)[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.artifacts or key in self.details or key in EVAL_KEYS or (
            self.score_name == "dice" and key in ("dice_identity", "dice_final", "dice_per_step"))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


def _finite(value):
    """NaN/inf (JSON has neither) -> None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- registration
def rollout_registration(policy: Policy, env, moving: torch.Tensor, fixed: torch.Tensor,
                         steps: int) -> dict[str, torch.Tensor]:
    """Register ``moving`` onto ``fixed`` (uint8 ``(B, 1, *S)``) for ``steps`` steps of ``policy`` (e.g.
    ``PlannerPolicy(planner, actor)``) in ``env`` (a registration env without auto-reset)."""
    obs = env.start_episodes({"moving": moving, "fixed": fixed})
    moved = rollout(env, policy, obs, steps, lambda env, obs: obs[:, 1:])
    return {"moved": torch.stack(moved), "fixed": obs[:, :1], "flow": env.flow.clone()}


def step_dice(rollout: dict[str, torch.Tensor], mask_threshold: int = 0) -> torch.Tensor:
    """``(T+1, B)``: Dice of ``moved > thr`` against ``fixed > thr`` for every pair after every step."""
    fixed = rollout["fixed"] > mask_threshold
    return torch.stack([dice_score(m > mask_threshold, fixed) for m in rollout["moved"]])


def registration_metrics(rollout: dict[str, torch.Tensor], mask_threshold: int = 0) -> dict:
    """Dice of ``moved > thr`` against ``fixed > thr`` at every step, and the final field's folding."""
    per_step = step_dice(rollout, mask_threshold)  # (T+1, B)
    means = per_step.mean(1).tolist()
    return {
        "dice_identity": means[0],
        "dice_final": means[-1],
        "dice_per_step": means,
        "folding_fraction": folding_fraction(rollout["flow"]).mean().item(),
        "n_pairs": int(per_step.shape[1]),
        "item_scores": item_scores_of(per_step[0], per_step[-1]),
    }
