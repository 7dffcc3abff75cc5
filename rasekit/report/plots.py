"""The kit's figures. Each function takes finished data and returns a matplotlib Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from rasekit.data import SplitData


def sequence_lengths(datasets: dict[str, SplitData]):
    """Distribution of user sequence lengths (complementary CDF, log-log: the tail is what matters)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, data in datasets.items():
        lengths = np.sort([len(s) for s in data.sequences])
        share_longer = 1.0 - np.arange(len(lengths)) / len(lengths)
        ax.step(lengths, share_longer, where="post", label=f"{name} (median {int(np.median(lengths))})")
    ax.set(xscale="log", yscale="log", xlabel="interactions per user",
           ylabel="share of users with at least x", title="Sequence length")
    ax.axvline(50, color="grey", ls=":", lw=1)
    ax.text(52, 0.5, "cap 50", color="grey", fontsize=8)
    ax.legend(fontsize=8)
    return fig


def item_popularity(datasets: dict[str, SplitData]):
    """Interactions per item against popularity rank (log-log), and the share held by the top 20%."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, data in datasets.items():
        counts = np.sort(data.item_counts()[1:])[::-1]
        top = counts[: max(1, len(counts) // 5)].sum() / counts.sum()
        ax.plot(np.arange(1, len(counts) + 1), counts, label=f"{name} (top 20%: {top:.0%} of inter.)")
    ax.set(xscale="log", yscale="log", xlabel="item popularity rank", ylabel="interactions",
           title="Item popularity")
    ax.legend(fontsize=8)
    return fig
