"""Controls that separate iteration, RL and the plan: every method trained for the same learner updates.

``python -m rl_i2it compare --task T --preset P --seeds 0 1 2 [--updates N] --run-dir DIR [--json]`` (or
``run_comparison``) trains and evaluates, for each seed, the methods below with the task's pinned protocol, and
writes ``DIR/comparison.json`` (``SCHEMA_KEYS``).

=========================  =========================================================================================
method                     what it is
=========================  =========================================================================================
``identity``               the first state, untouched
``one_step``               the task's one-step network (``Task.baseline``) at T = 1
``one_step_iterated``      that same trained network applied T times to its own output (no retraining)
``cascade``                a recursive cascade (RCN, Zhao et al. 2019): the policy's planner + actor applied k times
                           with shared weights, trained end to end through all k on the auxiliary loss of the last
                           application + the regulariser of every earlier one
``aux_only``               the multi-step policy trained exactly like ``rl`` with ``rl_weight = 0``
``rl``                     the method as configured
``rl_plan_zero``,          the trained ``rl`` policy evaluated with its plan replaced by zeros, by another item's
``rl_plan_shuffled``,      plan, by a draw from N(0, I)
``rl_plan_prior``
``per_pair_optimisation``  registration only: Adam on one field per test pair, the same loss (no learning)
=========================  =========================================================================================

Budget: ``rl`` and ``aux_only`` run the env steps that give ``updates`` learner updates (each: a critic step and a
planner + actor step on a batch of ``batch_size``); ``one_step`` and ``cascade`` then train for exactly as many
updates as ``rl`` made, at the same batch size. Wall time is recorded beside. Registration one-step and cascade
networks pick their smoothness weight from ``smooth_weights`` by Dice on a validation split of the training data
(``Task.validation_options``), trained on the first seed; the sweep is reported.

Resuming: every finished (method, seed) is a file under ``DIR/results``; an interrupted RL run resumes from its
checkpoint under ``DIR/runs``. Running again with other settings is refused (use a new ``--run-dir``).

On Ray (``--ray``, ``run_comparison(..., ray={...})``): every missing (seed, unit) and sweep point as one task of
1 CPU (1 GPU on CUDA), through ``ray_pool``, the longest first; the runs of a swept unit start once its sweep points
are done (they need the chosen weight), after the long runs rather than before them; each task
writes its own result file, so the summary afterwards is the same as a sequential run's.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import stats
from .baselines import BASELINES
from .baselines.one_step import train_one_step_network
from .checkpoint import atomic_write_text
from .config import TrainConfig, make_config, resolve_preset
from .controls import (PLAN_CONTROLS, OwnOutputPolicy, PerPairOptimisationPolicy, plan_effect, plan_transform,
                       q_rank_correlation)
from .device import resolve_device
from .errors import UserError
from .evaluate import EvalResult
from .policy import PlannerPolicy
from .rundir import read_metrics_jsonl
from .tasks import TASKS, make_task
from .train import Trainer

__all__ = ["METHODS", "DESCRIPTIONS", "SCHEMA_KEYS", "CONTRASTS", "run_comparison", "rl_updates", "env_steps_for_updates",
           "comparison_config", "load_comparison", "comparison_table"]

METHODS = ("identity", "one_step", "one_step_iterated", "cascade", "aux_only", "rl", "rl_plan_zero",
           "rl_plan_shuffled", "rl_plan_prior", "per_pair_optimisation")
REGISTRATION_ONLY = ("per_pair_optimisation",)
DESCRIPTIONS = {
    "identity": "the first state, untouched",
    "one_step": "the task's one-step network, T = 1",
    "one_step_iterated": "the one-step network applied T times to its own output",
    "cascade": "recursive cascade (RCN): planner + actor applied k times, shared weights, trained end to end",
    "aux_only": "the multi-step policy trained on the auxiliary loss alone (rl_weight = 0)",
    "rl": "the method as configured (SAC + auxiliary loss)",
    "rl_plan_zero": "the rl policy with its plan replaced by zeros",
    "rl_plan_shuffled": "the rl policy acting on another item's plan",
    "rl_plan_prior": "the rl policy with plans drawn from N(0, I)",
    "per_pair_optimisation": "Adam on one field per test pair, the same loss, no learning",
}
#: the top-level keys of comparison.json
SCHEMA_KEYS = ("task", "preset", "seeds", "budget", "metric", "settings", "methods", "contrasts", "rl_diagnostics",
               "statistics", "smoothness_sweep")
#: what trains together: a unit's methods are written when the unit finishes
UNITS = {"rl": ("rl", "rl_plan_zero", "rl_plan_shuffled", "rl_plan_prior", "identity"), "aux_only": ("aux_only",),
         "one_step": ("one_step", "one_step_iterated"), "cascade": ("cascade",),
         "per_pair_optimisation": ("per_pair_optimisation",)}
#: the questions a comparison answers, each a paired contrast ``a`` against ``b`` (``compare.json["contrasts"]``)
CONTRASTS = {
    "iterating": ("does iterating help, trained step by step? (aux_only vs one_step)", "aux_only", "one_step"),
    "cascade": ("does iterating help, trained end to end? (cascade vs one_step)", "cascade", "one_step"),
    "iterating_untrained": ("does applying the one-step network again help? (one_step_iterated vs one_step)",
                            "one_step_iterated", "one_step"),
    "stepwise_vs_cascade": ("step-wise training against end to end (aux_only vs cascade)", "aux_only", "cascade"),
    "rl": ("does RL help on top of the auxiliary loss? (rl vs aux_only)", "rl", "aux_only"),
    "plan_shuffled": ("does the plan carry anything? (rl vs rl_plan_shuffled)", "rl", "rl_plan_shuffled"),
    "plan_zero": ("does the plan carry anything? (rl vs rl_plan_zero)", "rl", "rl_plan_zero"),
}
#: units by their training cost at equal updates (a cascade update is k passes; rl also evaluates its plan controls)
LONGEST_FIRST = ("cascade", "rl", "aux_only", "one_step", "per_pair_optimisation")
CASCADE_CAP = 10  #: the default k is the policy's T, capped here (each update costs k forward/backward passes)
VALIDATION_PAIRS, VALIDATION_SEED = 64, 7_331
PER_PAIR = {"iterations": 300, "lr": 0.1}


# ---------------------------------------------------------------------------------------------- budget
def default_cascade_steps(evaluation_steps: int) -> int:
    """The cascade's k when ``--cascade-steps`` is not given: the policy's T, capped at ``CASCADE_CAP``."""
    return min(evaluation_steps, CASCADE_CAP)


def default_smooth_weights(cfg: TrainConfig) -> tuple[float, ...]:
    """The smoothness weights swept when ``--smooth-weights`` is not given: a third of, equal to and three times
    the config's (none for a task without one)."""
    w = getattr(cfg, "smooth_weight", None)
    return () if w is None else (w / 3, w, 3 * w)


def rl_updates(cfg: TrainConfig) -> int:
    """The learner updates ``Trainer.train`` makes for ``cfg`` (the same credit arithmetic, step by step)."""
    credit, updates, env_steps = 0.0, 0, 0
    while env_steps < cfg.total_env_steps:
        env_steps += cfg.num_envs
        if env_steps >= cfg.bootstrap_env_steps:
            credit += cfg.replay_ratio * cfg.num_envs / cfg.batch_size
            while credit >= 1.0:
                credit -= 1.0
                updates += 1
    return updates


def env_steps_for_updates(cfg: TrainConfig, updates: int) -> int:
    """The fewest env steps (a multiple of ``num_envs``) at which ``Trainer.train`` has made ``updates`` updates."""
    if cfg.replay_ratio <= 0:
        raise UserError(f"replay_ratio is {cfg.replay_ratio}: RL makes no updates; a comparison needs > 0")
    per_collect = cfg.replay_ratio * cfg.num_envs / cfg.batch_size
    first = math.ceil(cfg.bootstrap_env_steps / cfg.num_envs)  # the first collect that updates
    collects = first - 1 + max(1, math.ceil(updates / per_collect))
    steps = collects * cfg.num_envs
    while rl_updates(dataclasses.replace(cfg, total_env_steps=steps)) < updates:  # float rounding: one more
        steps += cfg.num_envs
    return steps


# ---------------------------------------------------------------------------------------------- records
def _record(method: str, seed: int, result: EvalResult, updates: int, seconds: float, parameters: int,
            at: str = "final", **extra) -> dict:
    """One (method, seed): its score, per-step means and per-item scores at ``at`` (``identity`` or ``final``)."""
    per_step = result.score_per_step[:1] if at == "identity" else result.score_per_step
    return {"method": method, "seed": seed, "score_name": result.score_name,
            "higher_is_better": result.higher_is_better, "score": per_step[-1], "per_step": list(per_step),
            "items": result.item_scores[at], "updates": updates, "train_seconds": round(seconds, 2),
            "parameters": parameters, **extra}


def _count(*modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


class _Comparison:
    """One comparison's settings, run directory and evaluation task (shared by every method's evaluation)."""

    def __init__(self, task: str, preset: str, seeds, updates, run_dir, overrides, device, cascade_steps,
                 smooth_weights, methods, progress, sweep=("one_step",)):
        if task not in TASKS:
            raise UserError(f"unknown task {task!r}; choose one of: {', '.join(sorted(TASKS))}")
        self.preset = resolve_preset(preset)
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise UserError(f"--seeds must be distinct integers >= 0; got {seeds}")
        self.seeds, self.device, self.progress = seeds, resolve_device(device), progress
        base = make_config(task, self.preset, **(overrides or {}))
        if updates is not None:
            if int(updates) < 1:
                raise UserError(f"--updates must be >= 1; got {updates}")
            base = dataclasses.replace(base, total_env_steps=env_steps_for_updates(base, int(updates)))
        self.base, self.overrides = base, dict(overrides or {})
        self.updates = rl_updates(base)
        if self.updates < 1:
            raise UserError(f"the {self.preset} preset of {task} makes no learner updates (total_env_steps "
                            f"{base.total_env_steps} <= bootstrap_env_steps {base.bootstrap_env_steps}); pass --updates")
        self.registration = hasattr(base, "smooth_weight")
        wanted = tuple(methods) if methods else METHODS
        unknown = [m for m in wanted if m not in METHODS]
        if unknown:
            raise UserError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        self.methods = tuple(m for m in METHODS if m in wanted and (self.registration or m not in REGISTRATION_ONLY))
        steps = getattr(base, "frame_steps", None) or base.eval_steps
        self.period = steps  # T: the steps of one evaluation episode (of one frame for video)
        self.cascade_steps = int(cascade_steps or default_cascade_steps(steps))
        if self.cascade_steps < 1:
            raise UserError(f"--cascade-steps must be >= 1; got {cascade_steps}")
        if smooth_weights is None:
            smooth_weights = default_smooth_weights(base)
        elif smooth_weights and not self.registration:
            raise UserError(f"--smooth-weights applies to the registration tasks only; {task} has no smoothness "
                            f"weight")
        if any(w < 0 for w in smooth_weights):
            raise UserError(f"--smooth-weights must be >= 0; got {list(smooth_weights)}")
        self.smooth_weights = tuple(float(w) for w in smooth_weights)
        unknown = [u for u in sweep if u not in ("one_step", "cascade")]
        if unknown:
            raise UserError(f"--sweep takes one_step and/or cascade; got {unknown}")
        self.sweep_units = tuple(u for u in ("one_step", "cascade") if u in sweep)
        if run_dir is None:
            raise UserError("compare needs --run-dir DIR (where comparison.json and every run go)")
        self.run_dir = Path(run_dir)
        self.settings = {"task": task, "preset": self.preset, "updates": self.updates,
                         "batch_size": base.batch_size, "total_env_steps": base.total_env_steps,
                         "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in self.overrides.items()},
                         "cascade_steps": self.cascade_steps, "smooth_weights": list(self.smooth_weights),
                         "swept": list(self.sweep_units) if len(self.smooth_weights) > 1 else [],
                         "evaluation_steps": steps, "per_pair": PER_PAIR if self.registration else None}
        self._check_settings()
        self._eval_task = None

    # ------------------------------------------------------------------ run directory
    def _check_settings(self) -> None:
        path = self.run_dir / "settings.json"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if path.exists():
                before = json.loads(path.read_text())
                changed = {k: (before.get(k), v) for k, v in self.settings.items() if before.get(k) != v}
                if changed:
                    detail = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
                    raise UserError(f"{self.run_dir} holds a comparison with other settings ({detail}); resume it "
                                    f"with the same arguments or pass a new --run-dir")
            else:
                atomic_write_text(path, json.dumps(self.settings, indent=1))
        except OSError as error:
            raise UserError(f"cannot use run directory {self.run_dir}: {error.strerror or error}") from None

    def result_path(self, method: str, seed: int) -> Path:
        return self.run_dir / "results" / f"{method}-seed{seed}.json"

    def done(self, unit: str, seed: int) -> bool:
        return all(self.result_path(m, seed).exists() for m in UNITS[unit] if m in self.methods)

    def write(self, records: list[dict]) -> None:
        for record in records:
            if record["method"] in self.methods:
                path = self.result_path(record["method"], record["seed"])
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(record))

    def read(self, method: str, seed: int) -> dict:
        return json.loads(self.result_path(method, seed).read_text())

    def say(self, text: str) -> None:
        if self.progress:
            print(f"[compare {self.base.task}/{self.preset}] {text}", flush=True)

    # ------------------------------------------------------------------ evaluation
    @property
    def eval_task(self):
        """One task for every evaluation (its data loaded once)."""
        if self._eval_task is None:
            torch.manual_seed(0)
            self._eval_task = make_task(self.base, self.device)
        return self._eval_task

    def config(self, seed: int, **changes) -> TrainConfig:
        return dataclasses.replace(self.base, seed=seed, **changes)

    # ------------------------------------------------------------------ units
    def run_rl(self, seed: int, unit: str) -> list[dict]:
        """``rl`` (with its plan controls and the identity) or ``aux_only``: the Trainer, resumable."""
        cfg = self.config(seed, **({"rl_weight": 0.0} if unit == "aux_only" else {}))
        run_dir = self.run_dir / "runs" / unit / f"seed{seed}"
        with Trainer(cfg, run_dir=run_dir, device=self.device, if_exists="resume") as trainer:
            trainer.train(progress=self.progress)
            task = trainer.task
            policy_parameters = _count(task.planner, task.actor)
            seconds = trainer.wall_time
            result = self.eval_task.evaluate(task.policy())
            records = [_record(unit, seed, result, trainer.updates, seconds, policy_parameters,
                               training_parameters=sum(task.parameter_counts().values()))]
            probe_env = self.eval_task.make_env(self.eval_task.env.sampler, 64, auto_reset=False,
                                                seed=VALIDATION_SEED)
            probe = self.eval_task.initial_batch(probe_env)
            rho = q_rank_correlation(task, probe_env, probe["obs"], seed=seed)  # NaN: no plan changed the score
            records[0]["q_rank_correlation"] = None if math.isnan(rho) else rho
            if unit != "rl":  # aux_only: its plan's authority too (rl's comes from its rl_plan_shuffled record)
                shuffled = self.eval_task.evaluate(task.policy(plan_transform=plan_transform("shuffled", seed)))
                records[0]["shuffled_score"] = shuffled.score_per_step[-1]
                return records
            records.append(_record("identity", seed, result, 0, 0.0, 0, at="identity"))
            for name in PLAN_CONTROLS:
                controlled = self.eval_task.evaluate(task.policy(plan_transform=plan_transform(name, seed)))
                records.append(_record(f"rl_plan_{name}", seed, controlled, trainer.updates, seconds,
                                       policy_parameters))
            log = [{k: row.get(k) for k in ("updates", "alpha", "sigma", "sigma_min", "plan_mean_abs", "kl",
                                            "log_prob", "q")}
                   for row in read_metrics_jsonl(run_dir / "metrics.jsonl")]
            records[0]["diagnostics"] = {"action_change": plan_effect(task, probe["obs"]), "log": log}
        return records

    def train_network(self, seed: int, unit: str, smooth_weight: float | None) -> EvalResult:
        changes = {} if smooth_weight is None else {"smooth_weight": smooth_weight}
        cfg = self.config(seed, **changes)
        if unit == "cascade":
            return train_one_step_network(cfg, seconds=math.inf, device=self.device, batch_size=cfg.batch_size,
                                          max_iterations=self.updates, cascade=self.cascade_steps)
        trainer = BASELINES[TASKS[cfg.task].baseline]
        return trainer(cfg, seconds=math.inf, device=self.device, batch_size=cfg.batch_size,
                       max_iterations=self.updates)

    def network_records(self, seed: int, unit: str, trained: EvalResult, smooth_weight) -> list[dict]:
        """``one_step`` (+ ``one_step_iterated``) or ``cascade`` records of a trained network."""
        baseline = trained["baseline"]
        extra = {"kind": baseline["kind"]} | ({} if smooth_weight is None else {"smooth_weight": smooth_weight})
        result = self.eval_task.evaluate(trained["_policy"], steps=self.cascade_steps if unit == "cascade" else 1)
        records = [_record(unit, seed, result, baseline["iterations"], baseline["seconds"], baseline["parameters"],
                           **extra)]
        if unit == "one_step":
            policy = trained["_policy"]
            if not isinstance(policy, PlannerPolicy):  # a network of the input image: feed it its own output
                policy = OwnOutputPolicy(policy, self.period)
            iterated = self.eval_task.evaluate(policy)
            records.append(_record("one_step_iterated", seed, iterated, baseline["iterations"], baseline["seconds"],
                                   baseline["parameters"], **extra))
        return records

    def chosen_weight(self, unit: str) -> float | None:
        """The smoothness weight of ``unit`` by validation Dice (trained on the first seed); sweep files cached. A
        unit not swept uses the config's weight."""
        if not self.smooth_weights:
            return None
        if unit not in self.sweep_units:
            return float(self.base.smooth_weight)
        if len(self.smooth_weights) == 1:
            return self.smooth_weights[0]
        scores = {}
        for weight in self.smooth_weights:
            path = self.train_sweep_point(unit, weight)
            scores[weight] = json.loads(path.read_text())["validation_score"]
        return max(scores, key=scores.get)

    def train_sweep_point(self, unit: str, weight: float) -> Path:
        """Train ``unit`` at smoothness ``weight`` on the first seed and score it on the validation split, unless
        done: -> the sweep file (its validation score and its test records)."""
        path = self.run_dir / "results" / f"sweep-{unit}-w{weight:g}.json"
        if not path.exists():
            self.say(f"{unit}: smoothness sweep, weight {weight:g} (seed {self.seeds[0]})")
            trained = self.train_network(self.seeds[0], unit, weight)
            options = self.eval_task.validation_options(VALIDATION_PAIRS, VALIDATION_SEED)
            steps = self.cascade_steps if unit == "cascade" else 1
            validation = self.eval_task.evaluate(trained["_policy"], steps=steps, **options)
            records = self.network_records(self.seeds[0], unit, trained, weight)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps({"weight": weight, "validation_score": validation.score_final,
                                                "records": records}))
        return path

    def run_network(self, seed: int, unit: str) -> list[dict]:
        weight = self.chosen_weight(unit)
        sweep = self.run_dir / "results" / f"sweep-{unit}-w{weight:g}.json" if weight is not None else None
        if seed == self.seeds[0] and sweep is not None and sweep.exists():
            return json.loads(sweep.read_text())["records"]  # the sweep already trained this (seed, weight)
        return self.network_records(seed, unit, self.train_network(seed, unit, weight), weight)

    def run_per_pair(self, seed: int) -> list[dict]:
        """Deterministic given the pairs: computed once, the same record for every seed."""
        first = self.result_path("per_pair_optimisation", self.seeds[0])
        if seed != self.seeds[0] and first.exists():
            return [{**self.read("per_pair_optimisation", self.seeds[0]), "seed": seed}]
        cfg = self.base
        policy = PerPairOptimisationPolicy(PER_PAIR["iterations"], PER_PAIR["lr"], cfg.smooth_weight, cfg.ncc_window)
        started = time.perf_counter()
        result = self.eval_task.evaluate(policy, steps=1)
        return [_record("per_pair_optimisation", seed, result, 0, time.perf_counter() - started, 0,
                        smooth_weight=cfg.smooth_weight, **PER_PAIR)]

    def units(self) -> list[str]:
        units = [u for u in UNITS if any(m in self.methods for m in UNITS[u])]
        if "identity" in self.methods and "rl" not in units:
            units.insert(0, "rl")  # the identity is read off rl's evaluation
        return units

    def sweep_points(self) -> list[tuple[str, float]]:
        """The (unit, smoothness weight) trainings of the sweeps still to run."""
        if len(self.smooth_weights) < 2:
            return []
        return [(unit, weight) for unit in self.sweep_units if unit in self.units() for weight in self.smooth_weights
                if not (self.run_dir / "results" / f"sweep-{unit}-w{weight:g}.json").exists()]

    def jobs(self) -> list[tuple[int, str]]:
        """The (seed, unit) trainings still to run, the longest units first (``LONGEST_FIRST``: two Ray workers
        then finish together instead of one waiting on a cascade started last)."""
        order = sorted(self.units(), key=LONGEST_FIRST.index)
        return [(seed, unit) for unit in order for seed in self.seeds if not self.done(unit, seed)]

    def first_ray_phase(self) -> list[tuple]:
        """What Ray can start at once: every sweep point and every run that does not wait on a chosen weight, the
        longest first (a sweep point trains the unit it sweeps, so it takes that unit's place). The runs of the swept
        units follow once the points are done (``jobs()`` then): one barrier, after the long runs, not before them."""
        points = self.sweep_points()
        waiting = {unit for unit, _ in points}
        jobs = [("run", seed, unit) for seed, unit in self.jobs() if unit not in waiting]
        jobs += [("sweep", unit, weight) for unit, weight in points]
        return sorted(jobs, key=lambda job: LONGEST_FIRST.index(job[2] if job[0] == "run" else job[1]))

    def run_job(self, seed: int, unit: str) -> None:
        self.say(f"{unit}, seed {seed} ({self.updates} updates)")
        if unit in ("rl", "aux_only"):
            records = self.run_rl(seed, unit)
        elif unit == "per_pair_optimisation":
            records = self.run_per_pair(seed)
        else:
            records = self.run_network(seed, unit)
        self.write(records)

    def run(self, ray: dict | None = None) -> dict:
        """Every missing run (on Ray when ``ray`` holds ``ray_session``'s keyword arguments), then the summary."""
        if ray is not None:
            _run_on_ray(self, ray)
        for seed, unit in self.jobs():
            self.run_job(seed, unit)
        comparison = self.summarise()
        atomic_write_text(self.run_dir / "comparison.json", json.dumps(comparison, indent=1))
        return comparison

    # ------------------------------------------------------------------ summary
    def summarise(self) -> dict:
        methods, matrices = {}, {}
        for method in self.methods:
            records = [self.read(method, seed) for seed in self.seeds]
            matrix = np.array([r["items"] for r in records], dtype=np.float64)
            matrices[method] = matrix
            per_step = _mean_per_step([r["per_step"] for r in records])
            estimate = stats.interval(matrix)
            entry = {"description": DESCRIPTIONS[method], "final": float(np.mean([r["score"] for r in records])),
                     "sd": float(np.std([r["score"] for r in records], ddof=1)) if len(records) > 1 else None,
                     "per_seed": [r["score"] for r in records], "per_step": per_step, "ci95": estimate["ci95"],
                     "updates": records[0]["updates"], "train_seconds": [r["train_seconds"] for r in records],
                     "parameters": records[0]["parameters"]}
            for key in ("kind", "smooth_weight", "training_parameters"):
                if key in records[0]:
                    entry[key] = records[0][key]
            methods[method] = entry
        higher = self._higher_is_better()
        self._plan_authority(methods, higher)
        if "rl" in methods:
            methods["rl"]["paired"] = {other: stats.paired(matrices["rl"], matrices[other], higher)
                                       for other in methods if other != "rl"}
        contrasts = {}
        for name, (question, a, b) in CONTRASTS.items():
            if a in matrices and b in matrices:
                contrasts[name] = {"question": question, "a": a, "b": b,
                                   **stats.paired(matrices[a], matrices[b], higher)}
        diagnostics = {}
        if "rl" in self.methods:
            for seed in self.seeds:
                diagnostics[str(seed)] = self.read("rl", seed).get("diagnostics")
        sweep = {}
        for unit in ("one_step", "cascade"):
            files = sorted((self.run_dir / "results").glob(f"sweep-{unit}-w*.json"))
            if files:
                values = {json.loads(f.read_text())["weight"]: json.loads(f.read_text())["validation_score"]
                          for f in files}
                sweep[unit] = {"validation": {f"{w:g}": s for w, s in sorted(values.items())},
                               "chosen": max(values, key=values.get),
                               "validation_items": VALIDATION_PAIRS, "trained_on_seed": self.seeds[0]}
        return {
            "task": self.base.task, "preset": self.preset, "seeds": self.seeds,
            "budget": {"updates": self.updates, "batch_size": self.base.batch_size,
                       "rl_env_steps": self.base.total_env_steps},
            "metric": {"name": self._score_name, "higher_is_better": higher},
            "settings": self.settings, "methods": methods, "contrasts": contrasts, "rl_diagnostics": diagnostics,
            "statistics": stats.__doc__.split("\n\n")[0] + " " + stats.paired.__doc__.split("\n")[0],
            "smoothness_sweep": sweep,
        }

    def _plan_authority(self, methods: dict, higher: bool) -> None:
        """``plan_shuffle_drop`` (the score lost when each item acts on another's plan; > 0: the plan carries
        something) and ``q_rank_correlation`` (``controls.q_rank_correlation``) of ``rl`` and ``aux_only``, mean and
        per seed; ``None`` where a run predates them."""
        sign = 1.0 if higher else -1.0
        for unit in ("rl", "aux_only"):
            if unit not in methods:
                continue
            records = [self.read(unit, seed) for seed in self.seeds]
            if unit == "rl" and "rl_plan_shuffled" in methods:
                shuffled = [self.read("rl_plan_shuffled", seed)["score"] for seed in self.seeds]
            else:
                shuffled = [r.get("shuffled_score") for r in records]
            drops = [None if b is None else sign * (r["score"] - b) for r, b in zip(records, shuffled)]
            ranks = [r.get("q_rank_correlation") for r in records]
            for key, values in (("plan_shuffle_drop", drops), ("q_rank_correlation", ranks)):
                known = [v for v in values if v is not None and not math.isnan(v)]
                methods[unit][key] = {"mean": float(np.mean(known)) if known else None, "per_seed": values}

    def _higher_is_better(self) -> bool:
        if not hasattr(self, "_direction"):
            probe = self.read(self.methods[0], self.seeds[0])
            self._direction = probe.get("higher_is_better")
        return self._direction

    @property
    def _score_name(self) -> str:
        return self.read(self.methods[0], self.seeds[0]).get("score_name")


def _mean_per_step(rows: list[list[float]]) -> list[float]:
    length = min(len(r) for r in rows)
    return [float(np.mean([r[k] for r in rows])) for k in range(length)]


def run_comparison(task: str, preset: str = "auto", seeds=(0, 1, 2), updates: int | None = None, run_dir=None,
                   overrides: dict | None = None, device: str = "auto", cascade_steps: int | None = None,
                   smooth_weights=None, methods=None, progress: bool = True,
                   sweep=("one_step",), ray: dict | None = None) -> dict:
    """Run (or resume) a comparison; returns what ``DIR/comparison.json`` holds (see the module docstring).
    ``sweep``: which of one_step and cascade choose their smoothness weight from ``smooth_weights`` (the others
    use the config's; by default only the one-step network sweeps: its single field is penalised once, while the
    cascade, like ``aux_only`` and ``rl``, penalises every application with the per-step weight). ``ray``: run every (method, seed) as a Ray task, 1 CPU each (and 1 GPU on a CUDA
    device); its keys: ``address`` (an existing cluster), ``local_cpus``/``local_gpus`` (bound a local
    instance started for the comparison)."""
    arguments = dict(task=task, preset=preset, seeds=seeds, updates=updates, run_dir=run_dir, overrides=overrides,
                     device=device, cascade_steps=cascade_steps, smooth_weights=smooth_weights, methods=methods,
                     progress=progress, sweep=sweep)
    comparison = _Comparison(**arguments)
    comparison.arguments = arguments
    return comparison.run(ray)


def _run_remote(job: tuple, arguments: dict) -> None:
    """One Ray task: the sweep point ``("sweep", unit, weight)`` or the run ``("run", seed, unit)``."""
    comparison = _Comparison(**{**arguments, "progress": False})
    if job[0] == "sweep":
        comparison.train_sweep_point(job[1], job[2])
    else:
        comparison.run_job(job[1], job[2])


def _run_on_ray(comparison: "_Comparison", ray_options: dict) -> None:
    """``first_ray_phase`` (the sweep points beside every run that needs no chosen weight), then the rest, each a
    Ray task; a failed task is named and the driver goes on (what it leaves undone runs in the driver afterwards)."""
    from .ray_pool import map_unordered, ray_session

    gpus = 1.0 if comparison.device.type == "cuda" else 0.0
    arguments = {**comparison.arguments, "device": comparison.device.type,  # a worker sees only its own GPU
                 "run_dir": str(comparison.run_dir.resolve())}
    with ray_session(f"compare {comparison.base.task}", 1.0, gpus, ray_options.get("address"),
                     ray_options.get("local_cpus"), ray_options.get("local_gpus"),
                     fix="raise --ray-cpus/--ray-gpus or use a cluster") as ray:
        for phase in (comparison.first_ray_phase, lambda: [("run", seed, unit) for seed, unit in comparison.jobs()]):
            jobs = phase()
            for done, (job, _, error) in enumerate(map_unordered(ray, _run_remote, jobs, 1.0, gpus,
                                                                 arguments=arguments), 1):
                comparison.say(f"[{done}/{len(jobs)}] {' '.join(map(str, job[1:]))} "
                               + (f"failed on Ray: {type(error).__name__}: {error}" if error else "done on Ray"))


def comparison_config(comparison: dict) -> TrainConfig:
    """The preset's config with the comparison's ``--set`` overrides (JSON lists back to tuples): every field a run
    of it trained with, the ones left at the preset's value included (before ``--updates`` changes the budget)."""
    overrides = comparison["settings"].get("overrides") or {}
    return make_config(comparison["task"], comparison["preset"],
                       **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def load_comparison(path) -> dict:
    """A ``comparison.json`` (or the directory holding one), checked for ``SCHEMA_KEYS``."""
    path = Path(path)
    if path.is_dir():
        path = path / "comparison.json"
    if not path.exists():
        raise UserError(f"{path} does not exist; run python -m rl_i2it compare --run-dir {path.parent} first")
    comparison = json.loads(path.read_text())
    missing = [k for k in SCHEMA_KEYS if k not in comparison]
    if missing:
        raise UserError(f"{path} is not a comparison (lacks {missing}); rerun compare to regenerate it")
    return comparison


def comparison_table(comparison: dict, digits: int = 3) -> str:
    """A markdown table of a comparison: every method's final score (mean ± sd over seeds) and 95 % interval,
    updates, mean train seconds, parameters, and rl's paired verdict against it."""
    metric = comparison["metric"]
    arrow = "higher" if metric["higher_is_better"] else "lower"
    seeds = len(comparison["seeds"])
    head = (f"| method | {metric['name']} ({arrow} is better; mean ± sd over {seeds} seed(s)) | 95 % interval | "
            f"updates | train s | parameters | rl vs method: difference [95 %], verdict |\n"
            "|---|---|---|---|---|---|---|\n")
    paired = comparison["methods"].get("rl", {}).get("paired", {})
    rows = []
    for name, entry in comparison["methods"].items():
        sd = f" ± {entry['sd']:.{digits}f}" if entry.get("sd") is not None else ""
        low, high = entry["ci95"]
        seconds = float(np.mean(entry["train_seconds"]))
        verdict = "—"
        if name in paired:
            p = paired[name]
            word = ("rl better" if p["better"] == "a" else "rl worse") if p["significant"] else "not significant"
            verdict = f"{p['difference']:+.{digits}f} [{p['ci95'][0]:+.{digits}f}, {p['ci95'][1]:+.{digits}f}], {word}"
        rows.append(f"| {name} | {entry['final']:.{digits}f}{sd} | [{low:.{digits}f}, {high:.{digits}f}] | "
                    f"{entry['updates']} | {seconds:.0f} | {entry['parameters']:,} | {verdict} |")
    return head + "\n".join(rows) + "\n" + plan_authority_line(comparison, digits)


def plan_authority_line(comparison: dict, digits: int = 3) -> str:
    """One line per RL method: the score lost when its plans are shuffled and the critic's rank correlation with
    realised scores (mean over seeds); empty when the comparison predates them."""
    lines = []
    methods = comparison["methods"]
    for unit in ("rl", "aux_only"):
        entry = methods.get(unit, {})
        drop, rank = entry.get("plan_shuffle_drop", {}), entry.get("q_rank_correlation", {})
        if not drop and unit == "rl" and "rl_plan_shuffled" in methods:  # a comparison from before the field
            sign = 1.0 if comparison["metric"]["higher_is_better"] else -1.0
            drop = {"mean": sign * (entry["final"] - methods["rl_plan_shuffled"]["final"])}
        if drop.get("mean") is None and rank.get("mean") is None:
            continue
        text = lambda v: "not measured" if v is None else f"{v:+.{digits}f}"  # noqa: E731
        lines.append(f"\n{unit}: score lost when plans are shuffled {text(drop.get('mean'))}; rank correlation of "
                     f"min Q(s, p) with the score after acting on p (8 plans per state) {text(rank.get('mean'))}")
    return "".join(lines) + ("\n" if lines else "")
