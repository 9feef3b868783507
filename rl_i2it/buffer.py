"""A replay buffer of preallocated tensors on the training device.

The task says what a transition holds (``Task.transition_spec``: name -> (shape, dtype)); images are
stored as uint8, plans as float32, and data that never changes within an episode (the fixed image of a
registration pair) is stored once rather than in both s and s'. Insertion and sampling are index
operations on the device: no host copies, no Python objects per transition.
"""
from __future__ import annotations

import torch

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """A ring buffer of ``capacity`` transitions.

    =========================  ===============================================================
    call                       effect
    =========================  ===============================================================
    ``add(batch)``             ``batch[name]`` of shape ``(B, *spec[name].shape)``, B rows in
    ``sample(n, generator)``   a dict of ``(n, *shape)`` tensors, uniform with replacement
    ``len(buffer)``            stored transitions (<= capacity)
    ``bytes_per_transition``   storage of one transition, in bytes
    =========================  ===============================================================
    """

    def __init__(self, capacity: int, spec: dict[str, tuple[tuple[int, ...], torch.dtype]],
                 device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1; got {capacity}")
        self.capacity, self.spec, self.device = int(capacity), dict(spec), torch.device(device)
        self.storage = {name: torch.zeros((self.capacity, *shape), dtype=dtype, device=self.device)
                        for name, (shape, dtype) in self.spec.items()}
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def bytes_per_transition(self) -> int:
        return sum(t[0].numel() * t.element_size() for t in self.storage.values())

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        if set(batch) != set(self.spec):
            raise KeyError(f"transition keys {sorted(batch)} differ from the buffer's {sorted(self.spec)}")
        rows = next(iter(batch.values())).shape[0]
        if rows > self.capacity:
            raise ValueError(f"cannot add {rows} transitions to a buffer of capacity {self.capacity}")
        index = (self.position + torch.arange(rows, device=self.device)) % self.capacity
        for name, value in batch.items():
            self.storage[name].index_copy_(0, index, value.to(self.storage[name].dtype))
        self.position = (self.position + rows) % self.capacity
        self.size = min(self.size + rows, self.capacity)

    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        index = torch.randint(0, self.size, (n,), device=self.device, generator=generator)
        return {name: t[index] for name, t in self.storage.items()}

    def state_dict(self) -> dict:
        """The filled part only, so an early checkpoint stays small."""
        return {"position": self.position, "size": self.size,
                "storage": {name: t[: self.size].clone() for name, t in self.storage.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.position, self.size = int(state["position"]), int(state["size"])
        for name, value in state["storage"].items():
            self.storage[name][: self.size] = value.to(self.device)
