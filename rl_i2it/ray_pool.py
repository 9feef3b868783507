"""Independent jobs as Ray tasks: on a local Ray instance started for them (and shut down after) or on a cluster.

Used by ``sweep --ray`` (one papermill job per grid point) and ``compare --ray`` (one training run per
(method, seed)). Every job reserves ``cpus``/``gpus``; Ray sets ``OMP_NUM_THREADS`` of a worker to the CPUs it
reserved, so two 1-CPU jobs on a 2-core machine do not fight over threads.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from .errors import UserError

INSTALL = "pip install 'rl_i2it[sweep]' (or pip install 'ray[default]')"


@contextmanager
def ray_session(what: str, cpus_per_job: float, gpus_per_job: float, address: str | None = None,
                local_cpus: int | None = None, local_gpus: float | None = None, fix: str = ""):
    """Ray, initialised for jobs of ``cpus_per_job``/``gpus_per_job``; a clear error (naming ``what`` and ``fix``)
    when no instance could ever run one. A local instance started here is shut down on exit."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray; install it with: {INSTALL}") from None
    started_here = not ray.is_initialized()
    fix = f"; {fix}" if fix else ""
    if started_here and not address and ((local_cpus is not None and cpus_per_job > local_cpus) or
                                          (local_gpus is not None and gpus_per_job > local_gpus)):
        raise UserError(f"{what}: resources ask {cpus_per_job:g} CPU and {gpus_per_job:g} GPU per job, but the local "
                        f"Ray instance would have {local_cpus if local_cpus is not None else 'all'} CPU and "
                        f"{local_gpus if local_gpus is not None else 'all'} GPU{fix}")
    if started_here:
        options = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=local_cpus, num_gpus=local_gpus, **options)
    try:
        available = ray.cluster_resources()
        if cpus_per_job > available.get("CPU", 0) or gpus_per_job > available.get("GPU", 0):
            raise UserError(f"{what}: resources ask {cpus_per_job:g} CPU and {gpus_per_job:g} GPU per job, but the "
                            f"Ray cluster has {available.get('CPU', 0):g} CPU and {available.get('GPU', 0):g} GPU"
                            f"{fix}")
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def map_unordered(ray, function: Callable, jobs: Iterable, cpus_per_job: float, gpus_per_job: float,
                  **kwargs) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """``function(job, **kwargs)`` for every job as a Ray task -> ``(job, result, None)`` as each finishes, or
    ``(job, None, error)`` when its worker died or the function raised (the other jobs go on)."""
    remote = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=0)(function)
    pending = {remote.remote(job, **kwargs): job for job in jobs}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            job = pending.pop(ref)
            try:
                yield job, ray.get(ref), None
            except ray.exceptions.RayError as error:
                yield job, None, error
