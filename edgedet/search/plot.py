"""``probs.png``: how the choice probabilities of every searchable layer evolved, one stacked-area panel per layer."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from edgedet.io import atomic_write_bytes
from edgedet.space.spaces import OP_NAMES


def plot_probs(history: list[np.ndarray], path: Path, *, title: str) -> Path:
    """``history``: one ``(L, 9)`` probability array per point in time (start, then after each epoch)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none opened
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    probs = np.stack(history)  # (T, L, 9)
    layers = probs.shape[1]
    cols = min(6, layers)
    rows = math.ceil(layers / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 1.9 * rows + 0.9), sharex=True, sharey=True,
                             squeeze=False)
    colours = plt.get_cmap("tab10").colors
    epochs = np.arange(len(probs))
    for index, ax in enumerate(axes.flat):
        if index >= layers:
            ax.axis("off")
            continue
        ax.stackplot(epochs, probs[:, index].T, colors=colours[:len(OP_NAMES)], linewidth=0)
        ax.set_title(f"layer {index}", fontsize=8)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if index >= layers - cols:
            ax.set_xlabel("epoch", fontsize=7)
    fig.legend(OP_NAMES, loc="lower center", ncol=len(OP_NAMES), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, png.getvalue())  # a Ctrl-C never leaves half a picture
