"""``python -m rl_i2it gpu-check`` (``make gpu-check``): prove every task on CUDA in one command, one JSON report.

On a machine with CUDA, for every registered task at the smoke preset on ``cuda``: train to the first checkpoint,
resume to the end from that checkpoint, evaluate, load the checkpoint on the CPU and evaluate again (checkpoints
must load across devices), and benchmark the loop; then the contract tests (``tests/test_task_contract.py``,
``tests/test_devices.py``) with ``RL_I2IT_TEST_DEVICE=cuda``. Every step is timed and its failure recorded, so one
broken task does not hide the others. The report (``--out``, default ``runs/gpu-check/report.json``):

============================  ======================================================================
key                           meaning
============================  ======================================================================
``versions``, ``device``      library versions, the GPU's name, memory and compute capability
``tasks.<task>``              ``passed``, ``error`` (one line), ``train_seconds``, ``env_steps``,
                              ``updates``, ``score_name``, ``score_final`` (CUDA) and
                              ``score_final_cpu_load`` (the same checkpoint evaluated on the CPU),
                              ``bench`` (env steps/s, updates/s, forward ceiling, peak GPU memory MB)
``tests``                     pytest's exit status and its last lines
``passed``                    every task and the tests passed
============================  ======================================================================

Without CUDA it refuses in one line and exits 2 (CI never runs it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from .errors import UserError

__all__ = ["run_gpu_check", "require_cuda"]


def require_cuda() -> torch.device:
    if not torch.cuda.is_available():
        raise UserError("gpu-check needs CUDA, and torch sees no CUDA device here (torch.cuda.is_available() is "
                        "False); run it on a machine with an NVIDIA GPU and a CUDA build of torch")
    return torch.device("cuda")


def _device_description(device: torch.device) -> dict:
    props = torch.cuda.get_device_properties(device)
    return {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}


def check_task(task: str, run_dir: Path, device: torch.device, bench_seconds: float) -> dict:
    """Train (to the first checkpoint), resume, evaluate on CUDA and after a CPU load, benchmark: one task's row."""
    from .bench import run_benchmark
    from .config import make_config
    from .train import Trainer, load_run

    row: dict = {"passed": False}
    started = time.perf_counter()
    try:
        cfg = make_config(task, "smoke")
        first = Trainer(cfg, run_dir=run_dir, device=str(device), if_exists="overwrite")
        first.train(until_env_steps=cfg.checkpoint_every_env_steps)
        resumed = Trainer(cfg, run_dir=run_dir, device=str(device), if_exists="resume")
        resumed.train()
        row.update(train_seconds=round(time.perf_counter() - started, 1), env_steps=resumed.env_steps,
                   updates=resumed.updates)
        result = resumed.evaluate()
        row.update(score_name=result.score_name, score_identity=result.score_identity,
                   score_final=result.score_final)
        on_cpu = load_run(run_dir, device="cpu").evaluate()
        row["score_final_cpu_load"] = on_cpu.score_final
        torch.cuda.reset_peak_memory_stats(device)
        report = run_benchmark(task, "smoke", device=str(device), seconds=bench_seconds, replay_ratio=None)
        row["bench"] = {k: report[k] for k in ("num_envs", "batch_size", "replay_ratio",
                                               "forward_ceiling_actions_per_s", "collect_env_steps_per_s",
                                               "updates_per_s", "env_steps_per_s", "peak_memory_mb")}
        row["passed"] = True
    except Exception as error:  # noqa: BLE001  (one task's failure is recorded, the others still run)
        row["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        row["traceback"] = traceback.format_exc(limit=6)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def run_tests(root: Path) -> dict:
    """The contract and device tests on CUDA (``RL_I2IT_TEST_DEVICE=cuda``)."""
    tests = [str(root / "tests" / name) for name in ("test_task_contract.py", "test_devices.py")
             if (root / "tests" / name).exists()]
    if not tests:
        return {"returncode": None, "tail": "tests/ not found next to the package (an installed copy): skipped"}
    env = {**os.environ, "RL_I2IT_TEST_DEVICE": "cuda", "RL_I2IT_SMOKE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *tests], cwd=root, env=env, capture_output=True,
                          text=True)
    return {"returncode": done.returncode, "tail": "\n".join(done.stdout.strip().splitlines()[-15:])}


def run_gpu_check(out: Path, tasks: list[str] | None = None, bench_seconds: float = 2.0,
                  with_tests: bool = True) -> dict:
    from .checkpoint import atomic_write_text, library_versions
    from .tasks import TASKS

    device = require_cuda()
    tasks = tasks or sorted(TASKS)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise UserError(f"unknown task(s) {unknown}; choose from {', '.join(sorted(TASKS))}")
    out = Path(out)
    report: dict = {"versions": library_versions(), "device": _device_description(device), "tasks": {}}
    for task in tasks:
        report["tasks"][task] = check_task(task, out.parent / "runs" / task, device, bench_seconds)
        state = "ok" if report["tasks"][task]["passed"] else f"FAILED ({report['tasks'][task]['error']})"
        print(f"gpu-check {task}: {state}", flush=True)
        atomic_write_text(out, json.dumps(report, indent=2))  # a partial report survives a crash
    root = Path(__file__).resolve().parent.parent
    report["tests"] = run_tests(root) if with_tests else {"returncode": None, "tail": "skipped (--no-tests)"}
    report["passed"] = all(row["passed"] for row in report["tasks"].values()) and report["tests"]["returncode"] in (
        0, None)
    atomic_write_text(out, json.dumps(report, indent=2))
    return report
