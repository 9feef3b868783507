"""``assert_same``: recursive bit-for-bit equality of checkpoint-like structures (shared by the resume tests)."""
from __future__ import annotations

import torch


def assert_same(a, b, where: str = "", skip: frozenset[str] = frozenset()) -> None:
    """Tensors equal bit for bit (same dtype), dicts key by key (keys in ``skip`` ignored), sequences item by item,
    everything else by ``==``; the assertion names the path that differs."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) - skip == set(b) - skip, f"{where}: keys {sorted((set(a) ^ set(b)) - skip)}"
        for key in set(a) - skip:
            assert_same(a[key], b[key], f"{where}.{key}", skip)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]", skip)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
