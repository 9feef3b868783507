"""Video style transfer: the memories' reset rules, their gradients, determinism, data readers and bad input."""
import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_i2it.baselines import train_one_step_baseline
from rl_i2it.config import make_config
from rl_i2it.data.videos import (VIDEOS, load_frame_folder, load_sintel_scene, load_video, read_flo, read_video,
                                 smooth_flow, synthetic_clip, synthetic_next, write_flo)
from rl_i2it.envs.common import quantise
from rl_i2it.envs.video_style import MemoryCodec
from rl_i2it.errors import DataError, UserError
from rl_i2it.nn.functional import warp
from rl_i2it.policy import eval_mode
from rl_i2it.tasks import make_task
from rl_i2it.tasks.video_style import temporal_error
from rl_i2it.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, max_video_frames=12, planner_widths=(4, 8, 8), critic_widths=(4, 8, 8), memory_channels=4,
            plan_channels=1, num_envs=4, batch_size=4, total_env_steps=48, bootstrap_env_steps=12,
            buffer_capacity=64, clip_frames=2, frame_steps=2, eval_frames=3, eval_synthetic=2,
            eval_flow_iterations=5, log_every_env_steps=24, checkpoint_every_env_steps=48)


def tiny(**overrides):
    return make_config("video_style", "smoke", **{**TINY, **overrides})


def save_png(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)


# ------------------------------------------------------------------------------------------- memories
def test_memory_codec_is_exact_at_zero_and_within_half_a_step_elsewhere():
    codec = MemoryCodec(4, (4, 4), 16)
    assert codec.channels == 1  # 2 x 4 x 16 numbers fit one 16 x 16 plane
    step, frame = codec.decode(codec.zeros(3))
    assert torch.equal(step, torch.zeros(3, 4, 4, 4)) and torch.equal(frame, torch.zeros(3, 4, 4, 4))
    h, m = torch.rand(2, 4, 4, 4) * 2 - 1, torch.rand(2, 4, 4, 4) * 2 - 1
    unit = codec.to_unit(h, m)
    codes = unit.mul(255).round().to(torch.uint8)  # what the env's quantise makes of an action
    back_h, back_m = codec.decode(codes)
    assert (back_h - h).abs().max() <= 0.5 / 127 + 1e-6 and (back_m - m).abs().max() <= 0.5 / 127 + 1e-6
    float_h, float_m = codec.decode(unit)  # the learner decodes the float action: exact and differentiable
    assert torch.allclose(float_h, h, atol=1e-5) and torch.allclose(float_m, m, atol=1e-5)


def _memory_action(env, step_value: int, frame_value: int) -> torch.Tensor:
    """An action that keeps the image and proposes memories whose codes are the given constants."""
    codec = env.codec
    h = torch.full((env.num_envs, codec.memory_channels, *codec.grid), (step_value - 128) / 127)
    m = torch.full_like(h, (frame_value - 128) / 127)
    return torch.cat([env.current.float() / 255, codec.to_unit(h, m)], 1)


@pytest.mark.parametrize("frame_state", [True, False])
def test_step_memory_resets_per_frame_and_frame_memory_per_clip(frame_state):
    task = make_task(tiny(clip_frames=3, frame_steps=2, frame_state=frame_state), "cpu")
    env, codec = task.env, task.codec
    env.reset(seed=0)
    n = codec.numbers

    def codes():
        flat = env.memory.flatten(1)
        return flat[:, :n], flat[:, n:2 * n]

    first_clip = env.state["index"].clone()
    _, _, _, truncated, info = env.step(_memory_action(env, 200, 60))  # frame 0, step 1
    step, frame = codes()
    assert (step == 200).all() and (frame == 128).all()  # the step memory follows; the frame memory waits
    assert not info["frame_end"].any() and not truncated.any()
    assert torch.equal(info["index"], first_clip) and (info["position"] == 0).all()
    assert (info["next_position"] == 0).all()
    _, _, _, truncated, info = env.step(_memory_action(env, 210, 70))  # frame 0, step 2: the frame ends
    step, frame = codes()
    assert info["frame_end"].all() and not truncated.any()
    assert (info["position"] == 0).all() and (info["next_position"] == 1).all()  # final_obs is frame 1's
    assert (step == 128).all()  # new frame: the step memory is zero
    assert (frame == (70 if frame_state else 128)).all()  # the last step's proposal is committed (or not)
    assert (env.state["position"] == 1).all() and torch.equal(env.state["index"], first_clip)
    assert torch.equal(env.current, env.state["content"])  # each frame starts as its own content
    env.step(_memory_action(env, 220, 80))
    step, frame = codes()
    assert (step == 220).all() and (frame == (70 if frame_state else 128)).all()  # m is fixed inside a frame
    for value in (90, 100, 110):
        _, _, _, truncated, info = env.step(_memory_action(env, 230, value))
    assert truncated.all() and info["done"].all()  # 3 frames x 2 steps
    assert torch.equal(info["index"], first_clip) and (info["position"] == 2).all()
    assert (info["next_position"] == 2).all() and info["frame_end"].all()  # the clip's end: no next frame
    step, frame = codes()
    assert (step == 128).all() and (frame == 128).all()  # a new clip: both memories zero
    assert (env.state["position"] == 0).all() and (env.state["steps"] == 0).all()
    final_step = info["final_obs"][:, 6:].flatten(1)
    assert (final_step[:, :n] == 230).all()  # the final observation keeps the finished clip's memories


def test_both_recurrent_states_get_gradients_and_the_ablation_has_no_frame_gru():
    task = make_task(tiny(), "cpu")
    obs = task.env.reset(seed=1)
    dist, skips, (h, m) = task.planner(obs)
    assert h.shape == m.shape == (4, 4, *task.planner.plan_grid)
    action = task.actor(dist.rsample(), skips)
    assert action.shape == (4, 3 + task.codec.channels, 32, 32)
    out = task.aux_loss({"content": obs[:, :3]}, None, action, 0)
    loss, logs = out.loss, out.logs
    loss.backward()
    for module in (task.planner.step_gru, task.planner.frame_gru):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert set(logs) == {"aux_style_total", "aux_temporal"}
    ablation = make_task(tiny(frame_state=False), "cpu")
    assert ablation.planner.frame_gru is None
    assert ablation.parameter_counts()["planner"] < task.parameter_counts()["planner"]
    _, _, (_, m0) = ablation.planner(ablation.env.reset(seed=1))
    assert torch.equal(m0, torch.zeros_like(m0))


def test_planner_reads_memories_from_the_state_or_from_hidden():
    task = make_task(tiny(), "cpu")
    obs = task.env.reset(seed=2)
    h = torch.rand(4, 4, *task.planner.plan_grid) * 2 - 1
    m = torch.rand_like(h) * 2 - 1
    codes = task.codec.to_unit(h, m).mul(255).round().to(torch.uint8)
    with torch.no_grad():
        from_state = task.planner(torch.cat([obs[:, :6], codes], 1))[0].mean
        explicit = task.planner(obs, hidden=task.codec.decode(codes))[0].mean
        zero = task.planner(obs)[0].mean
    assert torch.allclose(from_state, explicit, atol=1e-6)
    assert not torch.allclose(from_state, zero)  # the memories change the plan


def test_config_checks_fail_before_any_data_loads(monkeypatch):
    import rl_i2it.data.videos as videos

    monkeypatch.setattr(videos, "load_video", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(UserError, match="clip_frames must be >= 2"):
        tiny(clip_frames=1)
    with pytest.raises(UserError, match="frame_steps >= 1; got 2 and 0"):
        tiny(frame_steps=0)
    with pytest.raises(UserError, match="image size 30 must be divisible by 4"):
        tiny(image_size=30)


def test_transitions_rebuild_from_info_alone():
    """``pack`` reads the clip and frame references from ``info``; ``unpack`` rebuilds both observations exactly,
    across a frame change, the clip's end and the auto-reset that follows it."""
    task = make_task(tiny(clip_frames=2, frame_steps=2), "cpu")
    env = task.env
    obs = env.reset(seed=3)
    for t in range(5):  # 2 frames x 2 steps, then the first step of new clips
        plan = torch.zeros(env.num_envs, task.planner.plan_dim)
        action = torch.cat([torch.rand(env.num_envs, 3, 32, 32), env.memory.float() / 255], 1)
        next_obs, reward, terminated, truncated, info = env.step(action)
        stored = task.pack(obs, plan, reward, terminated, info["final_obs"], info)
        batch = task.unpack({k: stored[k].to(dtype) for k, (_, dtype) in task.transition_spec().items()})
        assert torch.equal(batch["obs"], obs) and torch.equal(batch["next_obs"], info["final_obs"]), t
        assert truncated.all() == (t == 3)
        obs = next_obs


def test_absolute_reward_is_the_scaled_score():
    task = make_task(tiny(reward_mode="absolute", reward_scale=2.0), "cpu")
    env = task.env
    env.reset(seed=0)
    for _ in range(env.max_steps):  # the clip ends by truncation: no termination, no done bonus
        _, reward, terminated, _, info = env.step(_memory_action(env, 128, 128))
        assert torch.equal(reward, 2.0 * info["score"]) and not terminated.any()


def test_zeroed_frame_memory_rollout_is_the_env_memory_zeroed_per_frame():
    """``ZeroFrameMemory`` gives the frames of a rollout whose env memory is zeroed at every frame's start."""
    task = make_task(tiny(clip_frames=3, eval_frames=3), "cpu")
    clips = task.evaluation_clips()["synthetic"]
    policy = task.policy()
    env = task.make_env(None, len(clips), auto_reset=False, clip_frames=3)
    obs, expected = env.start_episodes({"clips": clips}), []
    with torch.no_grad(), eval_mode(*policy.modules):
        for _ in range(3):
            frame = [env.current.clone()]
            env.state["memory"] = task.codec.zeros(len(clips))
            obs = env.observation()
            for _ in range(env.frame_steps):
                action, _ = policy.act(obs)
                obs, *_ = env.step(action)
                frame.append(quantise(action[:, :3]))
            expected.append(torch.stack(frame))
    assert torch.equal(task.stylise(policy, clips, zero_frame_memory=True), torch.stack(expected))


# ------------------------------------------------------------------------------------------- training
def test_training_is_deterministic_resumes_exactly_and_evaluates(tmp_path):
    """Batch 4: a run trained straight and one stopped half-way and resumed from its checkpoint end identical."""
    cfg = tiny(total_env_steps=32, checkpoint_every_env_steps=16, log_every_env_steps=16)
    straight = Trainer(cfg, run_dir=tmp_path / "a", device="cpu")
    rows = straight.train()
    half = Trainer(cfg, run_dir=tmp_path / "b", device="cpu")
    half.train(until_env_steps=16)
    resumed = Trainer(cfg, run_dir=tmp_path / "b", device="cpu", if_exists="resume")
    assert resumed.env_steps == 16
    resumed_rows = resumed.train()
    assert straight.updates > 0
    for a, b in zip(list(straight.planner.parameters()) + list(straight.critic.parameters()),
                    list(resumed.planner.parameters()) + list(resumed.critic.parameters())):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in r.items() if k not in ("wall_time_s", "env_steps_per_s")} for r in rows]
    assert strip[-1] == {k: v for k, v in resumed_rows[-1].items() if k not in ("wall_time_s", "env_steps_per_s")}
    results = straight.evaluate()
    steps = cfg.frame_steps + 1
    tables = results.tables
    assert len(tables["temporal_error_real"]["per_step"]) == steps == len(results.score_per_step)
    assert results.score_per_step == tables["total_loss"]["per_step"] and not results.higher_is_better
    assert tables["content_loss"]["per_step"][0] == 0.0  # step 0 is the content frame itself
    assert results.details["n_real"] == len(VIDEOS) and results.details["n_synthetic"] == 2
    assert set(results.metrics) <= set(tables) and "reset_memory_temporal_error_synthetic" in tables
    json.dumps(results.to_json())
    frames = results.artifacts["_rollout"]["real"]
    assert frames.shape == (3, steps, 3, 3, 32, 32) and frames.dtype == torch.uint8
    again = straight.evaluate()
    assert again.tables["temporal_error_real"] == tables["temporal_error_real"]  # deterministic


def test_per_frame_baseline_trains_and_reports():
    results = train_one_step_baseline(tiny(), seconds=60.0, device="cpu", max_iterations=3)
    baseline = results.details["baseline"]
    assert baseline["iterations"] == 3 and baseline["parameters"] > 0
    assert "Johnson" in baseline["kind"] and results.protocol["steps"] == 1
    assert len(results.tables["temporal_error_synthetic"]["per_step"]) == 2
    assert "reset_memory_temporal_error_real" not in results.tables  # no memory to switch off
    assert set(results.artifacts["_networks"]) == {"net"}


# ------------------------------------------------------------------------------------------- data
def test_shipped_videos_decode_resized_and_cached():
    video = load_video("carphone_pristine", 32, max_frames=10)
    assert video.shape == (10, 3, 32, 32) and video.dtype == torch.uint8
    again = load_video("carphone_pristine", 32, max_frames=10)
    assert torch.equal(video, again) and again.data_ptr() != video.data_ptr()  # copies of the cached decode
    strided = load_video("carphone_pristine", 32, max_frames=5, stride=2)
    assert torch.equal(strided, video[::2])
    assert video.float().std() > 10  # real pictures, not a blank decode


def test_unreadable_videos_give_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="cannot decode video"):
        read_video(garbage)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError, match="cannot decode video|no frames"):
        read_video(tmp_path / "empty.mp4")
    with pytest.raises(UserError, match="does not exist.*bigbuckbunny"):
        load_video("no_such_clip")  # neither a shipped name nor a file: a missing path
    with pytest.raises(UserError, match="holds no image files"):
        load_frame_folder(tmp_path)
    task = make_task(tiny(), "cpu")
    with pytest.raises(UserError, match="clips must be uint8"):
        task.env.start_episodes({"clips": torch.zeros(2, 5, 3, 32, 32, dtype=torch.uint8)})


def test_flo_files_round_trip_and_reject_garbage(tmp_path):
    flow = torch.randn(2, 5, 7)
    write_flo(tmp_path / "a.flo", flow)
    assert torch.equal(read_flo(tmp_path / "a.flo"), flow)
    raw = (tmp_path / "a.flo").read_bytes()
    assert np.frombuffer(raw[12:20], "<f4").tolist() == [flow[1, 0, 0].item(), flow[0, 0, 0].item()]  # u, v
    (tmp_path / "bad.flo").write_bytes(b"PNG....")
    with pytest.raises(UserError, match="not a .flo"):
        read_flo(tmp_path / "bad.flo")
    (tmp_path / "short.flo").write_bytes(raw[:-4])
    with pytest.raises(UserError, match="truncated"):
        read_flo(tmp_path / "short.flo")


def _fake_sintel(root: Path, scene="alley_9", frames=3, height=20, width=30):
    rng = np.random.default_rng(0)
    for kind in ("final", "clean"):
        folder = root / "training" / kind / scene
        folder.mkdir(parents=True)
        for i in range(frames):
            save_png(folder / f"frame_{i + 1:04d}.png", rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    (root / "training" / "flow" / scene).mkdir(parents=True)
    (root / "training" / "occlusions" / scene).mkdir(parents=True)
    for i in range(frames - 1):
        flow = torch.zeros(2, height, width)
        flow[1] = 3.0  # three pixels to the right
        write_flo(root / "training" / "flow" / scene / f"frame_{i + 1:04d}.flo", flow)
        mask = np.zeros((height, width), np.uint8)
        mask[-4:] = 255  # the bottom four rows (inside the centre square crop)
        save_png(root / "training" / "occlusions" / scene / f"frame_{i + 1:04d}.png", mask)


def test_sintel_scene_loader_on_generated_files(tmp_path):
    _fake_sintel(tmp_path)
    scene = load_sintel_scene(tmp_path, "alley_9", size=10)
    assert scene["frames"].shape == (3, 3, 10, 10) and scene["flow"].shape == (2, 2, 10, 10)
    assert torch.allclose(scene["flow"][:, 1], torch.full((2, 10, 10), 3.0 * 10 / 20))  # scaled with the frame
    assert scene["occluded"].shape == (2, 1, 10, 10) and scene["occluded"][..., -2:, :].all()
    assert not scene["occluded"][..., :7, :].any()
    with pytest.raises(UserError, match="does not exist"):
        load_sintel_scene(tmp_path, "no_scene")


def _fetch_module():
    spec = importlib.util.spec_from_file_location("fetch_sintel", ROOT / "data_scripts" / "fetch_sintel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fetch_sintel_checks_and_extracts_a_local_archive(tmp_path):
    fetch = _fetch_module()
    source = tmp_path / "src"
    _fake_sintel(source)
    archive = tmp_path / "MPI-Sintel-complete.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(source).as_posix())
        zipped.writestr("bundler/readme.txt", "not extracted")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "cache"
    with pytest.raises(UserError, match="cannot check"):  # no digest given or recorded: refuse
        fetch.fetch_sintel(dest, from_file=archive)
    assert not (dest / "training").exists()
    with pytest.raises(DataError, match="corrupt"):
        fetch.fetch_sintel(dest, from_file=archive, sha256="0" * 64)
    assert not (dest / "training").exists()
    fetch.fetch_sintel(dest, from_file=archive, sha256=digest)
    scene = load_sintel_scene(dest, "alley_9", size=10)
    assert scene["frames"].shape == (3, 3, 10, 10) and not (dest / "bundler").exists()
    other = tmp_path / "cache2"
    fetch.fetch_sintel(other, from_file=archive, record_sha256=True)  # trust on first use, then checked
    assert (other / "MPI-Sintel-complete.zip.sha256").read_text().startswith(digest)
    assert fetch.main(["--dest", str(other), "--sha256", "1" * 64]) == 2


# ------------------------------------------------------------------------------------------- synthetic flow
def test_synthetic_next_frame_is_the_warp_and_the_temporal_error_sees_it():
    frames = load_video("bikes", 32, max_frames=4)
    generator = torch.Generator().manual_seed(0)
    following, flow, valid = synthetic_next(frames, generator, magnitude=0.03, noise=0.0)
    expected = warp(frames.float(), flow, padding_mode="border").round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(following, expected)
    assert flow.abs().mean() > 0.3 and valid.float().mean() > 0.5
    assert temporal_error(frames, following, flow, valid).max() < 1.0 / 255  # an identity "stylisation"
    assert temporal_error(frames, frames, flow, valid).mean() > 3.0 / 255  # ignoring the motion is an error
    clip, flows = synthetic_clip(frames[:2], 3, generator)
    assert clip.shape == (2, 3, 3, 32, 32) and flows.shape == (2, 2, 2, 32, 32)
    smooth = smooth_flow(2, 32, generator)
    assert (smooth[..., 1:, :] - smooth[..., :-1, :]).abs().max() < 1.0  # smooth: under a pixel per pixel
