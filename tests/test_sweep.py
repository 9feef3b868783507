"""``rl_i2it.sweep``: the spec parser, path templating, skip-finished, retry after a dead kernel, Ray.

The jobs execute ``tests/fixtures/sweep_job.ipynb`` (about a second each): it writes ``eval.json`` with
``score_final = 1 / (1 + seed) + (0.5 if task == "digits" else 0)``, kills its own kernel when asked to
(``kill_marker``: once, the first time), or raises in a cell (``fail``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml

from rl_i2it import sweep
from rl_i2it.__main__ import main
from rl_i2it.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sweep_job.ipynb"


def expected_score(task: str, seed: int) -> float:
    return 1.0 / (1.0 + seed) + (0.5 if task == "digits" else 0.0)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Run directories under tmp_path (``$RL_I2IT_RUNS``), one thread per kernel."""
    monkeypatch.setenv("RL_I2IT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "runs"


def spec_dict(**changes) -> dict:
    raw = {"sweep": "demo", "notebook": str(FIXTURE), "grid": {"task": ["digits", "face"], "seed": [0, 1]},
           "parameters": {"preset": "smoke"}, "run_dir": "{task}/{sweep}-seed{seed}", "retries": 1}
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


# ----------------------------------------------------------------------------------------- the parser
@pytest.mark.parametrize("changes, named", [
    ({"gird": {"seed": [0]}}, "'gird'; did you mean 'grid'"),
    ({"grid": {"seed": 3}}, "grid.seed: must be a non-empty list"),
    ({"grid": {"seed": []}}, "grid.seed: must be a non-empty list"),
    ({"grid": None}, "grid: needs a mapping"),
    ({"parameters": {"sed": 1}}, "parameters.sed: sweep_job.ipynb has no parameter 'sed'"),
    ({"parameters": {"seed": 1}}, "parameters.seed: is also a grid axis"),
    ({"parameters": {"run_dir": "x"}}, "parameters.run_dir"),
    ({"notebook": "no/such/notebook.ipynb"}, "notebook: "),
    ({"notebooks": {"digits": str(FIXTURE)}}, "exactly one of 'notebook'"),
    ({"resources": {"gpu": 1}}, "'resources.gpu'; did you mean 'resources.gpus'"),
    ({"resources": {"cpus": 0}}, "resources.cpus: must be a number > 0; got 0"),
    ({"resources": {"gpus": -0.5}}, "resources.gpus: must be a number >= 0; got -0.5"),
    ({"retries": -1}, "retries: must be a whole number >= 0; got -1"),
    ({"retries": 1.5}, "retries: must be a whole number >= 0"),
    ({"timeout": "long"}, "timeout: must be a number > 0; got 'long'"),
    ({"run_dir": "{task}/{sweep}-seed{sed}"}, "run_dir: template '{task}/{sweep}-seed{sed}' uses {sed}"),
    ({"run_dir": "{task}/{sweep}"}, "run_dir: jobs 'digits/seed0' and 'digits/seed1' both map to"),
    ({"sweep": "my sweep"}, "sweep: the name must be letters"),
    ({"metrics": "score_final"}, "metrics: must be a list"),
])
def test_bad_spec_names_the_key(runs, changes, named):
    with pytest.raises(UserError) as caught:
        sweep.parse_spec(spec_dict(**changes), source="spec.yaml")
    message = str(caught.value)
    assert named in message, message
    assert "\n" not in message and message.startswith("sweep spec spec.yaml")


def test_notebooks_mapping_needs_every_task(runs):
    raw = spec_dict(notebook=None, notebooks={"digits": str(FIXTURE)})
    with pytest.raises(UserError, match=r"grid.task: task 'face' has no entry in 'notebooks'"):
        sweep.parse_spec(raw)
    with pytest.raises(UserError, match=r"notebooks: picks a notebook by task"):
        sweep.parse_spec(spec_dict(notebook=None, notebooks={"digits": str(FIXTURE)}, grid={"seed": [0]}))


def test_load_spec_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sweep.load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("grid: [seed: 0\n")
    with pytest.raises(UserError, match=r"broken.yaml is not valid YAML"):
        sweep.load_spec(broken)
    listed = tmp_path / "listed.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="expected a mapping of keys"):
        sweep.load_spec(listed)


def test_cli_bad_spec_is_one_line_exit_2(tmp_path, capsys, runs):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec_dict(retries=-2)))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "retries" in err and "-2" in err, err


# ----------------------------------------------------------------------------------------- templating
def test_render_template():
    values = {"task": "digits", "sweep": "seeds", "seed": 3}
    assert sweep.render_template("{task}/{sweep}-seed{seed}", values) == "digits/seeds-seed3"
    with pytest.raises(UserError, match=r"uses \{lr\}.*available: seed, sweep, task"):
        sweep.render_template("{sweep}-lr{lr}", values)
    with pytest.raises(UserError, match="malformed template"):
        sweep.render_template("{sweep", values)


def test_expand_jobs_paths_names_and_parameters(runs, tmp_path):
    spec = sweep.parse_spec(spec_dict(), name="ignored")
    jobs = sweep.expand_jobs(spec)
    assert [job.name for job in jobs] == ["digits/seed0", "digits/seed1", "face/seed0", "face/seed1"]
    assert [job.run_dir for job in jobs] == [(runs / t / f"demo-seed{s}").resolve()
                                             for t in ("digits", "face") for s in (0, 1)]
    first = jobs[0]
    # the fixture declares `task`, so it is injected; run_dir is always injected, as an absolute path
    assert first.parameters == {"preset": "smoke", "task": "digits", "seed": 0, "run_dir": str(first.run_dir)}
    assert first.output == first.run_dir / "sweep_job.ipynb"
    assert len({job.fingerprint for job in jobs}) == 4
    # default template: {task}/{sweep}-{job}, the job named by the other axes; absolute templates stay put
    default = sweep.expand_jobs(sweep.parse_spec(spec_dict(run_dir=None, grid={"task": ["face"], "seed": [2],
                                                                              "sleep": [0.0]})))
    assert default[0].run_dir == (runs / "face" / "demo-seed2-sleep0.0").resolve()
    absolute = sweep.expand_jobs(sweep.parse_spec(spec_dict(run_dir=str(tmp_path / "abs" / "{task}{seed}"))))
    assert absolute[0].run_dir == (tmp_path / "abs" / "digits0").resolve()
    # without a task axis: {sweep}/{job}
    plain = sweep.expand_jobs(sweep.parse_spec(spec_dict(run_dir=None, grid={"seed": [0, 1]})))
    assert [job.run_dir for job in plain] == [(runs / "demo" / f"seed{s}").resolve() for s in (0, 1)]


def test_notebook_chosen_by_task_gets_no_task_parameter_it_lacks(runs, tmp_path):
    # a copy of the fixture without the `task` parameter stands in for a chapter (which knows its task)
    nb = nbformat.read(FIXTURE, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("task ="))
    nb.cells.insert(2, nbformat.v4.new_code_cell('task = "from-notebook"'))
    chapter = tmp_path / "chapter.ipynb"
    nbformat.write(nb, chapter)
    spec = sweep.parse_spec(spec_dict(notebook=None, notebooks={"digits": str(chapter), "face": str(FIXTURE)}))
    by_task = {job.values["task"]: job for job in sweep.expand_jobs(spec)}
    assert "task" not in by_task["digits"].parameters and by_task["digits"].notebook == chapter.resolve()
    assert by_task["face"].parameters["task"] == "face"


# ------------------------------------------------------------------------- running, skipping, retrying
def test_sweep_runs_retries_a_dead_kernel_and_skips_finished_jobs(runs, tmp_path):
    marker = tmp_path / "killed-once"
    raw = spec_dict(grid={"task": ["digits"], "seed": [0, 1]}, summary_dir=str(tmp_path / "summary"),
                    parameters={"preset": "smoke", "kill_marker": str(marker)})
    spec = sweep.parse_spec(raw)
    frame = sweep.run_sweep(spec, progress=None)
    assert marker.exists(), "the first job should have killed its kernel"
    assert list(frame["status"]) == ["done", "done"]
    assert list(frame["attempts"]) == [2, 1], "the killed job is executed again, the other once"
    assert list(frame["score_final"]) == pytest.approx([expected_score("digits", 0), expected_score("digits", 1)])
    assert all(d > 0 for d in frame["duration_s"])
    for job in sweep.expand_jobs(spec):
        executed = nbformat.read(job.output, as_version=4)
        assert frame.loc[frame["job"] == job.name, "duration_s"].item() == \
            pytest.approx(executed.metadata.papermill.duration)
        assert executed.metadata.papermill.parameters["run_dir"] == str(job.run_dir)
        assert json.loads((job.run_dir / sweep.STATUS_FILE).read_text())["status"] == "done"
    summary = tmp_path / "summary"
    assert (summary / "summary.csv").exists() and "| digits/seed0 |" in (summary / "summary.md").read_text()

    # re-running does no work: every job is skipped, its earlier numbers shown
    before = {job.name: job.output.stat().st_mtime_ns for job in sweep.expand_jobs(spec)}
    again = sweep.run_sweep(spec, progress=None)
    assert again.attrs["ran"] == 0 and set(again["status"]) == {"skipped (finished)"}
    assert list(again["score_final"]) == list(frame["score_final"])
    assert before == {job.name: job.output.stat().st_mtime_ns for job in sweep.expand_jobs(spec)}

    # a job whose parameters changed is not finished; nor is one whose executed notebook is gone
    changed = sweep.parse_spec({**raw, "parameters": {**raw["parameters"], "preset": "course"}})
    assert not any(sweep.job_finished(job) for job in sweep.expand_jobs(changed))
    first = sweep.expand_jobs(spec)[0]
    first.output.unlink()
    assert not sweep.job_finished(first) and sweep.job_finished(sweep.expand_jobs(spec)[1])


def test_failures_are_recorded_and_rerun(runs, tmp_path):
    marker = tmp_path / "marker"
    raw = spec_dict(grid={"task": ["face"], "seed": [0]}, retries=0, summary_dir=str(tmp_path / "s"),
                    parameters={"kill_marker": str(marker)})
    frame = sweep.run_sweep(sweep.parse_spec(raw), progress=None)
    assert frame.loc[0, "status"] == "failed" and frame.loc[0, "attempts"] == 1
    assert "kernel died" in frame.loc[0, "error"]
    # a failed job runs again next time (the marker now exists: the kernel survives)
    frame = sweep.run_sweep(sweep.parse_spec(raw), progress=None)
    assert frame.loc[0, "status"] == "done" and frame.loc[0, "score_final"] == pytest.approx(expected_score("face", 0))
    # an error in a cell is the notebook's failure: not retried, named in the summary
    failing = sweep.parse_spec(spec_dict(grid={"task": ["face"], "seed": [5]}, retries=3,
                                         summary_dir=str(tmp_path / "s"), parameters={"fail": True}))
    frame = sweep.run_sweep(failing, progress=None)
    assert frame.loc[0, "status"] == "failed" and frame.loc[0, "attempts"] == 1
    assert "RuntimeError" in frame.loc[0, "error"] and "asked to fail" in frame.loc[0, "error"]


def test_cli_dry_run_and_run(runs, tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec_dict(grid={"task": ["face"], "seed": [4]},
                                             summary_dir=str(tmp_path / "summary"))))
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "face/seed4: sweep_job.ipynb" in out and "(to run)" in out
    assert main(["sweep", str(path)]) == 0
    assert "done" in capsys.readouterr().out
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "(finished)" in capsys.readouterr().out
    assert main(["sweep", str(path), "--ray-cpus", "0"]) == 2


# ----------------------------------------------------------------------------------------------- Ray
@pytest.mark.own_interpreter
def test_ray_local_instance_with_two_cpus(runs, tmp_path):
    ray = pytest.importorskip("ray")
    marker = tmp_path / "killed-once"
    spec = sweep.parse_spec(spec_dict(grid={"task": ["digits", "face"], "seed": [1]}, resources={"cpus": 1},
                                      parameters={"kill_marker": str(marker)}, summary_dir=str(tmp_path / "s")))
    frame = sweep.run_sweep(spec, use_ray=True, ray_cpus=2, progress=None)
    assert not ray.is_initialized(), "a local instance started for the sweep is shut down after it"
    assert list(frame["status"]) == ["done", "done"]
    assert sorted(frame["attempts"]) == [1, 2], "one of the two jobs met the kill marker first and was retried"
    assert list(frame["score_final"]) == pytest.approx([expected_score("digits", 1), expected_score("face", 1)])
    workers = {json.loads((job.run_dir / sweep.STATUS_FILE).read_text())["pid"] for job in sweep.expand_jobs(spec)}
    assert os.getpid() not in workers, "the jobs ran in Ray worker processes, not in the driver"
    # asking for more than the instance has is a clear error, before any job runs
    greedy = sweep.parse_spec(spec_dict(grid={"task": ["face"], "seed": [9]}, resources={"cpus": 4}))
    with pytest.raises(UserError, match=r"resources ask 4 CPU.*local Ray instance would have 2 CPU"):
        sweep.run_sweep(greedy, use_ray=True, ray_cpus=2, progress=None)
    assert not ray.is_initialized()
