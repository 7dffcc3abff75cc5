"""Statistics over seeds and users: mean and spread over seeds, a model against another with a paired
test over users, and the empty table or figure a notebook shows when every run was left out."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.evaluate import per_user


PAPER_METRICS = ("HR@5", "HR@10", "NDCG@5", "NDCG@10")


def paired_permutation_test(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the mean paired difference b - a under random sign flips (no distributional
    assumption; users are the pairs)."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diff.shape[0] == 0:
        raise ValueError("paired test needs at least one pair")
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    extreme = 0
    for lo in range(0, n_resamples, 1000):  # chunks bound the memory to 1000 x n
        signs = rng.choice([-1.0, 1.0], size=(min(1000, n_resamples - lo), diff.shape[0]))
        extreme += int((np.abs(signs @ diff) / diff.shape[0] >= observed - 1e-15).sum())
    return (extreme + 1) / (n_resamples + 1)


def spread(values: np.ndarray) -> float:
    """Standard deviation over seeds (ddof 1; 0 for a single seed)."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def seed_summary(records: list[dict], metrics=PAPER_METRICS) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; 0 for a single seed) over seeds, per dataset and model."""
    rows = [{"dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
             **{m: r["metrics"][m] for m in metrics}} for r in records]
    frame = pd.DataFrame(rows, columns=["dataset", "model", "seed", *metrics])
    grouped = frame.groupby(["dataset", "model"], sort=False)
    mean = grouped[list(metrics)].mean()
    std = grouped[list(metrics)].std(ddof=1).fillna(0.0)
    out = mean.join(std.add_suffix(" std")).reset_index()
    out.insert(2, "seeds", grouped["seed"].count().to_numpy())
    return out


def user_metric(records: list[dict], metric: str, user_ranks) -> np.ndarray:
    """A model's per-user test metric, averaged over its seeds' runs."""
    return np.mean([per_user(user_ranks(r), metric) for r in records], axis=0)


def paired(alone: list[dict], augmented: list[dict], metric: str, user_ranks) -> dict:
    """One model against another on `metric`, seed by seed: both means ± std over seeds, the relative
    improvement, the seeds that improved, and the paired test over users (per-user metric averaged over
    seeds)."""
    a = np.array([r["metrics"][metric] for r in alone])
    b = np.array([r["metrics"][metric] for r in augmented])
    return {"alone": a.mean(), "alone std": spread(a), "augmented": b.mean(), "augmented std": spread(b),
            "improvement %": 100 * (b.mean() / a.mean() - 1), "seeds improved": int((b > a).sum()),
            "p (paired)": paired_permutation_test(user_metric(alone, metric, user_ranks),
                                                  user_metric(augmented, metric, user_ranks))}


def table_of(rows: list[dict], columns) -> pd.DataFrame:
    """`rows` as a table; with no rows (every run left out), an empty table that has the columns, so that
    a notebook's selections of them still work."""
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(columns))


def empty_figure(message: str = "no runs to show (every run was left out)"):
    """A figure that says there is nothing to draw, where a notebook's runs were all left out."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 1.5))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def paired_bars(ax, x, left: tuple, right: tuple, gains, tops) -> None:
    """Two bars per position (`left` and `right`: (values, stds, label)) with each gain in percent
    written above its `top`."""
    for shift, (values, stds, label) in ((-0.2, left), (0.2, right)):
        ax.bar(x + shift, values, 0.4, yerr=stds, label=label, capsize=2)
    for xi, top, gain in zip(x, tops, gains):
        ax.annotate(f"{gain:+.1f}%", (xi + 0.2, top), xytext=(0, 3), textcoords="offset points",
                    ha="center", fontsize=8)


def dataset_panels(table: pd.DataFrame, height: float):
    """A figure with one panel per dataset of `table` (in its order), and (panel, dataset, its rows)."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), height), squeeze=False)
    return fig, [(ax, name, table[table["dataset"] == name]) for ax, name in zip(axes[0], names)]
