"""How the networks execute, not what they compute: their tensors' memory layout and compilation.

=======================================================  ===========================================================
function                                                 what
=======================================================  ===========================================================
``apply_memory_format(module, memory_format)``           in place: 4-D weights to NHWC (``torch.channels_last``),
                                                         5-D to NDHWC (``channels_last_3d``); ``"contiguous"``
                                                         leaves the module as built
``task_modules(task)``                                   every ``nn.Module`` a task holds (its networks, a frozen
                                                         VGG, a style objective), each once
``compile_modules(modules)``                             ``torch.compile`` in place (static shapes); without a C
                                                         compiler a warning and the modules stay eager
``autocast(amp, device)``                                the forward passes' context for ``amp`` (``"off"``/``"bf16"``)
``cpu_has_native_bf16()``                                AVX512-BF16 or AMX on this CPU: where ``--amp bf16`` pays;
                                                         bf16 elsewhere on a CPU warns once (emulated, likely slower)
=======================================================  ===========================================================

Why channels_last: oneDNN's CPU convolutions work in NHWC; with NCHW weights every convolution, forward and backward,
reorders its tensors first (``aten::copy_`` was 13% of a digits update in the profiler). Measured with ``python -m
rl_i2it bench --ablate memory_format`` (both layouts in one process, interleaved): the figures are in the chapters'
compute notes and ``figures/compute/ablate-*.json``. The results differ from the contiguous layout only by the order
floating-point sums are taken in.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import warnings

import torch
from torch import nn

from ..config import MEMORY_FORMATS

__all__ = ["MEMORY_FORMATS", "apply_memory_format", "autocast", "cpu_has_native_bf16", "task_modules",
           "compile_modules", "c_compiler"]

_BY_RANK = {4: torch.channels_last, 5: torch.channels_last_3d}


def apply_memory_format(module: nn.Module, memory_format: str) -> nn.Module:
    """``module`` with its 4-D and 5-D parameters and buffers in ``memory_format``'s layout (in place; returned)."""
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"unknown memory_format {memory_format!r}; use one of {MEMORY_FORMATS}")
    if memory_format == "contiguous":
        return module
    with torch.no_grad():
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.dim() in _BY_RANK:
                tensor.data = tensor.data.contiguous(memory_format=_BY_RANK[tensor.dim()])
    return module


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles: oneDNN's fast bf16 kernels).
    Without either, bf16 autocast on the CPU is emulated and usually slower than float32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast(amp: str, device: torch.device):
    """The forward passes' context for the config field ``amp``: bfloat16 autocast for ``"bf16"``; for ``"off"``
    a null context, not a disabled autocast (which changes which CPU kernels run). Every trainer uses it, the RL
    learner and the baselines alike, so ``--amp bf16`` changes every method of a comparison, not only ``rl``."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp != "bf16":
        raise ValueError(f"unknown amp {amp!r}; use 'off' or 'bf16'")
    if device.type == "cpu" and not cpu_has_native_bf16():
        _warn_emulated_bf16()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@functools.cache
def _warn_emulated_bf16() -> None:
    warnings.warn("amp='bf16' on a CPU without native bfloat16 (neither AVX512-BF16 nor AMX): the kernels are "
                  "emulated and likely slower than float32; measure with `python -m rl_i2it bench --ablate amp` or "
                  "use --amp off", stacklevel=3)


def task_modules(task) -> list[nn.Module]:
    """Every ``nn.Module`` among a task's attributes and networks, each once (a module inside another is reached
    through it)."""
    found: dict[int, nn.Module] = {}
    for value in itertools.chain(vars(task).values(), task.networks().values()):
        if isinstance(value, nn.Module):
            found.setdefault(id(value), value)
    return list(found.values())


def c_compiler() -> str | None:
    """The C compiler torch.compile's CPU backend would call (``$CC``, else cc, gcc or clang), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compile_modules(modules, device: torch.device) -> bool:
    """``torch.compile`` each module in place (``dynamic=False``: the acting and learning batches get a graph
    each). Returns whether it did: on a CPU without a C compiler it warns, names the fix, and leaves them eager."""
    if device.type == "cpu" and c_compiler() is None:
        warnings.warn("compile=True needs a C compiler for torch.compile on the CPU and none was found ($CC, cc, gcc, "
                      "clang); training goes on without compiling. Install one (apt-get install gcc) or set "
                      "compile=False.", RuntimeWarning, stacklevel=2)
        return False
    for module in modules:
        module.compile(dynamic=False)
    return True
