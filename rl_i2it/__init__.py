"""rl_i2it: image-to-image translation as a sequence of small decisions (RL-I2IT), as a course package.

Public API::

    from rl_i2it import make_config, make_task, Trainer, load_run

    cfg = make_config("digits", preset="smoke")
    trainer = Trainer(cfg, run_dir="runs/digits/demo", if_exists="resume")
    trainer.train()
    print(trainer.evaluate()["dice_final"])
"""
__version__ = "0.1.0"

from .config import make_config, resolve_preset  # noqa: E402
from .errors import DataError, UserError  # noqa: E402

__all__ = ["make_config", "resolve_preset", "make_task", "Trainer", "load_run", "UserError", "DataError",
           "__version__"]


def __getattr__(name):  # lazy: importing the package stays cheap (no data, no networks)
    if name == "make_task":
        from .tasks import make_task

        return make_task
    if name in ("Trainer", "load_run"):
        from . import train

        return getattr(train, name)
    raise AttributeError(name)
