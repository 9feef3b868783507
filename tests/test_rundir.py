"""Run directories that survive anything (issue 16): the lock, exact logs after a resume, a torn log line,
one-line path and disk errors, typed config values, leftover temp files, and a SIGKILL crash probe."""
import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rl_i2it.__main__ import main
from rl_i2it.config import make_config
from rl_i2it.errors import DataError, UserError
from rl_i2it.rundir import RunDirBusy, RunDirLock, TornLogWarning, read_metrics_jsonl
from rl_i2it.train import Trainer, load_run

from same import assert_same

TINY = dict(total_env_steps=256, num_envs=8, bootstrap_env_steps=64, batch_size=16, replay_ratio=1.0,
            buffer_capacity=512, log_every_env_steps=64, checkpoint_every_env_steps=128,
            planner_widths=(4, 8, 8), critic_widths=(4, 8, 8), eval_pairs=8, eval_steps=3)
TIMING = ("wall_time_s", "env_steps_per_s")


def tiny(**overrides):
    return make_config("digits", "smoke", **{**TINY, **overrides})


def rows_without_time(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def cli_env():
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "RL_I2IT_SMOKE": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process that holds ``run_dir``'s lock until killed."""
    code = ("import sys, time; from rl_i2it.rundir import RunDirLock; RunDirLock(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)")
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              env=cli_env())
    assert holder.stdout.readline().strip() == "locked"
    return holder


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rl_i2it: error:"), lines
    return lines[0]


# ------------------------------------------------------------------------------------------ 1. the lock
@pytest.mark.parametrize("if_exists", ["error", "resume", "overwrite"])
def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path, if_exists):
    run_dir = tmp_path / "run"
    Trainer(tiny(total_env_steps=64), run_dir=run_dir).close()  # holds a run (config.yaml) for overwrite
    holder = hold_lock(run_dir)
    try:
        with pytest.raises(RunDirBusy, match=f"in use by process {holder.pid} "):
            Trainer(tiny(total_env_steps=64), run_dir=run_dir, if_exists=if_exists)
        assert (run_dir / "config.yaml").exists()  # overwrite deleted nothing
    finally:
        holder.kill()
        holder.wait()
    if if_exists == "error":  # the OS released the dead holder's lock: the usual refusal, no longer "in use"
        with pytest.raises(UserError, match="already holds a run"):
            Trainer(tiny(total_env_steps=64), run_dir=run_dir)
    else:
        Trainer(tiny(total_env_steps=64), run_dir=run_dir, if_exists=if_exists).close()


@pytest.mark.slow  # starts CLI processes
def test_two_concurrent_cli_writers_cannot_both_proceed(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "rl_i2it", "train", "--task", "digits", "--preset", "smoke", "--device", "cpu",
            "--quiet", "--no-eval", "--run-dir", str(run_dir)] + sum((["--set", f"{k}={v}"] for k, v in
                                                                      dict(TINY, planner_widths="[4,8,8]",
                                                                           critic_widths="[4,8,8]").items()), [])
    first = subprocess.Popen(args + ["--seed", "0"], stderr=subprocess.PIPE, text=True, env=cli_env())
    deadline = time.time() + 300
    while not (run_dir / ".lock").is_file() or not (run_dir / ".lock").read_text().strip():
        assert first.poll() is None and time.time() < deadline, first.stderr.read()
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)  # holds the lock, mid-start or mid-training, however loaded the machine is
    try:
        second = subprocess.run(args + ["--seed", "1"], capture_output=True, text=True, env=cli_env(), timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2
    assert second.stderr.strip() == (f"rl_i2it: error: run directory {run_dir} is in use by process {first.pid} on "
                                     f"{os.uname().nodename}; wait for it to finish (or stop it), or pass another "
                                     f"--run-dir")
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert "seed: 0" in (run_dir / "config.yaml").read_text() and "seed: 0" in saved["config"]
    assert [row["env_steps"] for row in read_metrics_jsonl(run_dir)] == [64, 128, 192, 256]


def test_one_process_reopens_its_own_run(tmp_path):
    trainer = Trainer(tiny(), run_dir=tmp_path / "run")
    trainer.train()
    reader = load_run(tmp_path / "run", device="cpu")  # read-only: no lock, nothing written
    assert reader.run_dir is None and reader.env_steps == trainer.env_steps
    again = load_run(tmp_path / "run", device="cpu", writable=True)  # same process: the lock is re-entrant
    assert again.finished
    again.close()
    trainer.close()
    holder = hold_lock(tmp_path / "run")  # every holder in this process released: another process may lock
    holder.kill()
    holder.wait()


def test_lock_is_reentrant_and_released_by_the_last_holder(tmp_path):
    with RunDirLock(tmp_path) as first:
        with RunDirLock(tmp_path):
            pass
        assert first.path.read_text().split()[0] == str(os.getpid())
        code = "import sys; from rl_i2it.rundir import RunDirLock; RunDirLock(sys.argv[1])"
        probe = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                               env=cli_env())
        assert probe.returncode != 0 and f"in use by process {os.getpid()}" in probe.stderr
    RunDirLock(tmp_path).release()


# ------------------------------------------------------------------------------------------ 2. the row after a resume
class Crash(BaseException):
    """Stands for SIGKILL in-process: raised right after a checkpoint, mid log window."""


@pytest.mark.parametrize("old_checkpoint", [False, True], ids=["checkpoint", "checkpoint-before-issue-16"])
def test_log_rows_after_a_resume_equal_an_uninterrupted_runs(tmp_path, old_checkpoint):
    cfg = tiny(total_env_steps=256, log_every_env_steps=96, checkpoint_every_env_steps=64)
    straight = Trainer(cfg, run_dir=tmp_path / "straight")
    straight.train()
    crashing = Trainer(cfg, run_dir=tmp_path / "split")
    save = crashing.save

    def save_then_crash():
        save()
        if crashing.env_steps == 128:  # a checkpoint 32 steps after the row at 96: stats are mid-window
            raise Crash

    crashing.save = save_then_crash
    with pytest.raises(Crash):
        crashing.train()
    crashing.close()
    if old_checkpoint:  # written before last_log_env_steps was a counter: the log's last row stands in
        state = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
        del state["counters"]["last_log_env_steps"]
        torch.save(state, tmp_path / "split" / "checkpoint.pt")
    resumed = Trainer(cfg, run_dir=tmp_path / "split", if_exists="resume")
    assert resumed.env_steps == 128 and resumed.last_log_env_steps == 96
    resumed.train()
    assert rows_without_time(read_metrics_jsonl(tmp_path / "split")) == \
        rows_without_time(read_metrics_jsonl(tmp_path / "straight"))


# ------------------------------------------------------------------------------------------ 3. a torn last line
def test_a_torn_last_log_line_is_dropped_on_resume_and_tolerated_by_eval(tmp_path, capsys):
    run_dir = tmp_path / "run"
    Trainer(tiny(total_env_steps=128), run_dir=run_dir).train()
    log = run_dir / "metrics.jsonl"
    with open(log, "a") as handle:
        handle.write('{"env_steps": 192, "upd')
    before = (log.read_bytes(), log.stat().st_mtime_ns, sorted(p.name for p in run_dir.iterdir()))
    with pytest.warns(TornLogWarning, match="cut off"):
        rows = read_metrics_jsonl(run_dir)
    assert [row["env_steps"] for row in rows] == [64, 128]
    assert main(["eval", "--run-dir", str(run_dir), "--device", "cpu", "--json"]) == 0
    assert (log.read_bytes(), log.stat().st_mtime_ns, sorted(p.name for p in run_dir.iterdir())) == before
    with pytest.warns(TornLogWarning):
        resumed = Trainer(tiny(total_env_steps=256), run_dir=run_dir, if_exists="resume")
    resumed.train()
    assert [row["env_steps"] for row in read_metrics_jsonl(run_dir)] == [64, 128, 192, 256]


def test_a_corrupt_line_before_the_last_is_a_data_error(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"env_steps": 64}\nnot json\n{"env_steps": 192}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl: line 2 is not a log row"):
        read_metrics_jsonl(log)


# ------------------------------------------------------------------------------------------ 4. paths and a full disk
@pytest.mark.parametrize("where", ["/proc/rl_i2it_x", "/sys/rl_i2it_x", "FILE/run"])
def test_unusable_run_dirs_get_one_line_errors(tmp_path, capsys, where):
    (tmp_path / "FILE").write_text("a file")
    run_dir = where.replace("FILE", str(tmp_path / "FILE"))
    line = one_line_error(capsys, ["train", "--task", "digits", "--preset", "smoke", "--device", "cpu", "--quiet",
                                   "--run-dir", run_dir, "--set", "total_env_steps=64"])
    assert run_dir in line and "pass another --run-dir" in line


def disk_full(*_args, **_kwargs):
    """What torch 2.x raises on a full disk: its RuntimeError, with the OSError as its context."""
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def test_a_full_disk_keeps_the_previous_checkpoint_and_the_run_resumable(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    trainer = Trainer(tiny(total_env_steps=128, checkpoint_every_env_steps=64), run_dir=run_dir)
    trainer.train(until_env_steps=64)
    previous = (run_dir / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(UserError, match=r"cannot write .*checkpoint.pt: no space left on the device; free space .*"
                                        r"the previous version is intact; resume from it with --if-exists resume"):
        trainer.train()
    assert (run_dir / "checkpoint.pt").read_bytes() == previous
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "checkpoint.pt", "config.yaml", "metrics.jsonl"]
    trainer.close()
    line = one_line_error(capsys, ["train", "--task", "digits", "--preset", "smoke", "--device", "cpu", "--quiet",
                                   "--run-dir", str(tmp_path / "cli"), *sum((["--set", f"{k}={v}"] for k, v in
                                   dict(TINY, planner_widths="[4,8,8]", critic_widths="[4,8,8]").items()), [])])
    assert "no space left on the device" in line and "checkpoint.pt" in line
    monkeypatch.undo()
    resumed = Trainer(tiny(total_env_steps=128, checkpoint_every_env_steps=64), run_dir=run_dir, if_exists="resume")
    assert resumed.env_steps == 64
    resumed.train()
    assert resumed.finished


# ------------------------------------------------------------------------------------------ 5. typed config values
def test_config_values_are_checked_against_their_types_before_anything_is_written(tmp_path, capsys):
    line = one_line_error(capsys, ["train", "--task", "digits", "--preset", "smoke", "--device", "cpu",
                                   "--run-dir", str(tmp_path / "run"), "--set", "checkpoint_every_env_steps=abc"])
    assert line == "rl_i2it: error: config field checkpoint_every_env_steps must be an integer; got 'abc' (str)"
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="config field seed must be an integer; got 'abc'"):
        make_config("digits", "smoke", seed="abc")
    with pytest.raises(UserError, match="num_envs must be an integer; got True"):
        make_config("digits", "smoke", num_envs=True)
    with pytest.raises(UserError, match="planner_widths must be a list of integers"):
        make_config("digits", "smoke", planner_widths=(8, "16"))
    with pytest.raises(UserError, match="write it with a dot"):
        make_config("digits", "smoke", lr_actor="1e-3")  # what YAML makes of --set lr_actor=1e-3
    with pytest.raises(UserError, match="checkpoint_every_env_steps must be >= 1"):
        make_config("digits", "smoke", checkpoint_every_env_steps=0)
    assert make_config("digits", "smoke", replay_ratio=2).replay_ratio == 2  # an int is a number


def test_a_papermill_parameter_of_the_wrong_type_is_refused_before_a_run_dir_exists(tmp_path, monkeypatch):
    from rl_i2it.notebook import notebook_setup

    monkeypatch.setenv("RL_I2IT_RUNS", str(tmp_path))
    with pytest.raises(UserError, match="config field seed must be an integer; got 'abc'"):
        notebook_setup("digits", "ch10", preset="smoke", seed="abc")  # papermill -p seed abc
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ 6. leftover temp files
def test_leftover_temp_files_of_atomic_writes_are_removed_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    Trainer(tiny(total_env_steps=128), run_dir=run_dir).train(until_env_steps=64)
    ours = [run_dir / f".{name}.k1ll3d.tmp" for name in ("checkpoint.pt", "config.yaml", "metrics.jsonl", "eval.json")]
    theirs = run_dir / ".notes.txt.abc.tmp"
    for path in ours + [theirs]:
        path.write_bytes(b"x" * 1000)
    Trainer(tiny(total_env_steps=128), run_dir=run_dir, if_exists="resume").close()
    assert not any(path.exists() for path in ours) and theirs.exists()


# ------------------------------------------------------------------------------------------ the crash probe
PROBE = dict(total_env_steps=640, num_envs=8, bootstrap_env_steps=64, batch_size=16, replay_ratio=1.0,
             buffer_capacity=640, log_every_env_steps=72, checkpoint_every_env_steps=24, planner_widths="[4,8,8]",
             critic_widths="[4,8,8]")


def probe_run(run_dir: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "rl_i2it", "train", "--task", "digits", "--preset", "smoke", "--device", "cpu",
            "--quiet", "--no-eval", "--if-exists", "resume", "--run-dir", str(run_dir)]
    for name, value in PROBE.items():
        args += ["--set", f"{name}={value}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env())


def assert_checkpoints_same(a, b, where="checkpoint"):
    """Every tensor, number and string of two checkpoints equal (timing and library versions aside)."""
    assert_same(a, b, where, skip=frozenset({"versions", "wall_time"}))


def crash_probe(tmp_path: Path, kills: int, seed: int) -> dict:
    """SIGKILL a tiny CLI run ``kills`` times at random moments (each after fresh progress), resume it to the end,
    and compare every tensor of its checkpoint and every log row with an uninterrupted run's."""
    reference = probe_run(tmp_path / "straight")
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    rng, run_dir, killed, starts = random.Random(seed), tmp_path / "killed", 0, 0
    checkpoint, log = run_dir / "checkpoint.pt", run_dir / "metrics.jsonl"
    while True:
        starts += 1
        process = probe_run(run_dir)
        if killed < kills:
            mark = (checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0,
                    log.stat().st_size if log.exists() else 0)
            while process.poll() is None and (checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0,
                                              log.stat().st_size if log.exists() else 0) == mark:
                time.sleep(0.005)  # wait for fresh progress, so every kill lands inside training
            time.sleep(rng.uniform(0.0, 0.4))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed += 1
                continue
        assert process.wait(timeout=600) == 0, process.stderr.read()
        break
    assert_checkpoints_same(torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True),
                torch.load(checkpoint, weights_only=True))
    straight_rows = read_metrics_jsonl(tmp_path / "straight")
    assert rows_without_time(read_metrics_jsonl(run_dir)) == rows_without_time(straight_rows)
    assert not list(run_dir.glob(".*.tmp"))
    return {"kills": killed, "starts": starts}


@pytest.mark.slow  # starts CLI processes
def test_crash_probe_sigkill_then_resume_is_exact(tmp_path):
    result = crash_probe(tmp_path, kills=3, seed=16)
    assert result["kills"] == 3
