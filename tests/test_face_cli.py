"""The face task from the command line (in-process): train, eval, bench, and a one-line error."""
import json

from rl_i2it.__main__ import main

SMALL = ["--set", "train_faces=32", "--set", "eval_faces=8", "--set", "planner_widths=[4,8,8,8]",
         "--set", "critic_widths=[4,8,8,8]"]
TINY = ["--total-env-steps", "96", "--num-envs", "8", "--batch-size", "8", *SMALL]


def test_face_train_eval_bench_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RL_I2IT_SMOKE", "1")
    run_dir = tmp_path / "face"
    assert main(["train", "--task", "face", "--preset", "smoke", "--run-dir", str(run_dir), "--quiet", *TINY]) == 0
    assert "psnr_hole" in capsys.readouterr().out
    results = json.loads((run_dir / "eval.json").read_text())
    assert results["protocol"]["steps"] == 5 and results["details"]["n_faces"] == 8
    assert 5 < results["score_identity"] < 40

    assert main(["eval", "--run-dir", str(run_dir), "--steps", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["tables"]["psnr_hole"]["per_step"]) == 3
    assert main(["eval", "--run-dir", str(run_dir), "--steps", "1"]) == 0
    assert "ssim_hole" in capsys.readouterr().out

    assert main(["bench", "--task", "face", "--preset", "smoke", "--batch", "8", "--batch-size", "8",
                 "--seconds", "0.1", "--json", *SMALL]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "face" and report["env_steps_per_s"] > 0
    assert report["replay_bytes_per_transition"] == 4 + 2 * 3 * 16 * 16 + 4 * 64 + 4 + 1

    assert main(["eval", "--run-dir", str(run_dir), "--pairs", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rl_i2it: error: --pairs is for the digits task") and err.count("\n") == 1
