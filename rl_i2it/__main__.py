"""Command line: ``python -m rl_i2it train|eval|bench|baseline|compare|report|sweep ...``.

Errors a user can cause print one line (``rl_i2it: error: ...``) and exit with status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other user error
        raise UserError(f"{message} (see python -m rl_i2it {self.prog.split()[-1]} --help)")


TASK_HELP = "the task: digits, brain2d, brain3d, face, photo, image_style or video_style"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")


def _settable(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set image_size=64 --set planner_widths=[8,16,16] "
                             "(values are read as YAML; repeatable)")
    parser.add_argument("--dataset", default=None, help="photo task: edges2photo, facades_synth or pix2pix:PATH "
                                                        "(the same as --set dataset=...)")


def _execution(parser: argparse.ArgumentParser) -> None:
    """How the networks run (what ``bench --ablate`` measures); the numbers they compute stay the same."""
    parser.add_argument("--amp", default=None, choices=("off", "bf16"),
                        help="bf16: the networks' forward passes under bfloat16 autocast (the same as --set amp=bf16; "
                             "default: the config's, off); faster only on a CPU with AVX512-BF16 or AMX (bench --json: "
                             "cpu_native_bf16), elsewhere a warning")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the planner, actor and critics (the same as --set compile=true; needs a C "
                             "compiler on the CPU, else a warning and eager; off by default: on the 2-core CPU it "
                             "lost to channels_last alone, see bench --ablate compile)")


def _write_json(path: str, payload: dict) -> None:
    """``--out``: ``payload`` as indented JSON at ``path``, its folder made, written atomically."""
    from .checkpoint import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps(payload, indent=1) + "\n")


def _overrides(items: list[str]) -> dict:
    """``["image_size=64", "widths=[8,16]"]`` -> ``{"image_size": 64, "widths": (8, 16)}``."""
    import yaml

    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set expects FIELD=VALUE; got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise UserError(f"--set {item!r}: the value is not valid YAML ({error})") from None
        values[name.strip()] = tuple(value) if isinstance(value, list) else value
    return values


def _settings(args) -> dict:
    """``--set`` overrides plus ``--dataset`` (a config field only some tasks have, so passed only when given)."""
    values = _overrides(args.set)
    if getattr(args, "dataset", None):
        values["dataset"] = args.dataset
    if getattr(args, "amp", None):
        values["amp"] = args.amp
    if getattr(args, "compile", False):
        values["compile"] = True
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rl_i2it", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    train = sub.add_parser("train", help="train a task and evaluate it")
    train.add_argument("--task", default="digits", help=f"{TASK_HELP} (default: %(default)s)")
    train.add_argument("--preset", default="auto", help="auto (smoke if RL_I2IT_SMOKE=1, else course), smoke, "
                                                        "course or paper")
    train.add_argument("--run-dir", default=None, help="run directory (default runs/<task>/<preset>-seed<seed>)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--if-exists", default="error", help="error, resume or overwrite an existing run directory")
    train.add_argument("--total-env-steps", type=int, default=None, help="override the preset's training length")
    train.add_argument("--batch-size", type=int, default=None, help="override the learner batch")
    train.add_argument("--num-envs", type=int, default=None, help="override the number of batched envs")
    train.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _settable(train)
    _execution(train)
    _common(train)

    evaluate = sub.add_parser("eval", help="evaluate a run with the task's pinned protocol")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--pairs", default=None, help="an .npz with uint8 'moving' and 'fixed' (N, 28, 28)")
    evaluate.add_argument("--steps", type=int, default=None, help="T, steps per episode (default: the config's)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    _common(evaluate)

    bench = sub.add_parser("bench", help="throughput and memory benchmark (prints JSON)")
    bench.add_argument("--task", default="digits", help=f"{TASK_HELP} (default: %(default)s)")
    bench.add_argument("--preset", default="auto", help="auto (smoke if RL_I2IT_SMOKE=1, else course), smoke, course "
                                                        "or paper (the authors' sizes: for a GPU; building its data "
                                                        "alone takes minutes on a CPU) (default: %(default)s)")
    bench.add_argument("--batch", type=int, default=None, help="B, environments stepped together (default: the "
                                                               "preset's num_envs)")
    bench.add_argument("--batch-size", type=int, default=None, help="learner batch (default: the preset's)")
    bench.add_argument("--seconds", type=float, default=2.0, help="time spent on each of the four measurements, so "
                                                                  "a run takes about 4x this plus building the task "
                                                                  "(default: %(default)s)")
    bench.add_argument("--replay-ratio", type=float, default=3.2,
                       help="samples trained per env step in the loop measurement (default: the authors' 3.2, so "
                            "the comparison with them stays like for like)")
    bench.add_argument("--json", action="store_true", help="print one JSON object (default: one line per figure)")
    bench.add_argument("--out", default=None, help="also write the JSON, with the UTC date it was measured, to this "
                                                   "file (atomically; figures/compute/<task>-<preset>.json is what "
                                                   "the chapters' compute banners read)")
    bench.add_argument("--ablate", nargs="+", default=None, metavar="OPTION",
                       help="instead: each named execution option (memory_format, compile, amp, threads) off and on, "
                            "two trainers timed in one process, interleaved; prints the ratios on/off "
                            "(rl_i2it/speedups.py)")
    bench.add_argument("--rounds", type=int, default=6, help="with --ablate: interleaved rounds of 4 updates and 4 "
                                                             "collects per arm (default: %(default)s)")
    _settable(bench)
    _execution(bench)
    _common(bench)

    baseline = sub.add_parser("baseline", help="train and evaluate the one-step (no RL) baseline")
    baseline.add_argument("--task", default="digits", help=f"{TASK_HELP} (default: %(default)s)")
    baseline.add_argument("--preset", default="auto")
    baseline.add_argument("--seconds", type=float, required=True, help="wall-clock training budget")
    baseline.add_argument("--seed", type=int, default=0)
    baseline.add_argument("--out", default=None, help="write the evaluation JSON here")
    _settable(baseline)
    _common(baseline)

    compare = sub.add_parser("compare", help="the controls: identity, one-step, iterated, cascade, aux-only, rl and "
                                             "its plan zeroed/shuffled/prior (+ per-pair optimisation for "
                                             "registration), every method at the same learner updates, over seeds",
                             description="Train and evaluate every control of a task at equal learner updates and write "
                                         "RUN_DIR/comparison.json (resumable: finished (method, seed) runs are "
                                         "reused). See rl_i2it/compare.py for what each method is.")
    _comparison_options(compare, "where comparison.json, every run and result go")
    compare.add_argument("--methods", nargs="+", default=None, help="a subset of the methods (default: all)")
    compare.add_argument("--cascade-steps", type=int, default=None,
                         help="k, applications of the cascade (default: the policy's T, at most 10)")
    compare.add_argument("--smooth-weights", type=float, nargs="+", default=None,
                         help="registration: smoothness weights swept for one_step and cascade on a validation "
                              "split (default: the config's /3, x1, x3; one value: no sweep)")
    compare.add_argument("--sweep", nargs="*", default=["one_step"], choices=("one_step", "cascade"),
                         help="which networks sweep the smoothness weight (default: one_step, whose single field is "
                              "penalised once; the cascade, like the policy, uses the config's per-step weight; "
                              "sweeping it too costs k times the one-step network's sweep)")
    compare.add_argument("--json", action="store_true", help="print comparison.json (default: a table)")
    compare.add_argument("--quiet", action="store_true", help="no progress lines")
    _ray_options(compare, "every (method, seed) run", "the comparison")
    _settable(compare)
    _execution(compare)
    _common(compare)

    budget = sub.add_parser("budget", help="does the one-step network catch up with more learner updates? one_step "
                                           "at k x the budget against aux_only at the budget, paired",
                            description="Run a reference comparison (one_step, aux_only) in RUN_DIR/base unless --base, "
                                        "then one_step at each multiple of its budget in RUN_DIR/x<k>; write "
                                        "RUN_DIR/budget.json (resumable). See rl_i2it/budgets.py.")
    _comparison_options(budget, "where the reference, the longer runs and budget.json go")
    budget.add_argument("--multipliers", type=float, nargs="+", default=[2.0, 4.0],
                        help="the one-step network's budgets as multiples of the reference's (default: 2 4)")
    budget.add_argument("--base", default=None, help="an existing comparison's run directory with one_step and "
                                                     "aux_only (default: run one in RUN_DIR/base)")
    budget.add_argument("--out", default=None, help="also write the JSON to this file (e.g. figures/budgets/"
                                                    "<task>-<preset>.json, which the README and solutions render)")
    budget.add_argument("--quiet", action="store_true", help="no progress lines")
    _ray_options(budget, "every (method, seed) run", "each comparison")
    _settable(budget)
    _common(budget)

    quality = sub.add_parser("option-quality", help="does an execution option change what training reaches? two "
                                                    "compare run directories, the option off and on, paired")
    quality.add_argument("--option", required=True, choices=("memory_format", "compile", "amp"),
                         help="the config option the two comparisons differ in")
    quality.add_argument("off_dir", help="compare --run-dir with the option off (e.g. --amp off)")
    quality.add_argument("on_dir", help="compare --run-dir with the option on (e.g. --amp bf16)")
    quality.add_argument("--method", default="rl", help="the method compared (default: %(default)s)")
    quality.add_argument("--apart", action="store_true",
                         help="the two comparisons ran at different times: pair their scores, not their seconds")
    quality.add_argument("--out", default=None, help="also write the JSON to this file (atomically; "
                                                     "figures/compute/quality-*.json feed the README's table)")

    designs = sub.add_parser("designs", help="the plan-authority designs side by side: each design's rl against the "
                                             "reference aux_only and cascade, its plan-shuffle drop and the "
                                             "critic's rank correlation",
                             description="Run one comparison per design (rl and aux_only with the design's config "
                                         "fields) and a reference comparison, and write RUN_DIR/designs.json "
                                         "(resumable). See rl_i2it/designs.py for the designs and columns.")
    _comparison_options(designs, "where every design's comparison and designs.json go")
    designs.add_argument("--designs", nargs="+", default=None, help="a subset of the designs (default: all of "
                                                                    "rl_i2it.designs.DESIGNS)")
    designs.add_argument("--reference", default=None, help="an existing comparison's run directory at the same "
                                                           "preset, seeds and updates (default: run one in "
                                                           "RUN_DIR/reference)")
    designs.add_argument("--cascade-steps", type=int, default=None,
                         help="k of the reference cascade (default: the policy's T, at most 10)")
    designs.add_argument("--smooth-weights", type=float, nargs="+", default=None,
                         help="registration: the reference cascade's smoothness sweep (one value: no sweep)")
    designs.add_argument("--quiet", action="store_true", help="no progress lines")
    _settable(designs)
    _common(designs)

    stopping = sub.add_parser("stopping", help="registration policies off their training distribution (larger "
                                               "deformations, other digits), and what a perfect stop would gain "
                                               "(rl_i2it/stopping.py)")
    stopping.add_argument("--runs", nargs="+", required=True, metavar="LABEL=FOLDER",
                          help="each a compare/designs runs/<method> folder holding seed*/ run directories")
    stopping.add_argument("--conditions", nargs="+", default=None,
                          help="held-out pairs to evaluate on. brain2d/brain3d: scale=S, the deformation amplitude "
                               "times S (default: scale=1 scale=2); digits: test, same_class, sklearn (scikit-learn's "
                               "8x8 digits, drawn unlike MNIST) (default: all three)")
    stopping.add_argument("--steps", type=int, nargs="+", default=[10], help="rollout lengths (default: 10)")
    stopping.add_argument("--out", default=None, help="write the JSON here (atomically)")
    stopping.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    report = sub.add_parser("report", help="results text from comparison.json files (the README's block)")
    report.add_argument("comparisons", nargs="+",
                        help="comparison.json files (or their directories), designs.json files and stopping studies")
    report.add_argument("--readme", default=None, help="rewrite this README's generated block (default: print it)")
    report.add_argument("--figures", default=None, metavar="DIR",
                        help="also write the synthesis figures (plan authority over the designs.json files, one per "
                             "stopping study) with provenance sidecars into DIR, e.g. figures/synthesis")
    report.add_argument("--chapters", default=None, metavar="NOTEBOOKS",
                        help="rewrite the generated 'measured' bullet in the summary of each task chapter (10-15) "
                             "in this folder from the comparisons (the largest preset per task)")

    sweep = sub.add_parser("sweep", help="execute a grid of notebooks with papermill, sequentially or on Ray",
                           description="Run every unfinished job of a YAML sweep spec (keys: see rl_i2it/sweep.py) "
                                       "and write a summary table; finished jobs are skipped.")
    sweep.add_argument("spec", help="the sweep spec, a YAML file")
    _ray_options(sweep, "the jobs", "the sweep")
    sweep.add_argument("--dry-run", action="store_true", help="list the jobs, their run directories and "
                                                              "whether each is finished; run nothing")
    gpu = sub.add_parser("gpu-check", help="every task at smoke on CUDA: train, resume, eval, CPU load, bench, "
                                           "the contract tests; one JSON report (refuses without CUDA)")
    gpu.add_argument("--out", default="runs/gpu-check/report.json", help="the JSON report (default: %(default)s)")
    gpu.add_argument("--task", action="append", default=None, help="only this task (repeatable; default: all)")
    gpu.add_argument("--bench-seconds", type=float, default=2.0, help="time per benchmark measurement")
    gpu.add_argument("--no-tests", action="store_true", help="skip the contract tests on CUDA")
    return parser


def _summary(result) -> str:
    """One line: the score at the first state (identity) and after the protocol's steps."""
    return (f"{result.score_name} {result.score_identity:.3f} (identity) -> {result.score_final:.3f} after "
            f"{len(result.score_per_step) - 1} steps")


def _cmd_train(args) -> int:
    from .checkpoint import atomic_write_text
    from .config import make_config
    from .train import Trainer

    flags = {"total_env_steps": args.total_env_steps, "batch_size": args.batch_size, "num_envs": args.num_envs}
    # a flag left unset must not undo the same field given with --set
    cfg = make_config(args.task, args.preset, **{**_settings(args), "seed": args.seed,
                      **{k: v for k, v in flags.items() if v is not None}})
    run_dir = Path(args.run_dir or f"runs/{cfg.task}/{cfg.preset}-seed{cfg.seed}")
    trainer = Trainer(cfg, run_dir=run_dir, device=args.device, if_exists=args.if_exists)
    trainer.train(progress=not args.quiet)
    print(f"trained {cfg.task} [{cfg.preset}] to {trainer.env_steps} env steps in {trainer.wall_time:.1f} s")
    if not args.no_eval:
        result = trainer.evaluate()
        atomic_write_text(run_dir / "eval.json", json.dumps(result.to_json(), indent=2))
        print(f"eval: {_summary(result)}; written to {run_dir / 'eval.json'}")
    print(f"run directory: {run_dir}")
    return 0


def _cmd_eval(args) -> int:
    from .train import load_run

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1; got {args.steps}")
    trainer = load_run(args.run_dir, device=args.device)
    options = {}
    if args.pairs:
        if trainer.cfg.task != "digits":
            raise UserError(f"--pairs is for the digits task; {trainer.cfg.task!r} evaluates on its own held-out "
                            f"data (drop --pairs)")
        from .tasks.digits import load_pairs_file

        options = {"pairs": load_pairs_file(args.pairs), "pairs_file": args.pairs}
    result = trainer.evaluate(steps=args.steps, **options)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(json.dumps(result.protocol, indent=2))
    print(_summary(result))
    for name, table in result.tables.items():  # every metric (and sub-protocol) table: identity -> final
        if isinstance(table, dict) and "identity" in table and "final" in table:
            print(f"{name:>24}: {table['identity']:.4f} (identity) -> {table['final']:.4f}")
    return 0


def _cmd_bench(args) -> int:
    from .bench import run_benchmark
    from .speedups import ablate

    if args.ablate:
        report = ablate(args.task, args.preset, options=args.ablate, rounds=args.rounds, device=args.device,
                        **_settings(args))
    else:
        report = run_benchmark(args.task, args.preset, batch=args.batch, batch_size=args.batch_size,
                               device=args.device, seconds=args.seconds, replay_ratio=args.replay_ratio,
                               **_settings(args))
    if args.out:
        import datetime

        measured_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        _write_json(args.out, {**report, "measured_at": measured_at})
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in report.items():
            print(f"{name:>32}: {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def _cmd_option_quality(args) -> int:
    from .speedups import option_quality, option_quality_table

    check = option_quality(args.option, args.off_dir, args.on_dir, args.method, side_by_side=not args.apart)
    if args.out:
        _write_json(args.out, check)
    print(option_quality_table([check]))
    return 0


def _cmd_baseline(args) -> int:
    from .baselines import train_baseline
    from .config import make_config

    cfg = make_config(args.task, args.preset, **{**_settings(args), "seed": args.seed})
    text = json.dumps(train_baseline(cfg, seconds=args.seconds, device=args.device).to_json())
    if args.out:
        from .checkpoint import atomic_write_text

        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


def _comparison_options(parser, run_dir_help: str) -> None:
    """What ``compare`` and ``designs`` share: the task, preset, seeds, budget and run directory."""
    parser.add_argument("--task", default="digits", help=f"{TASK_HELP} (default: %(default)s)")
    parser.add_argument("--preset", default="auto", help="auto (smoke if RL_I2IT_SMOKE=1, else course), smoke, "
                                                         "course or paper (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--updates", type=int, default=None, help="learner updates per trained method (default: "
                                                                  "what the preset's RL run makes)")
    parser.add_argument("--run-dir", required=True, help=run_dir_help)


def _ray_options(parser, what: str, whom: str) -> None:
    parser.add_argument("--ray", action="store_true", help=f"run {what} as Ray tasks (a local Ray instance "
                                                           f"started for {whom} unless --ray-address)")
    parser.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (implies --ray)")
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--ray-gpus", type=float, default=None, help="GPUs of the local Ray instance (default: all)")


def _check_ray_cpus(args) -> None:
    if args.ray_cpus is not None and args.ray_cpus < 1:
        raise UserError(f"--ray-cpus must be >= 1; got {args.ray_cpus}")


def _cmd_compare(args) -> int:
    from .compare import comparison_table, run_comparison

    _check_ray_cpus(args)
    ray = ({"address": args.ray_address, "local_cpus": args.ray_cpus, "local_gpus": args.ray_gpus}
           if args.ray or args.ray_address else None)
    comparison = run_comparison(args.task, args.preset, seeds=args.seeds, updates=args.updates, run_dir=args.run_dir,
                                overrides=_settings(args), device=args.device, cascade_steps=args.cascade_steps,
                                smooth_weights=args.smooth_weights, methods=args.methods,
                                progress=not (args.quiet or args.json), sweep=args.sweep, ray=ray)
    if args.json:
        print(json.dumps(comparison))
    else:
        print(comparison_table(comparison))
        print(f"written to {Path(args.run_dir) / 'comparison.json'}")
    return 0


def _cmd_budget(args) -> int:
    from .budgets import budget_table, run_budget_study

    _check_ray_cpus(args)
    ray = ({"address": args.ray_address, "local_cpus": args.ray_cpus, "local_gpus": args.ray_gpus}
           if args.ray or args.ray_address else None)
    study = run_budget_study(args.task, args.preset, args.seeds, args.multipliers, args.run_dir, base=args.base,
                             updates=args.updates, overrides=_settings(args), device=args.device,
                             progress=not args.quiet, ray=ray)
    if args.out:
        _write_json(args.out, study)
    print(budget_table(study))
    print(f"written to {Path(args.run_dir) / 'budget.json'}")
    return 0


def _cmd_designs(args) -> int:
    from .designs import design_table, run_designs

    result = run_designs(args.task, args.preset, seeds=args.seeds, run_dir=args.run_dir, designs=args.designs,
                         reference_dir=args.reference, updates=args.updates, cascade_steps=args.cascade_steps,
                         smooth_weights=args.smooth_weights, device=args.device, progress=not args.quiet,
                         overrides=_settings(args))
    print(design_table(result["rows"], result["metric"]["name"]))
    from .viz import alpha_sigma_traces, save_figure

    figure = save_figure(alpha_sigma_traces(result["rows"]), Path(args.run_dir) / "alpha_sigma.png",
                         runs=[str(Path(args.run_dir) / r["design"]) for r in result["rows"]], seed=None,
                         seeds=result["seeds"])
    print(f"written to {Path(args.run_dir) / 'designs.json'} and {figure}")
    return 0


def _cmd_stopping(args) -> int:
    from .stopping import stopping_study, stopping_table

    runs = {}
    for item in args.runs:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise UserError(f"--runs takes LABEL=FOLDER; got {item!r}")
        runs[label] = folder
    result = stopping_study(runs, conditions=args.conditions, steps=args.steps, device=args.device)
    if args.out:
        _write_json(args.out, result)
    print(stopping_table(result))
    return 0


def _cmd_report(args) -> int:
    from .report import readme_block, update_chapters, update_readme, write_figures

    if args.figures:
        for path in write_figures(args.comparisons, args.figures):
            print(f"written {path} (and its sidecar {path.with_suffix('.json').name})")
    if args.chapters:
        changed = update_chapters(args.chapters, args.comparisons)
        print(f"chapters rewritten: {', '.join(changed)}" if changed else "chapters already up to date")
    if args.readme:
        changed = update_readme(args.readme, args.comparisons)
        print(f"{args.readme}: {'rewritten' if changed else 'already up to date'}")
    elif not (args.chapters or args.figures):
        print(readme_block(args.comparisons))
    return 0


def _cmd_sweep(args) -> int:
    from .sweep import expand_jobs, job_finished, load_spec, run_sweep

    spec = load_spec(args.spec)
    if args.dry_run:
        for job in expand_jobs(spec):
            state = "finished" if job_finished(job) else "to run"
            print(f"{job.name}: {job.notebook.name} -> {job.run_dir} ({state})")
        return 0
    _check_ray_cpus(args)
    frame = run_sweep(spec, use_ray=args.ray or bool(args.ray_address), ray_address=args.ray_address,
                      ray_cpus=args.ray_cpus, ray_gpus=args.ray_gpus)
    print(frame.drop(columns=["run_dir"]).to_string(index=False))
    return 0 if frame["status"].isin(["done", "skipped (finished)"]).all() else 1


def _cmd_gpu_check(args) -> int:
    from .gpu_check import require_cuda, run_gpu_check

    require_cuda()  # one line before anything heavy
    report = run_gpu_check(Path(args.out), tasks=args.task, bench_seconds=args.bench_seconds,
                           with_tests=not args.no_tests)
    print(f"gpu-check: {'passed' if report['passed'] else 'FAILED'}; report in {args.out}")
    return 0 if report["passed"] else 1


def _one_line_warnings() -> None:
    """Our own warnings (a torn log line dropped on resume) as one line each, like the errors."""
    import warnings

    from .rundir import TornLogWarning

    default = warnings.formatwarning
    if getattr(default, "one_line", False):  # main() called again in this process
        return

    def format_warning(message, category, filename, lineno, line=None):
        if issubclass(category, TornLogWarning):
            return f"rl_i2it: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    format_warning.one_line = True
    warnings.formatwarning = format_warning


def main(argv: list[str] | None = None) -> int:
    _one_line_warnings()
    try:
        args = build_parser().parse_args(argv)
        return {"train": _cmd_train, "eval": _cmd_eval, "bench": _cmd_bench, "baseline": _cmd_baseline,
                "sweep": _cmd_sweep, "gpu-check": _cmd_gpu_check, "compare": _cmd_compare,
                "designs": _cmd_designs, "report": _cmd_report, "stopping": _cmd_stopping,
                "option-quality": _cmd_option_quality, "budget": _cmd_budget}[
            args.command](args)
    except UserError as error:
        print(f"rl_i2it: error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:  # a path or disk failure no narrower handler named: still one line
        from .rundir import find_os_error, os_error_to_user_error

        cause = find_os_error(error)
        if cause is None:
            raise
        print(f"rl_i2it: error: {os_error_to_user_error(cause, cause.filename or 'a file', 'use')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rl_i2it: interrupted; the last checkpoint is intact (resume with --if-exists resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
