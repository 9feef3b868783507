"""Device cleanliness: gpu-check refuses without CUDA; on CUDA the hot loop never synchronises with the host and a
CUDA checkpoint loads and evaluates on the CPU. (``make gpu-check`` runs this file with a GPU; CI has none.)"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rl_i2it.train import Trainer, load_run

from test_task_contract import TINY, tiny

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (make gpu-check runs it on a GPU)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_check_refuses_in_one_line_without_cuda():
    done = subprocess.run([sys.executable, "-m", "rl_i2it", "gpu-check", "--out", "/nonexistent/report.json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rl_i2it: error: gpu-check needs CUDA"), done.stderr


@cuda
@pytest.mark.parametrize("task", sorted(TINY))
def test_the_hot_loop_never_waits_for_the_host(task):
    """collect + update under ``torch.cuda.set_sync_debug_mode("error")``: any .item(), bool(tensor), nonzero or
    host copy inside them raises."""
    trainer = Trainer(tiny(task), device="cuda")
    while len(trainer.buffer) < trainer.cfg.batch_size:
        trainer.collect()
    trainer.update()  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.collect()
            trainer.update()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda
@pytest.mark.parametrize("task", sorted(TINY))
def test_a_cuda_checkpoint_loads_and_evaluates_on_the_cpu(task, tmp_path):
    trainer = Trainer(tiny(task), run_dir=tmp_path / "run", device="cuda")
    trainer.train()
    on_cuda = trainer.evaluate(steps=2)
    on_cpu = load_run(tmp_path / "run", device="cpu").evaluate(steps=2)
    assert on_cpu.score_final == pytest.approx(on_cuda.score_final, rel=1e-2, abs=1e-2)
