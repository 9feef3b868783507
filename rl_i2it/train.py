"""The training loop: collect a batched step -> store it -> update at the configured replay ratio.

Read it top to bottom: ``Trainer.__init__`` (run directory, seeding, networks, optimisers, buffer),
``collect`` (one env step for B episodes), ``update`` (one SAC + auxiliary update), ``train`` (the loop,
logging and checkpoints), ``evaluate``. Nothing in the hot loop copies to the host: statistics stay
on the device and are read once per log row.

Run directory ``runs/<task>/<name>/``: ``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt`` (atomic),
``eval.json`` and ``figures/``. ``if_exists``: ``error`` (refuse to touch an existing run), ``resume``
(continue it exactly from its checkpoint; a finished run is reused), ``overwrite`` (start afresh).
A Trainer with a run directory holds its lock (``.lock``, see ``rundir.py``) from before its first look at the
directory until ``close()`` or the process ends: a second writer is refused at once. ``load_run`` opens a run
read-only by default (no lock, nothing written), so evaluating a run that is still training is safe.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import weakref
from pathlib import Path

import torch

from . import sac
from .actor import drop_skips
from .buffer import ReplayBuffer
from .checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from .config import TrainConfig, check_field_types, from_yaml, to_yaml
from .device import resolve_device
from .errors import UserError
from .evaluate import EvalResult
from .nn.execution import autocast, compile_modules
from .planner import sample_plan
from .rundir import LOCK_FILE, RunDirLock, os_error_to_user_error, read_metrics_jsonl, remove_leftover_temp_files
from .tasks import make_task
from .tasks.base import adversary_update

__all__ = ["Trainer", "load_run", "IF_EXISTS"]

IF_EXISTS = ("error", "resume", "overwrite")
CHECKPOINT = "checkpoint.pt"
RUN_FILES = ("config.yaml", "metrics.jsonl", "eval.json", CHECKPOINT, "figures")  # what a run owns in its dir
ATOMIC_FILES = ("config.yaml", "metrics.jsonl", "eval.json", CHECKPOINT)  # written through .<name>.*.tmp files


def progress_bar(**options):
    """A tqdm bar: the notebook widget (or a terminal bar) by default; with ``RL_I2IT_PROGRESS=text``, plain text lines
    on stderr every 10 s, which papermill's ``--log-output`` forwards to the terminal (``make quickstart``)."""
    if os.environ.get("RL_I2IT_PROGRESS") == "text":
        from tqdm.std import tqdm

        return tqdm(**options, mininterval=10.0, ascii=True)
    from tqdm.auto import tqdm

    return tqdm(**options)


class Trainer:
    """Trains one task; owns the run directory.

    Parameters
    ----------
    cfg : a task config (``make_config``)
    run_dir : where config, metrics and checkpoints go; ``None`` trains in memory only (tests, benchmarks)
    device : ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    if_exists : what to do when ``run_dir`` already holds a run: ``error``, ``resume`` or ``overwrite``
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, device: str = "auto",
                 if_exists: str = "error"):
        if if_exists not in IF_EXISTS:
            raise UserError(f"unknown --if-exists {if_exists!r}; choose one of {', '.join(IF_EXISTS)}")
        self.device = resolve_device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        resume_state = self._prepare_run_dir(cfg, if_exists) if self.run_dir is not None else None
        if resume_state is not None:
            cfg = from_yaml(resume_state["config"])
        self.cfg = cfg

        torch.manual_seed(cfg.seed)
        self.task = make_task(cfg, self.device)
        t = self.task
        self.planner, self.actor, self.critic, self.critic_target = t.planner, t.actor, t.critic, t.critic_target
        self.compiled = cfg.compile and compile_modules([self.planner, self.actor, self.critic, self.critic_target],
                                                        self.device)
        wd = cfg.weight_decay
        self.optimisers = {
            "planner": torch.optim.Adam(self.planner.parameters(), lr=cfg.lr_planner, weight_decay=wd),
            "actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor, weight_decay=wd),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, weight_decay=wd),
        }
        self.log_alpha = torch.tensor(float(cfg.init_log_alpha), device=self.device, requires_grad=True)
        self.optimisers["alpha"] = torch.optim.Adam([self.log_alpha], lr=cfg.lr_alpha)
        if t.adversary is not None:  # a discriminator: stepped, clipped and checkpointed like every network
            self.optimisers[t.adversary.name] = t.adversary.optimiser
        self.target_entropy = sac.target_entropy(self.planner.plan_dim, cfg.target_entropy_per_dim)
        self.buffer = ReplayBuffer(cfg.buffer_capacity, t.transition_spec(), self.device)
        self.replay_generator = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.policy_generator = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)

        self.env_steps = 0
        self.last_log_env_steps = 0  # env_steps at the last log row: the next row averages the reward since then
        self.updates = 0
        self.update_credit = 0.0
        self.obs = t.env.reset(seed=cfg.seed)
        self.stats = self._zero_stats()
        self.wall_time = 0.0
        if resume_state is not None:
            self._load_state(resume_state)
        elif self.run_dir is not None:
            atomic_write_text(self.run_dir / "config.yaml", to_yaml(cfg))

    # ------------------------------------------------------------------ run directory
    _unlock = None  # releases the run directory's lock; None without a run directory

    def _prepare_run_dir(self, cfg: TrainConfig, if_exists: str) -> dict | None:
        """Lock, then create, refuse, clear or reopen the run directory; returns the checkpoint state to resume from.

        Every decision is taken under the lock, so two writers started together cannot both proceed; a directory
        that holds no run is refused (for ``error``/``overwrite``) before a lock file is put into it.
        """
        check_field_types(cfg)  # a config built with dataclasses.replace skipped make_config's checks
        run_dir = self.run_dir
        try:
            if run_dir.exists() and not run_dir.is_dir():
                raise UserError(f"run directory {run_dir} is a file; pass another --run-dir")
            foreign = run_dir.is_dir() and not self._holds_run(run_dir) and _run_dir_entries(run_dir)
            if foreign and if_exists != "resume":
                raise self._refusal(if_exists, holds_run=False)
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise os_error_to_user_error(error, run_dir, "create the run directory", "pass another --run-dir") from None
        lock = RunDirLock(run_dir)
        self._unlock = weakref.finalize(self, lock.release)
        try:
            return self._open_locked_run_dir(cfg, if_exists)
        except BaseException as error:
            self._unlock()  # a refused or failed start must not keep the directory locked (a notebook keeps tracebacks)
            if isinstance(error, OSError):
                raise os_error_to_user_error(error, run_dir, "prepare the run directory",
                                             "pass another --run-dir") from None
            raise

    @staticmethod
    def _holds_run(run_dir: Path) -> bool:
        return (run_dir / CHECKPOINT).exists() or (run_dir / "config.yaml").exists()

    def _refusal(self, if_exists: str, holds_run: bool) -> UserError:
        if if_exists == "overwrite":
            return UserError(f"run directory {self.run_dir} holds no run (no config.yaml or {CHECKPOINT}); refusing "
                             f"to delete its files: pass another --run-dir")
        what = "already holds a run" if holds_run else "exists and is not empty"
        return UserError(f"run directory {self.run_dir} {what}; pass --if-exists resume to continue it or "
                         f"--if-exists overwrite to replace it")

    def _open_locked_run_dir(self, cfg: TrainConfig, if_exists: str) -> dict | None:
        run_dir = self.run_dir
        remove_leftover_temp_files(run_dir, ATOMIC_FILES)  # safe: we hold the lock, no live writer owns them
        if not _run_dir_entries(run_dir):  # new, or only a lock file left by a start that crashed at once
            return None
        checkpoint = run_dir / CHECKPOINT
        holds_run = self._holds_run(run_dir)
        if if_exists == "error" or (if_exists == "overwrite" and not holds_run):
            raise self._refusal(if_exists, holds_run)
        if if_exists == "overwrite" or not checkpoint.exists():
            # overwrite, or a start interrupted before its first checkpoint: remove the run's own files only
            for name in RUN_FILES:
                path = run_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            return None
        state = load_checkpoint(checkpoint, map_location=self.device)
        stored = from_yaml(state["config"])
        different = {k for k in cfg.__dataclass_fields__ if getattr(cfg, k) != getattr(stored, k)}
        different -= {"total_env_steps"}  # extending a finished run is allowed
        if different:
            raise UserError(f"run directory {run_dir} holds a run with a different config "
                            f"({', '.join(sorted(different))} differ); use another --run-dir or --if-exists overwrite")
        state["config"] = to_yaml(stored.__class__(**{**stored.__dict__, "total_env_steps": cfg.total_env_steps}))
        return state

    def close(self) -> None:
        """Release the run directory's lock (done anyway when the Trainer is garbage-collected or the process ends).

        A closed Trainer must not train further into its run directory: another writer may have taken it.
        """
        if self._unlock is not None:
            self._unlock()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ statistics (device-resident)
    def _zero_stats(self) -> dict[str, torch.Tensor]:
        names = ("critic_loss", "actor_loss", "aux_loss", "alpha", "q", "log_prob", "kl", "sigma", "sigma_min",
                 "plan_mean_abs",
                 "updates", "actor_updates", "episodes", "episode_score", "episode_initial_score", "episode_steps",
                 "reward") + tuple(self.task.log_names)
        return {name: torch.zeros((), device=self.device) for name in names}

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def _autocast(self):
        """bfloat16 autocast of the forward passes when ``cfg.amp == "bf16"`` (plans, Q values, actions and losses
        come out in float32 where they meet the SAC losses); a no-op otherwise."""
        return autocast(self.cfg.amp, self.device)

    # ------------------------------------------------------------------ collect
    @torch.no_grad()
    def collect(self) -> None:
        """One batched env step with plans sampled from the planner; the transitions go to the buffer."""
        with self._autocast():
            dist, skips, _ = self.planner(self.obs)
            plan = sample_plan(dist, self.policy_generator)
            action = self.actor(plan, skips).float()
        next_obs, reward, terminated, truncated, info = self.task.env.step(action)
        self.buffer.add(self.task.pack(self.obs, plan, reward, terminated, info["final_obs"], info))
        done = info["done"].float()
        s = self.stats
        s["episodes"] += done.sum()
        s["episode_score"] += (done * info["score"]).sum()
        s["episode_initial_score"] += (done * info["initial_score"]).sum()
        s["episode_steps"] += (done * info["steps"]).sum()
        s["reward"] += reward.mean()
        self.obs = next_obs
        self.env_steps += self.task.env.num_envs

    # ------------------------------------------------------------------ update
    def update(self) -> None:
        """One learner update: critics on the TD target, then planner + actor on SAC + auxiliary loss."""
        cfg, opt = self.cfg, self.optimisers
        batch = self.task.unpack(self.buffer.sample(cfg.batch_size, self.replay_generator))
        obs, alpha = batch["obs"], self.alpha

        with torch.no_grad(), self._autocast():
            next_dist, _, _ = self.planner(batch["next_obs"])
            next_plan = sample_plan(next_dist, self.policy_generator)
            next_q1, next_q2 = self.critic_target(batch["next_obs"], next_plan)
            target = sac.td_target(batch["reward"], batch["terminated"], next_q1.float(), next_q2.float(),
                                   next_dist.log_prob(next_plan), alpha, cfg.gamma)
        with self._autocast():
            q1, q2 = self.critic(obs, batch["plan"])
        critic_loss = sac.critic_loss(q1.float(), q2.float(), target)
        self._step([opt["critic"]], critic_loss, self.critic.parameters())

        with self._autocast():
            dist, skips, _ = self.planner(obs)
            plan = sample_plan(dist, self.policy_generator)  # reparameterised: gradients reach the planner
            # log π here, before the actor: the graph's order fixes the order gradients are summed in
            log_prob = dist.log_prob(plan)
            if cfg.skip_dropout > 0:  # the skip-dropout design: some items must be acted on from the plan alone
                skips = drop_skips(skips, cfg.skip_dropout, self.policy_generator)
            action = self.actor(plan, skips).float()
            # the adversary (a discriminator) first, on this update's actions detached; then the auxiliary loss
            adversary_logs = adversary_update(self.task, batch, action, self.updates, cfg.grad_clip)
            aux = self.task.aux_loss(batch, plan, action, self.updates)
        aux_loss = aux.loss.float()
        kl = sac.kl_to_standard_normal(dist).mean()  # logged whatever bounds the plan
        bound = kl if cfg.plan_kl == "full" else sac.plan_regulariser(dist, cfg.plan_kl).mean()
        loss = cfg.aux_weight * aux_loss + cfg.kl_weight * bound
        s = self.stats
        if self.updates % cfg.actor_every == 0:
            # the authors' bug, kept for teaching: sample() instead of rsample() cuts -Q off the planner
            critic_plan = plan.detach() if cfg.detach_plan_grad else plan
            self.critic.requires_grad_(False)
            with self._autocast():
                pq1, pq2 = self.critic(obs, critic_plan)
            self.critic.requires_grad_(True)
            actor_loss = sac.actor_loss(pq1.float(), pq2.float(), log_prob, alpha)
            loss = loss + cfg.rl_weight * actor_loss
            self._step([opt["alpha"]], sac.alpha_loss(self.log_alpha, log_prob, self.target_entropy), None)
            s["actor_loss"] += actor_loss.detach()
            s["actor_updates"] += 1
        self._step([opt["planner"], opt["actor"]], loss,
                   list(self.planner.parameters()) + list(self.actor.parameters()))
        sac.soft_update(self.critic_target, self.critic, cfg.tau)

        self.updates += 1
        s["updates"] += 1
        s["critic_loss"] += critic_loss.detach()
        s["aux_loss"] += aux_loss.detach()
        s["alpha"] += alpha
        s["q"] += q1.detach().mean()
        s["log_prob"] += log_prob.detach().mean()
        s["kl"] += kl.detach()
        scale = dist.base_dist.scale.detach()  # the plan distribution's spread: does SAC's entropy term act on it?
        s["sigma"] += scale.mean()
        s["sigma_min"] += scale.min()
        s["plan_mean_abs"] += dist.base_dist.loc.detach().abs().mean()
        for name, value in {**aux.logs, **adversary_logs}.items():
            if name in s:
                s[name] += value

    def _step(self, optimisers, loss, parameters) -> None:
        for o in optimisers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if parameters is not None and self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(parameters, self.cfg.grad_clip)
        for o in optimisers:
            o.step()

    # ------------------------------------------------------------------ the loop
    def train(self, until_env_steps: int | None = None, progress: bool = False) -> list[dict]:
        """Collect and update until ``until_env_steps`` (default: the config's total); returns new log rows."""
        cfg = self.cfg
        until = cfg.total_env_steps if until_env_steps is None else min(until_env_steps, cfg.total_env_steps)
        rows: list[dict] = []
        bar = None
        if progress and self.env_steps < until:
            bar = progress_bar(total=until, initial=self.env_steps, unit="step", desc=f"{cfg.task} [{cfg.preset}]")
        started = time.perf_counter()
        last_log = self.env_steps
        while self.env_steps < until:
            before = self.env_steps
            self.collect()
            if self.env_steps >= cfg.bootstrap_env_steps:
                self.update_credit += cfg.replay_ratio * self.task.env.num_envs / cfg.batch_size
                while self.update_credit >= 1.0:
                    self.update_credit -= 1.0
                    self.update()
            if bar is not None:
                bar.update(self.env_steps - before)
            if self.env_steps // cfg.log_every_env_steps > before // cfg.log_every_env_steps or self.env_steps >= until:
                now = time.perf_counter()
                self.wall_time += now - started
                row = self._log_row(self.env_steps - last_log, now - started)
                started, last_log = now, self.env_steps
                rows.append(row)
                if bar is not None:
                    score = row.get("episode_score")  # None when no episode ended in this log window
                    bar.set_postfix(score="n/a" if score is None else f"{score:.3f}")
            if self.run_dir is not None and (
                    self.env_steps // cfg.checkpoint_every_env_steps > before // cfg.checkpoint_every_env_steps
                    or self.env_steps >= until):
                self.save()
        if bar is not None:
            bar.close()
        return rows

    def _log_row(self, env_steps: int, seconds: float) -> dict:
        s = {k: v.item() for k, v in self.stats.items()}
        row: dict = {"env_steps": self.env_steps, "updates": self.updates}
        n_updates, n_actor, n_episodes = s.pop("updates"), s.pop("actor_updates"), s.pop("episodes")
        for name in ("critic_loss", "aux_loss", "alpha", "q", "log_prob", "kl", "sigma", "sigma_min", "plan_mean_abs"):
            row[name] = s[name] / n_updates if n_updates else None
        row["actor_loss"] = s["actor_loss"] / n_actor if n_actor else None
        for name in self.task.log_names:  # a task's own logs, averaged per update
            row[name] = s[name] / n_updates if n_updates else None
        row["episodes"] = int(n_episodes)
        for name in ("episode_score", "episode_initial_score", "episode_steps"):
            row[name] = s[name] / n_episodes if n_episodes else None
        # the reward summed since the last row (restored from a checkpoint after a resume) over the steps since it
        steps_since_last_row = self.env_steps - self.last_log_env_steps
        row["reward_per_step"] = s["reward"] / max(1, steps_since_last_row // self.task.env.num_envs)
        row["wall_time_s"] = round(self.wall_time, 3)
        row["env_steps_per_s"] = round(env_steps / seconds, 1) if seconds > 0 else None
        self.stats = self._zero_stats()
        self.last_log_env_steps = self.env_steps
        if self.run_dir is not None:
            path = self.run_dir / "metrics.jsonl"
            try:
                with open(path, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
            except OSError as error:  # a cut-off row is dropped on resume, the checkpoint before it is intact
                raise UserError(f"{os_error_to_user_error(error, path, 'append a row to')}; the last checkpoint is "
                                f"intact: resume with --if-exists resume once that is fixed") from None
        return row

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        rng = {"replay": self.replay_generator.get_state(), "policy": self.policy_generator.get_state()}
        networks = self.task.networks()
        return {
            "config": to_yaml(self.cfg),
            "networks": {name: m.state_dict() for name, m in networks.items()},
            "optimisers": {name: o.state_dict() for name, o in self.optimisers.items()},
            "log_alpha": self.log_alpha.detach().clone(),
            "rng": rng,
            "env": self.task.env.state_dict(),
            "obs": self.obs.clone(),
            "counters": {"env_steps": self.env_steps, "updates": self.updates, "update_credit": self.update_credit,
                         "wall_time": self.wall_time, "last_log_env_steps": self.last_log_env_steps},
            "stats": {k: v.clone() for k, v in self.stats.items()},
            "buffer": self.buffer.state_dict() if self.cfg.save_buffer else None,
            "parameter_counts": self.task.parameter_counts(),
        }

    def save(self) -> Path:
        """Write ``checkpoint.pt`` atomically; a failed write (a full disk) leaves the previous one in place."""
        path = self.run_dir / CHECKPOINT
        try:
            save_checkpoint(path, self.state_dict())
        except UserError as error:
            resumable = "; resume from it with --if-exists resume once that is fixed" if path.exists() else ""
            raise UserError(f"{error}{resumable}") from None
        return path

    def _load_state(self, state: dict) -> None:
        for name, module in self.task.networks().items():
            module.load_state_dict(state["networks"][name])
        for name, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.replay_generator.set_state(state["rng"]["replay"])
        self.policy_generator.set_state(state["rng"]["policy"])
        self.task.env.load_state_dict(state["env"])
        self.obs = state["obs"].to(self.device)
        counters = state["counters"]
        self.env_steps, self.updates = counters["env_steps"], counters["updates"]
        self.update_credit, self.wall_time = counters["update_credit"], counters["wall_time"]
        # a checkpoint from before a statistic was logged lacks it: it starts at zero
        self.stats = {**self._zero_stats(), **{k: v.to(self.device) for k, v in state["stats"].items()}}
        if state["buffer"] is not None:
            self.buffer.load_state_dict(state["buffer"])
        if self.run_dir is not None:
            self._trim_metrics()
        self.last_log_env_steps = counters.get("last_log_env_steps")
        if self.last_log_env_steps is None:  # a checkpoint older than this counter: the log's last row says it
            self.last_log_env_steps = _last_logged_env_steps(self.run_dir, self.env_steps)

    def _trim_metrics(self) -> None:
        """Drop log rows written after the checkpoint (and a torn last line), so a resumed run's log has no duplicates
        and its next row starts on a line of its own. Rewrites the file only when that changes it."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        rows = [row for row in read_metrics_jsonl(path) if row["env_steps"] <= self.env_steps]
        text = "".join(json.dumps(row) + "\n" for row in rows)
        if path.read_text(errors="replace") != text:
            atomic_write_text(path, text)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, **options) -> EvalResult:
        """The task's pinned protocol of the trained policy (plan mean)."""
        return self.task.evaluate(self.task.policy(), **options)

    @property
    def finished(self) -> bool:
        return self.env_steps >= self.cfg.total_env_steps


def load_run(run_dir: str | Path, device: str = "auto", writable: bool = False) -> Trainer:
    """Open a finished or interrupted run for evaluation (or further training).

    Read-only by default: no lock is taken and nothing in ``run_dir`` is written or rewritten, so a run that is
    still training (or belongs to someone else) can be evaluated; the returned Trainer has ``run_dir=None`` and
    trains, if asked, in memory only. ``writable=True`` continues the run in place (``if_exists="resume"``),
    taking its lock.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; train first with "
                        f"python -m rl_i2it train --run-dir {run_dir}")
    state = load_checkpoint(run_dir / CHECKPOINT, map_location=resolve_device(device))
    cfg = from_yaml(state["config"])
    if writable:
        return Trainer(cfg, run_dir=run_dir, device=device, if_exists="resume")
    trainer = Trainer(cfg, run_dir=None, device=device)
    trainer._load_state(state)
    if "last_log_env_steps" not in state["counters"]:  # a checkpoint older than that counter: the log says it
        trainer.last_log_env_steps = _last_logged_env_steps(run_dir, trainer.env_steps)
    return trainer


def _last_logged_env_steps(run_dir: Path | None, env_steps: int) -> int:
    """``env_steps`` of the last row of ``run_dir``'s log at or before ``env_steps``; 0 without one."""
    rows = [row for row in read_metrics_jsonl(run_dir) if row["env_steps"] <= env_steps] if run_dir else []
    return rows[-1]["env_steps"] if rows else 0


def _run_dir_entries(run_dir: Path) -> list[str]:
    """What ``run_dir`` holds, a lock file and atomic writes' leftovers aside (they do not make it a run)."""
    def ignored(name: str) -> bool:
        return name == LOCK_FILE or any(name.startswith(f".{own}.") and name.endswith(".tmp") for own in ATOMIC_FILES)

    return [p.name for p in run_dir.iterdir() if not ignored(p.name)]
