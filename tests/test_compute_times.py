"""The chapters' compute banners: measured times per preset from bench files and committed comparisons."""
import json
import subprocess
import sys

from rl_i2it.compute_times import banner, measured_seconds


def write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def test_banner_states_each_measurement_and_what_is_missing(tmp_path):
    write(tmp_path / "figures" / "compute" / "face-smoke.json",
          {"train_seconds_estimate": 75.0, "measured_at": "2026-12-02",
           "machine": {"cpu_count": 2, "torch_threads": 2, "device": "cpu"}})
    write(tmp_path / "figures" / "comparisons" / "face-course.json",
          {"methods": {"rl": {"train_seconds": [600.0, 900.0, 700.0]}}})
    write(tmp_path / "figures" / "comparisons" / "face-smoke.json",
          {"methods": {"rl": {"train_seconds": [200.0, 210.0, 220.0]}}})
    assert measured_seconds("face", "course", tmp_path)["comparison"] == 700.0
    text = banner("face", "the policy and a baseline", root=tmp_path)
    assert "**smoke**: ≈ 75 s estimated by `bench` (2 CPUs, 2 torch threads, cpu, 2026-12-02)" in text
    assert "**course**: 12 min measured in the committed comparison (median of 3 runs, one CPU core each, beside other runs)" in text
    assert "trains the policy and a baseline" in text
    # smoke has a bench estimate, so its comparison's shared-machine time (median 210 s) is not shown; course has none
    assert text.count("measured in the committed comparison") == 1 and "4 min" not in text
    empty = banner("photo", "the policy", root=tmp_path)
    assert empty.count("not measured yet") == 2 and "--task photo" in empty


def test_bench_out_writes_the_report_with_its_date(tmp_path):
    out = tmp_path / "compute" / "digits-smoke.json"
    result = subprocess.run([sys.executable, "-m", "rl_i2it", "bench", "--task", "digits", "--preset", "smoke",
                             "--seconds", "0.2", "--device", "cpu", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["train_seconds_estimate"] > 0 and len(report["measured_at"]) == 10
    assert list(out.parent.iterdir()) == [out], "written atomically: no temporary file left"
    found = measured_seconds("digits", "smoke", tmp_path.parent / "nowhere")
    assert found["estimate"] is None  # another root: nothing measured there


def test_show_markdown_carries_plain_text_for_terminals(monkeypatch):
    """papermill --log-output (make quickstart) prints text/plain: the markdown must be there as text too."""
    import IPython.display

    from rl_i2it.notebook import show_markdown

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.append((objs, kw)))
    show_markdown("**Compute.** 3 min")
    (bundle,), options = shown[0]
    assert bundle == {"text/markdown": "**Compute.** 3 min", "text/plain": "**Compute.** 3 min"} and options["raw"]


def test_banner_adds_the_measured_execution_options(tmp_path):
    write(tmp_path / "figures" / "compute" / "digits-course.json",
          {"train_seconds_estimate": 130.0, "machine": {"cpu_count": 2, "torch_threads": 2, "device": "cpu"}})
    assert "NHWC" not in banner("digits", "the policy", root=tmp_path), "no ablation file: no sentence"
    write(tmp_path / "figures" / "compute" / "ablate-digits.json",
          {"options": {"memory_format": {"update_ratio": 1.487}, "amp": {"update_ratio": 1.31}}})
    text = banner("digits", "the policy", root=tmp_path)
    assert "made its learner updates 1.49× as fast as NCHW" in text and "`--amp bf16`" in text and "1.31× on top" in text
