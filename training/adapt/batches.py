"""Mini-batches for adaptation loops: endless random batches over a few arrays, as tensors.

Adaptation mixes sources of very different sizes (thousands of source windows, five labelled target
windows), so loops count optimisation steps, not epochs, and draw each part's batch independently.
"""

from __future__ import annotations

import numpy as np
import torch


class BatchStream:
    """Endless mini-batches of ``x`` rows (and ``y`` when given): shuffled passes without replacement.

    A part smaller than ``size`` is returned whole every time (the labelled few).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None, size: int, rng: np.random.Generator) -> None:
        if len(x) == 0:
            raise ValueError("BatchStream over no windows")
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self.y = None if y is None else torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
        self.size = min(int(size), len(x))
        self.rng = rng
        self._order = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def next_index(self) -> torch.Tensor:
        if self.size == len(self.x):
            return torch.arange(len(self.x))
        if len(self._order) < self.size:
            self._order = np.concatenate([self._order, self.rng.permutation(len(self.x))])
        b, self._order = self._order[: self.size], self._order[self.size:]
        return torch.from_numpy(b)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = self.next_index()
        return self.x[b], (None if self.y is None else self.y[b])


def progress(step: int, steps: int) -> float:
    """Training progress p in [0, 1] (for DSAN's lambda schedule and the side-tuning curriculum)."""
    return step / max(1, steps - 1)


def embeddings(model: torch.nn.Module, x: np.ndarray, *, batch: int = 1024) -> torch.Tensor:
    """``model.embed`` of ``x[window, time, feature]`` in eval mode, without gradients."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            outs.append(model.embed(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))))
    return torch.cat(outs) if outs else torch.zeros(0, getattr(model, "embed_dim", 0))
