"""Run-directory figures: confusion matrix and learning curve (matplotlib, Agg backend, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray | list, labels: list[str], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true rows, predicted columns) with the counts written in."""
    plt = _pyplot()
    cm = np.asarray(cm)
    n = len(labels)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_learning_curve(history: dict, path: Path, best_epoch: int | None = None, metric_name: str = "") -> Path:
    """Training and validation loss per epoch (left), validation metric (right)."""
    plt = _pyplot()
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, history["train_loss"], label="train")
    if history.get("val_loss"):
        a.plot(epochs, history["val_loss"], label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    if history.get("val_metric"):
        b.plot(epochs, history["val_metric"], color="C2")
        b.set_ylabel(f"validation {metric_name}")
    b.set_xlabel("epoch")
    for ax in (a, b):
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
