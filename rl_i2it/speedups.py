"""Which execution option pays on this machine: ``python -m rl_i2it bench --task T --ablate memory_format amp``.

For each option, two trainers of the same task, preset and seed, the option off in one and on in the other, timed in
**one process, interleaved round by round**: a busy neighbour slows both alike, so the ratio holds where absolute
rates on a shared machine do not (two runs of ``bench`` on these machines differ by up to 2x).

==================  =================================  ====================================================
option              off → on                           what changes
==================  =================================  ====================================================
``memory_format``   ``contiguous`` → ``channels_last``  the convolutions' tensors in NHWC (oneDNN's layout)
``compile``         ``False`` → ``True``                ``torch.compile`` of planner, actor, critics
``amp``             ``off`` → ``bf16``                  bfloat16 autocast of the learner's and actor's forwards
``threads``         1 → all                             torch's intra-op threads (one trainer, switched)
==================  =================================  ====================================================

Each option's entry: ``updates_per_s`` and ``collect_env_steps_per_s`` for off and on, their ratios (on / off), and
the first three updates' seconds (``warmup_seconds``: compilation lands there), and each arm's
``train_seconds_estimate`` of the preset's whole training run from its two rates (``bench``'s formula). An option
is worth its place in a preset only where both ratios are > 1 beyond the spread between rounds
(``update_ratio_range``).
"""
from __future__ import annotations

import json
import time

import torch

from .bench import machine_description, train_seconds_estimate
from .config import make_config
from .device import resolve_device
from .errors import UserError
from .train import Trainer

__all__ = ["OPTIONS", "ablate", "speedups_table", "option_quality", "option_quality_table"]

OPTIONS = {"memory_format": ("contiguous", "channels_last"), "compile": (False, True), "amp": ("off", "bf16"),
           "threads": (1, None)}


def _trainer(task: str, preset: str, overrides: dict, device: str) -> tuple[Trainer, float]:
    cfg = make_config(task, preset, **{**overrides, "bootstrap_env_steps": 0, "total_env_steps": 10**12,
                                       "log_every_env_steps": 10**12})
    trainer = Trainer(cfg, run_dir=None, device=device)
    while len(trainer.buffer) < cfg.batch_size:
        trainer.collect()
    started = time.perf_counter()
    for _ in range(3):  # compilation and oneDNN's first-call set-up land here
        trainer.update()
    return trainer, time.perf_counter() - started


def _time(calls: int, fn) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - started


def ablate(task: str = "digits", preset: str = "auto", options=("memory_format",), rounds: int = 6,
           updates_per_round: int = 4, collects_per_round: int = 4, device: str = "cpu", **overrides) -> dict:
    """``{"task", "preset", "rounds", "options": {option: entry}, "machine"}`` (see the module docstring)."""
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise UserError(f"unknown --ablate option(s) {unknown}; choose from {', '.join(OPTIONS)}")
    if rounds < 2:
        raise UserError(f"--rounds must be >= 2 (the spread between rounds is part of the answer); got {rounds}")
    resolved = resolve_device(device)
    preset_cfg = make_config(task, preset, **overrides)  # the run the training estimates are for
    all_threads = torch.get_num_threads()
    entries = {}
    for option in options:
        off, on = OPTIONS[option]
        if option == "threads":
            if all_threads < 2:
                raise UserError("--ablate threads compares 1 thread with all of torch's, and this process has 1; "
                                "run it with more (OMP_NUM_THREADS unset or > 1)")
            trainer, warmup = _trainer(task, preset, overrides, device)
            on = all_threads
            arms = {off: (trainer, warmup), on: (trainer, warmup)}
        else:
            arms = {value: _trainer(task, preset, {**overrides, option: value}, device) for value in (off, on)}
        update_seconds = {off: [], on: []}
        collect_seconds = {off: [], on: []}
        for _ in range(rounds):
            for value, (trainer, _) in arms.items():
                if option == "threads":
                    torch.set_num_threads(value)
                update_seconds[value].append(_time(updates_per_round, trainer.update))
                collect_seconds[value].append(_time(collects_per_round, trainer.collect))
        torch.set_num_threads(all_threads)
        envs = arms[off][0].cfg.num_envs
        per_round = [u_off / u_on for u_off, u_on in zip(update_seconds[off], update_seconds[on])]
        entry = {"off": off, "on": on,
                 "updates_per_s": {str(v): round(rounds * updates_per_round / sum(update_seconds[v]), 3)
                                   for v in (off, on)},
                 "collect_env_steps_per_s": {str(v): round(rounds * collects_per_round * envs / sum(collect_seconds[v]),
                                                           1) for v in (off, on)},
                 "update_ratio": round(sum(update_seconds[off]) / sum(update_seconds[on]), 3),
                 "update_ratio_range": [round(min(per_round), 3), round(max(per_round), 3)],
                 "collect_ratio": round(sum(collect_seconds[off]) / sum(collect_seconds[on]), 3),
                 "warmup_seconds": {str(v): round(arms[v][1], 2) for v in (off, on)}}
        entry["train_seconds_estimate"] = {
            str(v): round(train_seconds_estimate(preset_cfg, entry["collect_env_steps_per_s"][str(v)],
                                                 entry["updates_per_s"][str(v)]), 1) for v in (off, on)}
        if option == "compile":
            entry["compiled"] = bool(arms[on][0].compiled)
        entries[option] = entry
    cfg = arms[off][0].cfg
    return {"task": cfg.task, "preset": cfg.preset, "num_envs": cfg.num_envs, "batch_size": cfg.batch_size,
            "rounds": rounds, "updates_per_round": updates_per_round, "collects_per_round": collects_per_round,
            "options": entries, "machine": machine_description(resolved)}


def speedups_table(reports: list[dict]) -> str:
    """Markdown: one row per (task, option) of ``ablate`` reports: rates off → on, the ratios (with the spread of
    the per-round update ratios) and the preset's training time estimated from each arm."""
    rows = ["| task (preset) | option: off → on | updates/s | update ratio (rounds' range) | collect ratio | "
            "training estimate |", "|---|---|---|---|---|---|"]
    for report in reports:
        for option, e in report["options"].items():
            off, on = str(e["off"]), str(e["on"])
            low, high = e["update_ratio_range"]
            estimate = e.get("train_seconds_estimate", {})
            rows.append(f"| {report['task']} ({report['preset']}) | {option}: {off} → {on} | "
                        f"{e['updates_per_s'][off]:.2f} → {e['updates_per_s'][on]:.2f} | "
                        f"**{e['update_ratio']:.2f}×** ({low:.2f}-{high:.2f}) | {e['collect_ratio']:.2f}× | "
                        + (f"{estimate[off]:.0f} s → {estimate[on]:.0f} s |" if estimate else "— |"))
    return "\n".join(rows)


def option_quality(option: str, off_dir, on_dir, method: str = "rl", side_by_side: bool = True) -> dict:
    """Does an execution option change what training reaches? Two ``compare`` run directories of the same task,
    preset, seeds and budget, ``--set OPTION=<off>`` in ``off_dir`` and ``<on>`` in ``on_dir`` (their settings
    must say so, or the preset's value where a run left the option alone): each arm's final score, interval and
    training seconds per seed, and the paired difference on − off over (seeds, held-out items) with
    ``stats.paired``'s verdict. ``side_by_side=False``: the two arms ran at different times, so their seconds are
    kept but not compared (the table says so)."""
    from pathlib import Path

    from .compare import comparison_config, load_comparison
    from .stats import paired

    if option not in OPTIONS or option == "threads":
        raise UserError(f"option_quality: {option!r} is not a config option; use one of memory_format, compile, amp")
    arms = {}
    for side, folder, expected in zip(("off", "on"), (Path(off_dir), Path(on_dir)), OPTIONS[option]):
        comparison = load_comparison(folder)
        value = getattr(comparison_config(comparison), option)  # a run that left it alone has the preset's value
        if str(value) != str(expected):
            raise UserError(f"{folder}: its comparison ran with {option}={value!r}, not the {side} arm's "
                            f"{expected!r}; rerun compare with --set {option}=...")
        if method not in comparison["methods"]:
            raise UserError(f"{folder}: no {method!r} runs; rerun compare with --methods {method}")
        items = [json.loads((folder / "results" / f"{method}-seed{seed}.json").read_text())["items"]
                 for seed in comparison["seeds"]]
        arms[side] = (comparison, items)
    (off, off_items), (on, on_items) = arms["off"], arms["on"]
    same = ("task", "preset", "seeds", "budget")
    if any(off[k] != on[k] for k in same):
        raise UserError(f"the two comparisons differ in {[k for k in same if off[k] != on[k]]}; an option's quality "
                        f"check needs the same task, preset, seeds and budget")
    higher = off["metric"]["higher_is_better"]

    def summary(comparison):
        entry = comparison["methods"][method]
        return {"per_seed": entry["per_seed"], "final": entry["final"], "ci95": entry["ci95"],
                "train_seconds": entry["train_seconds"]}

    return {"kind": "option_quality", "task": off["task"], "preset": off["preset"], "option": option,
            "method": method, "seeds": off["seeds"], "budget": off["budget"], "metric": off["metric"],
            "off_value": OPTIONS[option][0], "on_value": OPTIONS[option][1],
            "off": summary(off), "on": summary(on), "on_minus_off": paired(on_items, off_items, higher),
            "side_by_side": bool(side_by_side), "sources": [str(off_dir), str(on_dir)]}


def option_quality_table(checks: list[dict]) -> str:
    """Markdown: one row per ``option_quality`` check."""
    rows = ["| task (preset) | option: off → on | score off [95% CI] | score on [95% CI] | on − off [95% CI] | "
            "training s (median) off → on |", "|---|---|---|---|---|---|"]
    for c in checks:
        d = c["on_minus_off"]
        verdict = "significant" if d["significant"] else "not significant"
        seconds = (f"{sorted(c['off']['train_seconds'])[len(c['seeds']) // 2]:.0f} → "
                   f"{sorted(c['on']['train_seconds'])[len(c['seeds']) // 2]:.0f}" if c.get("side_by_side", True)
                   else "— (the arms ran apart)")
        rows.append(
            f"| {c['task']} ({c['preset']}), {c['method']}, {len(c['seeds'])} seeds; {c['metric']['name']} "
            f"({'higher' if c['metric']['higher_is_better'] else 'lower'} is better) | {c['option']}: {c['off_value']} "
            f"→ {c['on_value']} | {c['off']['final']:.3f} [{c['off']['ci95'][0]:.3f}, {c['off']['ci95'][1]:.3f}] | "
            f"{c['on']['final']:.3f} [{c['on']['ci95'][0]:.3f}, {c['on']['ci95'][1]:.3f}] | {d['difference']:+.4f} "
            f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}], {verdict} | {seconds} |")
    return "\n".join(rows)
