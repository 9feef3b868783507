"""Many papermill runs from one YAML spec: sequentially on this machine, or as tasks on Ray.

A **sweep** is the grid (cartesian product) of a few parameter lists, each combination one **job**: one
notebook executed by papermill in its own kernel, with its own run directory that holds the executed
notebook and whatever the notebook writes there (``config.yaml``, ``metrics.jsonl``, ``eval.json``,
``figures/``). A spec::

    sweep: smoke-seeds                     # the sweep's name: {sweep} in templates
    notebooks:                             # task -> notebook; the grid's `task` axis picks one per job
      digits: notebooks/10_digits_transform.ipynb
      brain2d: notebooks/15_medical_registration.ipynb
    grid:                                  # every combination of these lists is a job
      task: [digits, brain2d]
      seed: [0, 1, 2]
    parameters: {preset: smoke}            # injected into every job
    run_dir: "{task}/{sweep}-seed{seed}"   # relative: under rl_i2it.notebook.runs_root()
    resources: {cpus: 1, gpus: 0}          # what each job reserves on Ray (gpus may be a fraction)
    retries: 2                             # re-executions after a dead kernel

Keys (all but ``grid`` and one of ``notebook``/``notebooks`` are optional):

==============  =========================================================================================
``sweep``       name (default: the spec file's stem); letters, digits, ``-``, ``_``, ``.``
``notebook``    one notebook for every job; a template (``"notebooks/{chapter}.ipynb"``) may use grid values
``notebooks``   mapping task -> notebook, chosen by the ``task`` value of each job
``grid``        mapping name -> non-empty list; injected as papermill parameters (``task`` only when the
                notebook declares it)
``parameters``  mapping name -> value, the same for every job
``run_dir``     template of each job's run directory; default ``"{task}/{sweep}-{job}"`` with a task axis,
                else ``"{sweep}/{job}"``; ``{job}`` names the grid values (``seed0-lr0.1``)
``resources``   ``{cpus: float > 0, gpus: float >= 0}`` reserved per job on Ray (default 1 CPU, no GPU)
``retries``     int >= 0, how many times a job whose kernel died is executed again (default 1)
``timeout``     seconds one cell may run (default: no limit)
``env``         environment variables for the jobs' kernels (``{OMP_NUM_THREADS: 1}``)
``metrics``     names (dotted for nested: ``tables.dice_same_class.final``) read from each job's ``eval.json`` for
                the summary; default: its top-level numbers
``summary_dir`` where ``summary.csv`` and ``summary.md`` go; default ``<runs root>/sweeps/<sweep>``
==============  =========================================================================================

Relative paths in a spec (notebooks, ``summary_dir``) are read from the project root (the checkout holding
``pyproject.toml``); relative run directories from the runs root (``$RL_I2IT_RUNS`` or ``runs/``).

Contracts:

* every job's run directory receives ``<notebook stem>.ipynb`` (the executed notebook, papermill's metadata
  included), ``kernel.log`` (what its kernels printed to stderr) and ``sweep_job.json``: ``status``
  (``done`` or ``failed``), ``attempts``, ``duration_s`` (``metadata.papermill.duration`` of the executed
  notebook), ``fingerprint`` (notebook + parameters), ``error`` and ``metrics``; the notebook receives the
  run directory as its ``run_dir`` parameter;
* **metrics convention**: a notebook that wants numbers in the summary writes ``<run_dir>/eval.json`` (the
  task chapters do); the summary shows its top-level numbers (or the spec's ``metrics``);
* a job is **finished** when its ``sweep_job.json`` says ``done`` with the same fingerprint and its executed
  notebook exists; re-running a sweep skips finished jobs (failed ones run again);
* a kernel that dies (``nbclient.exceptions.DeadKernelError``: killed, out of memory, segfault) is retried
  up to ``retries`` times; an exception inside a cell is a failure of the notebook and is not retried.

>>> render_template("{task}/{sweep}-seed{seed}", {"task": "digits", "sweep": "smoke-seeds", "seed": 0})
'digits/smoke-seeds-seed0'
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import re
import string
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = ["SweepSpec", "Job", "load_spec", "parse_spec", "expand_jobs", "render_template", "job_finished",
           "run_job", "run_sweep", "summary_frame", "to_markdown", "STATUS_FILE"]

STATUS_FILE = "sweep_job.json"
JOB_LOCK_FILE = ".sweep.lock"  # held by the sweep process running a job; the job's Trainer holds .lock
KEYS = ("sweep", "notebook", "notebooks", "grid", "parameters", "run_dir", "resources", "retries", "timeout",
        "env", "metrics", "summary_dir")
RESOURCE_KEYS = ("cpus", "gpus")


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked spec (see the module docstring for the meaning of each field)."""

    name: str
    grid: dict[str, list]
    notebook: str | None = None
    notebooks: dict[str, str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    retries: int = 1
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    metrics: list[str] | None = None
    summary_dir: str | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "<spec>"


@dataclass(frozen=True)
class Job:
    """One notebook execution: ``values`` are the grid values, ``parameters`` what papermill injects."""

    name: str
    notebook: Path
    parameters: dict[str, Any]
    values: dict[str, Any]
    run_dir: Path

    @property
    def output(self) -> Path:
        """The executed notebook, inside the run directory."""
        return self.run_dir / self.notebook.name

    @property
    def fingerprint(self) -> str:
        """Notebook path + parameters: a finished job with another fingerprint is not 'finished'."""
        text = json.dumps({"notebook": str(self.notebook), "parameters": self.parameters}, sort_keys=True,
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- parsing
def _fail(spec: str, key: str, message: str) -> UserError:
    return UserError(f"sweep spec {spec}: {key}: {message}")


def _unknown_key(spec: str, where: str, key: str, allowed) -> UserError:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"did you mean {where + close[0]!r}? " if close else ""
    return UserError(f"sweep spec {spec}: unknown key {where + str(key)!r}; {hint}expected one of "
                     f"{', '.join(allowed)}")


def _number(spec: str, key: str, value, minimum: float, strict: bool = False) -> float:
    too_small = isinstance(value, (int, float)) and (value <= minimum if strict else value < minimum)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or too_small:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise _fail(spec, key, f"must be a number {bound}; got {value!r}")
    return float(value)


def parse_spec(raw: Any, name: str | None = None, base_dir: Path | str | None = None,
               source: str = "<spec>") -> SweepSpec:
    """Check a spec read from YAML and return it; every mistake is a ``UserError`` naming the key."""
    if not isinstance(raw, dict):
        raise UserError(f"sweep spec {source}: expected a mapping of keys (sweep, notebook, grid, ...); "
                        f"got {type(raw).__name__}")
    for key in raw:
        if key not in KEYS:
            raise _unknown_key(source, "", key, KEYS)
    sweep_name = raw.get("sweep", name)
    if not isinstance(sweep_name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", sweep_name or ""):
        raise _fail(source, "sweep", f"the name must be letters, digits, '-', '_' or '.'; got {sweep_name!r}")

    grid = raw.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise _fail(source, "grid", f"needs a mapping of parameter -> list of values, e.g. "
                                    f"{{seed: [0, 1, 2]}}; got {grid!r}")
    for key, values in grid.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise _fail(source, f"grid.{key}", "a parameter name must be a Python identifier")
        if not isinstance(values, list) or not values:
            raise _fail(source, f"grid.{key}", f"must be a non-empty list of values; got {values!r} "
                                               f"(a value shared by every job goes under 'parameters')")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _fail(source, "parameters", f"must be a mapping of name -> value; got {parameters!r}")
    for key in parameters:
        if not isinstance(key, str) or not key.isidentifier():
            raise _fail(source, f"parameters.{key}", "a parameter name must be a Python identifier")
        if key in grid:
            raise _fail(source, f"parameters.{key}", "is also a grid axis; keep it in one place")
    if "run_dir" in parameters or "run_dir" in grid:
        raise _fail(source, "parameters.run_dir", "the sweep sets each job's run_dir; use the top-level "
                                                  "'run_dir' template instead")

    notebook, notebooks = raw.get("notebook"), raw.get("notebooks")
    if (notebook is None) == (notebooks is None):
        raise _fail(source, "notebook", "give exactly one of 'notebook' (a path) or 'notebooks' "
                                        "(task -> path)")
    if notebook is not None and not isinstance(notebook, str):
        raise _fail(source, "notebook", f"must be a path; got {notebook!r}")
    if notebooks is not None:
        if not isinstance(notebooks, dict) or not notebooks:
            raise _fail(source, "notebooks", f"must map task -> notebook path; got {notebooks!r}")
        tasks = grid.get("task", [parameters["task"]] if "task" in parameters else None)
        if tasks is None:
            raise _fail(source, "notebooks", "picks a notebook by task, so the grid needs a 'task' axis "
                                             "(or parameters a 'task')")
        for task in tasks:
            if task not in notebooks:
                raise _fail(source, "grid.task", f"task {task!r} has no entry in 'notebooks' "
                                                 f"(known: {', '.join(map(str, notebooks))})")

    resources = raw.get("resources") or {}
    if not isinstance(resources, dict):
        raise _fail(source, "resources", f"must be a mapping like {{cpus: 1, gpus: 0.5}}; got {resources!r}")
    for key in resources:
        if key not in RESOURCE_KEYS:
            raise _unknown_key(source, "resources.", key, RESOURCE_KEYS)
    cpus = _number(source, "resources.cpus", resources.get("cpus", 1), 0.0, strict=True)
    gpus = _number(source, "resources.gpus", resources.get("gpus", 0), 0.0)

    retries = raw.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _fail(source, "retries", f"must be a whole number >= 0; got {retries!r}")
    timeout = raw.get("timeout")
    if timeout is not None:
        timeout = _number(source, "timeout", timeout, 0.0, strict=True)
    env = raw.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        raise _fail(source, "env", f"must map variable names to values; got {env!r}")
    metrics = raw.get("metrics")
    if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
        raise _fail(source, "metrics", f"must be a list of names read from eval.json; got {metrics!r}")
    run_dir = raw.get("run_dir")
    if run_dir is not None and not isinstance(run_dir, str):
        raise _fail(source, "run_dir", f"must be a path template like '{{task}}/{{sweep}}-seed{{seed}}'; "
                                       f"got {run_dir!r}")
    summary_dir = raw.get("summary_dir")
    if summary_dir is not None and not isinstance(summary_dir, str):
        raise _fail(source, "summary_dir", f"must be a path; got {summary_dir!r}")

    spec = SweepSpec(name=sweep_name, grid={k: list(v) for k, v in grid.items()}, notebook=notebook,
                     notebooks={str(k): str(v) for k, v in notebooks.items()} if notebooks else None,
                     parameters=dict(parameters), run_dir=run_dir, cpus=cpus, gpus=gpus, retries=retries,
                     timeout=timeout, env={k: str(v) for k, v in env.items()}, metrics=metrics,
                     summary_dir=summary_dir, base_dir=Path(base_dir or _project_root()), source=source)
    expand_jobs(spec)  # templates, missing notebooks and clashing run directories fail here, before any work
    return spec


def load_spec(path: str | Path, base_dir: str | Path | None = None) -> SweepSpec:
    """Read and check a YAML spec file (``base_dir``: where relative paths start; default the project root)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep spec {path} does not exist; write one (see python -m rl_i2it sweep --help)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"sweep spec {path} is not valid YAML: {first}") from None
    return parse_spec(raw, name=path.stem, base_dir=base_dir, source=str(path))


# ------------------------------------------------------------------------------------------- templating
def _project_root() -> Path:
    from .notebook import project_root

    return project_root()


def _runs_root() -> Path:
    from .notebook import runs_root

    return runs_root()


def render_template(template: str, values: dict[str, Any], source: str = "<spec>", key: str = "run_dir") -> str:
    """``"{task}/{sweep}-seed{seed}"`` with ``values`` filled in; an unknown ``{name}`` is a ``UserError``."""
    try:
        names = [fname for _, fname, _, _ in string.Formatter().parse(template) if fname is not None]
    except ValueError as error:
        raise _fail(source, key, f"malformed template {template!r} ({error})") from None
    for fname in names:
        if fname not in values:
            raise _fail(source, key, f"template {template!r} uses {{{fname}}}, which is neither a grid axis "
                                     f"nor a parameter (available: {', '.join(sorted(values))})")
    return template.format(**values)


def _job_name(values: dict[str, Any], skip_task: bool) -> str:
    """``{"task": "digits", "seed": 0, "lr": 0.1}`` -> ``"seed0-lr0.1"`` (``task`` left out when skipped)."""
    parts = [f"{k}{v}" for k, v in values.items() if not (skip_task and k == "task")]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts)) or "job"


def _declared_parameters(notebook: Path) -> set[str] | None:
    import papermill

    try:
        return set(papermill.inspect_notebook(str(notebook)))
    except Exception:  # an unreadable notebook is reported when it runs
        return None


def expand_jobs(spec: SweepSpec) -> list[Job]:
    """Every grid combination as a ``Job``, in the grid's order (the last axis varies fastest)."""
    axes = list(spec.grid)
    has_task = "task" in spec.grid or "task" in spec.parameters
    template = spec.run_dir or ("{task}/{sweep}-{job}" if has_task else "{sweep}/{job}")
    jobs, seen, declared = [], {}, {}
    for combination in itertools.product(*(spec.grid[a] for a in axes)):
        values = dict(zip(axes, combination))
        name = _job_name(values, skip_task=has_task)
        full_name = f"{values['task']}/{name}" if "task" in values else name
        fill = {**spec.parameters, **values, "sweep": spec.name, "job": name}
        if spec.notebooks is not None:
            notebook_text = spec.notebooks[str(fill["task"])]
        else:
            notebook_text = render_template(spec.notebook, fill, spec.source, "notebook")
        notebook = Path(notebook_text)
        notebook = notebook if notebook.is_absolute() else spec.base_dir / notebook
        if not notebook.is_file():
            raise _fail(spec.source, "notebooks" if spec.notebooks else "notebook",
                        f"{notebook} does not exist (relative paths start at {spec.base_dir})")
        run_dir = Path(render_template(template, fill, spec.source, "run_dir"))
        run_dir = (run_dir if run_dir.is_absolute() else _runs_root() / run_dir).resolve()
        if run_dir in seen:
            raise _fail(spec.source, "run_dir", f"jobs {seen[run_dir]!r} and {full_name!r} both map to {run_dir}; "
                                                f"put every grid axis in the template")
        seen[run_dir] = full_name
        if notebook not in declared:
            declared[notebook] = _declared_parameters(notebook)
        known = declared[notebook]
        parameters = {**spec.parameters, **values}
        if known is not None:
            for key in parameters:
                if key not in known and key != "task":
                    where = "grid" if key in values else "parameters"
                    raise _fail(spec.source, f"{where}.{key}", f"{notebook.name} has no parameter {key!r} "
                                                               f"(it declares {', '.join(sorted(known))})")
            if "task" in parameters and "task" not in known:
                parameters.pop("task")  # it chose the notebook; the chapter knows its own task
        parameters["run_dir"] = str(run_dir)
        jobs.append(Job(name=full_name, notebook=notebook.resolve(),
                        parameters=parameters, values=values, run_dir=run_dir))
    return jobs


# ----------------------------------------------------------------------------------------------- running
def _read_status(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def job_finished(job: Job) -> bool:
    """True when ``sweep_job.json`` says done with this job's fingerprint and the executed notebook exists."""
    status = _read_status(job.run_dir)
    return bool(status and status.get("status") == "done" and status.get("fingerprint") == job.fingerprint
                and job.output.exists())


def _flatten(block: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def read_metrics(run_dir: Path, names: list[str] | None = None) -> dict[str, float]:
    """Numbers from ``<run_dir>/eval.json``: its top-level numbers, or the dotted ``names`` asked for."""
    try:
        block = json.loads((Path(run_dir) / "eval.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(block, dict):
        return {}
    flat = _flatten(block)
    if names is None:
        return {k: v for k, v in flat.items() if "." not in k}
    return {name: flat[name] for name in names if name in flat}


def _write_status(job: Job, record: dict) -> None:
    from .checkpoint import atomic_write_text

    job.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job.run_dir / STATUS_FILE, json.dumps(record, indent=2, default=str))


class _KernelLog:
    """Send this process's stderr (file descriptor 2, which the kernel it starts inherits) to a file.

    A kernel's own messages (start-up warnings, the reason it died) then land in ``<run_dir>/kernel.log``
    instead of the sweep's console or the notebook that runs the sweep.
    """

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.file = open(self.path, "ab")
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        import sys

        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.close()
        return False


def run_job(job: Job, retries: int = 1, timeout: float | None = None, env: dict[str, str] | None = None,
            metrics: list[str] | None = None, kernel_name: str = "python3") -> dict:
    """Execute one job with papermill (a fresh kernel per attempt) and record it; returns its status record.

    A dead kernel is retried up to ``retries`` times; an error raised in a cell ends the job as ``failed``.
    ``env`` is set for the kernel (inherited by its process) and restored afterwards. The job holds
    ``<run_dir>/.sweep.lock`` while it runs (the notebook's Trainer takes ``.lock`` in its kernel): a second sweep
    that reaches the same job gets ``failed`` with the holder's PID and writes nothing into its directory.
    """
    from .rundir import RunDirBusy, RunDirLock, os_error_to_user_error, remove_leftover_temp_files

    try:
        job.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise os_error_to_user_error(error, job.run_dir, "create the job's run directory",
                                     "change the spec's run_dir") from None
    try:
        lock = RunDirLock(job.run_dir, name=JOB_LOCK_FILE)
    except RunDirBusy as busy:
        return {"job": job.name, "notebook": str(job.notebook), "parameters": job.parameters,
                "fingerprint": job.fingerprint, "run_dir": str(job.run_dir), "status": "failed", "attempts": 0,
                "error": str(busy), "duration_s": None, "wall_s": 0.0, "metrics": {}}
    with lock:
        remove_leftover_temp_files(job.run_dir, (STATUS_FILE,))
        return _run_job_locked(job, retries, timeout, env, metrics, kernel_name)


def _run_job_locked(job: Job, retries: int, timeout: float | None, env: dict[str, str] | None,
                    metrics: list[str] | None, kernel_name: str) -> dict:
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError

    job.run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"job": job.name, "notebook": str(job.notebook), "parameters": job.parameters,
              "fingerprint": job.fingerprint, "run_dir": str(job.run_dir), "started": started,
              "host": os.uname().nodename, "pid": os.getpid()}
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    attempts, status, error = 0, "failed", None
    clock = time.perf_counter()
    try:
        while attempts <= retries:
            attempts += 1
            try:
                with _KernelLog(job.run_dir / "kernel.log"):
                    papermill.execute_notebook(str(job.notebook), str(job.output), parameters=job.parameters,
                                               kernel_name=kernel_name, progress_bar=False,
                                               cwd=str(job.notebook.parent), execution_timeout=timeout)
                status, error = "done", None
                break
            except DeadKernelError as died:
                error = f"kernel died on attempt {attempts}: {died}"
            except papermill.PapermillExecutionError as failed:
                error = f"cell {failed.exec_count}: {failed.ename}: {failed.evalue}"
                break
            except Exception as other:  # kernel failed to start, unreadable notebook, ...
                error = f"{type(other).__name__}: {other}"
                break
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    duration = None
    try:
        duration = float(nbformat.read(job.output, as_version=4).metadata["papermill"]["duration"])
    except (OSError, KeyError, TypeError, ValueError):
        pass
    record.update(status=status, attempts=attempts, error=error, duration_s=duration,
                  wall_s=round(time.perf_counter() - clock, 3),
                  finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  metrics=read_metrics(job.run_dir, metrics))  # a failed check may follow a written eval.json
    _write_status(job, record)
    return record


def _skipped(job: Job) -> dict:
    record = dict(_read_status(job.run_dir) or {})
    record["skipped"] = True
    return record


def run_sweep(spec: SweepSpec, use_ray: bool = False, ray_address: str | None = None,
              ray_cpus: int | None = None, ray_gpus: float | None = None, progress=print) -> "pandas.DataFrame":
    """Run every unfinished job of ``spec``, write ``summary.csv``/``summary.md``, return the summary frame.

    Sequential by default (one kernel at a time, in grid order). With ``use_ray``: each job is a Ray task
    reserving ``spec.cpus`` CPUs and ``spec.gpus`` GPUs, on a local Ray instance started for the sweep
    (``ray_cpus``/``ray_gpus`` bound it; default: the machine) or on the cluster at ``ray_address``.
    """
    jobs = expand_jobs(spec)
    todo = [job for job in jobs if not job_finished(job)]
    records = {job.name: _skipped(job) for job in jobs if job not in todo}
    progress = progress or (lambda *_: None)
    progress(f"sweep {spec.name}: {len(jobs)} jobs, {len(records)} finished before, {len(todo)} to run"
             + (" on Ray" if use_ray else " sequentially"))
    clock = time.perf_counter()
    kwargs = dict(retries=spec.retries, timeout=spec.timeout, env=spec.env, metrics=spec.metrics)
    if todo and use_ray:
        records.update(_run_on_ray(todo, spec, kwargs, ray_address, ray_cpus, ray_gpus, progress))
    else:
        for k, job in enumerate(todo, 1):
            record = run_job(job, **kwargs)
            records[job.name] = record
            progress(f"[{k}/{len(todo)}] {job.name}: {record['status']} after {record['attempts']} attempt(s), "
                     f"{record['wall_s']:.1f} s" + (f" ({record['error']})" if record["error"] else ""))
    wall = time.perf_counter() - clock
    frame = summary_frame(jobs, records)
    out = Path(spec.summary_dir) if spec.summary_dir else _runs_root() / "sweeps" / spec.name
    out = out if out.is_absolute() else spec.base_dir / out
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(to_markdown(frame) + "\n")
    frame.attrs.update(wall_s=wall, ran=len(todo), summary_dir=str(out))
    progress(f"sweep {spec.name}: ran {len(todo)} job(s) in {wall:.1f} s; summary in {out / 'summary.csv'}")
    return frame


def _run_on_ray(todo: list[Job], spec: SweepSpec, kwargs: dict, address: str | None, cpus: int | None,
                gpus: float | None, progress) -> dict[str, dict]:
    from .ray_pool import map_unordered, ray_session

    records = {}
    with ray_session(f"sweep spec {spec.source}", spec.cpus, spec.gpus, address, cpus, gpus,
                     fix="lower 'resources' or raise --ray-cpus/--ray-gpus (or use a bigger cluster)") as ray:
        finished = map_unordered(ray, run_job, todo, spec.cpus, spec.gpus, **kwargs)
        for done, (job, record, error) in enumerate(finished, 1):
            if error is not None:  # the worker itself died: record it, keep going
                record = {"job": job.name, "status": "failed", "attempts": 1, "duration_s": None,
                          "wall_s": None, "error": f"Ray worker failed: {type(error).__name__}", "metrics": {}}
            records[job.name] = record
            wall = f"{record['wall_s']:.1f} s" if record.get("wall_s") is not None else "?"
            progress(f"[{done}/{len(todo)}] {job.name}: {record['status']} after {record['attempts']} "
                     f"attempt(s), {wall}" + (f" ({record['error']})" if record.get("error") else ""))
    return records


# ------------------------------------------------------------------------------------------------ summary
def summary_frame(jobs: list[Job], records: dict[str, dict]) -> "pandas.DataFrame":
    """One row per job, in grid order: job, grid values, status, attempts, ``duration_s`` (papermill's, of the
    last attempt), ``wall_s`` (every attempt, kernel starts included), metrics, error, run directory."""
    import pandas as pd

    rows = []
    for job in jobs:
        record = records.get(job.name, {})
        row = {"job": job.name, **job.values,
               "status": ("skipped (finished)" if record.get("skipped") else record.get("status", "not run")),
               "attempts": record.get("attempts"), "duration_s": record.get("duration_s"),
               "wall_s": record.get("wall_s")}
        row.update({k: v for k, v in (record.get("metrics") or {}).items() if k not in row})  # grid values win
        row.update(error=record.get("error") or "", run_dir=str(job.run_dir))
        rows.append(row)
    frame = pd.DataFrame(rows)
    last = ["error", "run_dir"]
    return frame[[c for c in frame.columns if c not in last] + last]


def to_markdown(frame) -> str:
    """A pipe table (no ``tabulate`` needed); floats with 4 significant digits."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
