"""The registration tasks' shared half (digits, brain MRI): state [fixed, moved], action a flow field.

Auxiliary loss: ``-NCC(fixed, moved ∘ step flow) + smooth_weight * smoothness(step flow)``, through the
same ``warp`` the env applies. The buffer stores the fixed image once per transition (it does not change
within an episode) and the moved image before and after the step, all uint8. Each task adds its data, its
config and its pinned ``evaluate``.
"""
from __future__ import annotations

import torch

from ..actor import Actor
from ..critic import TwinCritic, make_target
from ..envs.registration import PairSampler, RegistrationEnv
from ..nn.functional import ncc, smoothness_loss, warp
from ..errors import UserError
from ..planner import ChannelSlice, Planner, as_float_image
from .base import AuxOut, Task, skip_condition

__all__ = ["RegistrationTask", "check_registration"]


def check_registration(cfg) -> None:
    """The checks every registration config shares (its ``validate`` calls them): a one-line ``UserError``."""
    checks = [
        (cfg.max_step > 0, f"max_step (the largest displacement per step, pixels) must be > 0; got {cfg.max_step}"),
        (cfg.max_episode_steps >= 1, f"max_episode_steps (the episode length) must be >= 1; got "
                                     f"{cfg.max_episode_steps}"),
        (cfg.ncc_window >= 1 and cfg.ncc_window % 2 == 1, f"ncc_window must be an odd number >= 1; got "
                                                          f"{cfg.ncc_window}"),
        (cfg.eval_pairs >= 1, f"eval_pairs must be >= 1; got {cfg.eval_pairs}"),
        (cfg.eval_steps >= 1, f"eval_steps must be >= 1; got {cfg.eval_steps}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


class RegistrationTask(Task):
    """Builds the env and networks of a registration config (fields as ``DigitsConfig``)."""

    log_names = ("aux_ncc", "aux_smooth")  # what metrics.jsonl averages per row

    def __init__(self, cfg, device: torch.device, train_sampler: PairSampler):
        self.cfg, self.device = cfg, device
        self.image_shape = tuple(train_sampler.image_shape)
        self.env = self.make_env(train_sampler, cfg.num_envs, auto_reset=True, seed=cfg.seed)
        self.planner = Planner(2, self.image_shape, cfg.planner_widths, cfg.plan_channels,
                               condition=skip_condition(cfg, ChannelSlice(0, 1))).to(device)  # the fixed image
        self.actor = Actor(self.planner, out_channels=len(self.image_shape), head="flow",
                           max_step=cfg.max_step, use_skips=cfg.actor_skips, gate=cfg.plan_gate).to(device)
        self.critic = TwinCritic(self.planner, cfg.critic_widths).to(device)
        self.critic_target = make_target(self.critic)

    def make_env(self, sampler, num_envs: int, auto_reset: bool, seed: int = 0) -> RegistrationEnv:
        cfg = self.cfg
        return RegistrationEnv(sampler, num_envs, cfg.max_episode_steps, reward_mode=cfg.reward_mode,
                               reward_scale=cfg.reward_scale, done_bonus=cfg.done_bonus,
                               dice_threshold=cfg.dice_threshold, auto_reset=auto_reset, device=self.device,
                               seed=seed)

    # ------------------------------------------------------------------ replay
    def transition_spec(self):
        image = ((1, *self.image_shape), torch.uint8)
        return {"fixed": image, "moved": image, "next_moved": image,
                "plan": ((self.planner.plan_dim,), torch.float32),
                "reward": ((), torch.float32), "terminated": ((), torch.bool)}

    def pack(self, obs, plan, reward, terminated, next_obs, info):
        # the observations carry the whole episode (fixed and moved), so nothing comes from info
        return {"fixed": obs[:, :1], "moved": obs[:, 1:], "next_moved": next_obs[:, 1:], "plan": plan,
                "reward": reward, "terminated": terminated}

    def unpack(self, stored):
        return {"obs": torch.cat([stored["fixed"], stored["moved"]], 1),
                "next_obs": torch.cat([stored["fixed"], stored["next_moved"]], 1),
                "plan": stored["plan"], "reward": stored["reward"], "terminated": stored["terminated"]}

    # ------------------------------------------------------------------ learning
    def aux_loss(self, batch, plan, action, updates: int) -> AuxOut:
        """The same at every update (``updates`` is unused: registration has no adversarial phase)."""
        obs = as_float_image(batch["obs"])  # uint8 from the buffer, float in [0, 1] inside a cascade
        fixed, moved = obs[:, :1], obs[:, 1:]
        similarity = ncc(fixed, warp(moved, action), window=self.cfg.ncc_window).mean()
        smooth = smoothness_loss(action)
        loss = -similarity + self.cfg.smooth_weight * smooth
        return AuxOut(loss, {"aux_ncc": similarity.detach(), "aux_smooth": smooth.detach()})

    # ------------------------------------------------------------------ the cascade control
    def cascade_next(self, batch, action):
        """The moved image warped by this application's field (as RCN: each cascade warps the last result)."""
        obs = as_float_image(batch["obs"])
        return {**batch, "obs": torch.cat([obs[:, :1], warp(obs[:, 1:], action)], 1)}

    def cascade_regulariser(self, batch, action):
        return self.cfg.smooth_weight * smoothness_loss(action)
