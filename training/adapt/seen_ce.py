"""Cross-entropy on labelled target windows that only covers the classes the site labelled.

A site's labelled windows often show a subset of the classes (an ESP32-S2 sequence shows 6 of 10).
Plain CE on them pushes every other class's logit down on target-like windows, and the model stops
predicting the classes nobody labelled there. Restricting the softmax to the labelled classes teaches
the distinctions among them and leaves the others to the source knowledge -- the same rule the
gateway's numpy head follows (``edgecsi.edge.calibration.blend`` with ``seen``).
"""

from __future__ import annotations

import torch
from torch import nn


def seen_mask(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """bool[n_classes]: classes present in ``y``."""
    return torch.bincount(y, minlength=n_classes) > 0


def seen_class_cross_entropy(logits: torch.Tensor, y: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """CE of ``logits[batch, class]`` over the ``seen`` classes only (plain CE when all are seen)."""
    if bool(seen.all()):
        return nn.functional.cross_entropy(logits, y)
    masked = logits.masked_fill(~seen, float("-inf"))
    return nn.functional.cross_entropy(masked, y)
