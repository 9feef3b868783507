"""Small committed checkpoints (course preset) so a student can evaluate without training.

``python -m rl_i2it.pretrained export --run-dir DIR --name digits_course`` slims a finished run to its
config and policy networks (planner, actor, critic) with a provenance sidecar; ``load_pretrained``
rebuilds them. Files live in ``rl_i2it/checkpoints/`` and ship with the package.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from .config import from_yaml
from .device import resolve_device
from .errors import UserError
from .evaluate import EvalResult
from .policy import PlannerPolicy
from .tasks import Task, make_task

__all__ = ["Pretrained", "load_pretrained", "available", "export_run", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


@dataclass
class Pretrained:
    """A committed policy: its task (config, env, data), planner and actor (eval mode), and provenance."""

    task: Task
    planner: torch.nn.Module
    actor: torch.nn.Module
    provenance: dict

    def policy(self) -> PlannerPolicy:
        """The committed planner + actor as a ``Policy`` (plan mean)."""
        return self.task.policy()

    def evaluate(self, **options) -> EvalResult:
        """The task's pinned protocol of the committed policy (``options`` as the task's ``evaluate``)."""
        return self.task.evaluate(self.policy(), **options)


def available() -> list[str]:
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.pt"))


def load_pretrained(name: str = "digits_course", device: str = "auto") -> Pretrained:
    path = CHECKPOINT_DIR / f"{name}.pt"
    if not path.exists():
        raise UserError(f"no committed checkpoint {name!r}; available: {', '.join(available()) or 'none'}")
    device = resolve_device(device)
    state = load_checkpoint(path, map_location=device)
    cfg = from_yaml(state["config"])
    task = make_task(cfg, device)
    task.planner.load_state_dict(state["networks"]["planner"])
    task.actor.load_state_dict(state["networks"]["actor"])
    task.critic.load_state_dict(state["networks"]["critic"])
    provenance_path = path.with_suffix(".json")
    provenance = json.loads(provenance_path.read_text()) if provenance_path.exists() else {}
    return Pretrained(task, task.planner.eval(), task.actor.eval(), provenance)


def export_run(run_dir: Path, name: str, note: str = "") -> Path:
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    slim = {"config": state["config"],
            "networks": {k: state["networks"][k] for k in ("planner", "actor", "critic")},
            "counters": state["counters"]}
    path = CHECKPOINT_DIR / f"{name}.pt"
    save_checkpoint(path, slim)
    eval_path = run_dir / "eval.json"
    provenance = {
        "name": name, "source_run": str(run_dir), "config": from_yaml(state["config"]).__dict__,
        "env_steps": state["counters"]["env_steps"], "updates": state["counters"]["updates"],
        "train_wall_time_s": round(state["counters"]["wall_time"], 1), "versions": state["versions"],
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"), "note": note,
        "eval": {k: v for k, v in json.loads(eval_path.read_text()).items()
                 if not k.endswith("per_step") and k not in ("tables", "timing")} if eval_path.exists() else None,
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(provenance, indent=2, default=str))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_i2it.pretrained")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export")
    export.add_argument("--run-dir", required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--note", default="")
    args = parser.parse_args(argv)
    print(export_run(Path(args.run_dir), args.name, args.note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
