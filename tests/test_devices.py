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


@pytest.mark.parametrize("task", ["digits", "face"])
def test_bf16_autocast_trains_and_keeps_plans_and_losses_in_float32(task):
    """``amp="bf16"`` runs on any device (CPU autocast here); plans, Q values and the logged losses stay float32 and
    finite, and the fp32 default is untouched by the option (the contract tests pin its numbers)."""
    trainer = Trainer(tiny(task, amp="bf16"), device="cpu")
    rows = trainer.train()
    assert trainer.updates > 0
    for key in ("critic_loss", "aux_loss", "q", "log_prob"):
        assert all(row[key] is None or torch.isfinite(torch.tensor(row[key])) for row in rows), key
    dist, _, _ = trainer.planner(trainer.obs)
    assert dist.mean.dtype == torch.float32
    with trainer._autocast():
        dist, skips, _ = trainer.planner(trainer.obs)
        assert dist.mean.dtype == torch.float32 and skips[-1].dtype == torch.bfloat16


def test_amp_refuses_unknown_modes():
    from rl_i2it.errors import UserError

    with pytest.raises(UserError, match="unknown amp 'fp8'"):
        tiny("digits", amp="fp8")
