"""Few-seed statistics for comparisons, on rliable (Agarwal et al., NeurIPS 2021).

Scores come as a matrix ``(seeds, items)``: every method is evaluated on the same items (test pairs, faces, images,
clips) in the same order, and seed ``s`` of two methods shares its data order and initial draws, so differences
pair up over both seeds and items.

==================================  ====================================================================
``interval(scores)``                the mean and its 95 % stratified-bootstrap interval (rliable; items are
                                    the strata and are resampled too, ``task_bootstrap=True``)
``paired(a, b, higher_is_better)``  ``a - b`` per (seed, item): the mean difference, its interval, rliable's
                                    probability of improvement, whether every seed's mean difference has the
                                    same sign, and the verdict ``significant``
==================================  ====================================================================

The verdict is deliberately conservative: with ``MIN_SEEDS`` seeds or more, the interval must exclude 0 *and*
every seed's mean difference must point the same way. The second condition is there because the stratified
bootstrap resamples seeds independently for each item, which treats a seed's effect as independent across items
and so understates the spread between training runs; requiring agreement across seeds puts that spread back.
With fewer seeds nothing is called significant (``reason`` says so).
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["interval", "paired", "MIN_SEEDS", "REPS"]

#: fewer seeds than this and no difference is called significant
MIN_SEEDS = 3
#: bootstrap replicates (rliable's default is 50,000; 2,000 keeps a comparison's statistics to seconds)
REPS = 2000


def _matrix(scores) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"scores must be a non-empty (seeds, items) matrix; got shape {array.shape}")
    return array


def interval(scores, reps: int = REPS, seed: int = 0) -> dict:
    """``{"mean", "ci95": [low, high]}`` of the mean of ``scores`` ``(seeds, items)``."""
    from rliable import library as rly

    array = _matrix(scores)
    # rliable's StratifiedBootstrap draws its indices from NumPy's global generator whatever random_state says:
    # seed it for the call (so a comparison's intervals are reproducible) and restore the caller's state after
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch deprecates the RandomState argument rliable passes on
            warnings.simplefilter("ignore", FutureWarning)
            points, intervals = rly.get_interval_estimates(
                {"x": array}, lambda x: np.array([x.mean()]), task_bootstrap=True, reps=reps,
                random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)
    low, high = intervals["x"][:, 0]
    return {"mean": float(points["x"][0]), "ci95": [float(low), float(high)]}


def paired(a, b, higher_is_better: bool = True, reps: int = REPS, seed: int = 0) -> dict:
    """Method ``a`` against ``b`` on the same ``(seeds, items)``: the difference ``a - b`` (raw units), its 95 %
    interval, ``probability_of_improvement`` (rliable: P(a better than b) on a random item's pair of runs),
    ``seeds_agree`` and ``significant`` (see the module docstring); ``better`` names the better one when
    significant."""
    from rliable import metrics

    a, b = _matrix(a), _matrix(b)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same (seeds, items) shape; got {a.shape} and {b.shape}")
    difference = a - b
    estimate = interval(difference, reps, seed)
    per_seed = difference.mean(1)
    sign = 1.0 if higher_is_better else -1.0
    improvement = float(metrics.probability_of_improvement(sign * a, sign * b))
    excludes_zero = estimate["ci95"][0] > 0 or estimate["ci95"][1] < 0
    agree = bool(np.all(per_seed > 0) or np.all(per_seed < 0))
    enough = a.shape[0] >= MIN_SEEDS
    significant = bool(enough and excludes_zero and agree)
    if not enough:
        reason = f"{a.shape[0]} seed(s): at least {MIN_SEEDS} are needed to call a difference significant"
    elif not excludes_zero:
        reason = "the 95 % interval contains 0"
    elif not agree:
        reason = "the seeds disagree on the sign of the difference"
    else:
        reason = "the 95 % interval excludes 0 and every seed agrees"
    better = None
    if significant:
        better = "a" if (estimate["mean"] > 0) == higher_is_better else "b"
    return {"difference": estimate["mean"], "ci95": estimate["ci95"], "per_seed": per_seed.tolist(),
            "probability_of_improvement": improvement, "seeds_agree": agree, "significant": significant,
            "better": better, "reason": reason}
