"""The paper's comparison tables: every model on every dataset (notebook 06) and RaSeRec on top of each
backbone (notebook 07). Means and spreads over seeds, best and second best marked, RaSeRec's improvement
over the strongest baseline with a paired test over users, and the published numbers beside ours."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.analysis.published import FOLLOW_UP, FOLLOW_UP_METRICS, PAPER
from rasekit.analysis.stats import (dataset_panels, empty_figure, paired, paired_bars, paired_permutation_test,
                                    spread, table_of, user_metric)

TABLE_METRICS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")

# What each row is trained with, for the table's "loss" column (a model's numbers depend on it a lot).
LOSSES = {"Popularity": "none (training counts)", "ItemTransition": "none (training transitions)",
          "GRU4Rec": "CE", "SASRec (BPR)": "BPR, 1 negative", "SASRec": "CE", "BERT4Rec": "cloze CE",
          "CL4SRec": "CE + InfoNCE (augmentations)", "DuoRec": "CE + InfoNCE (same target)",
          "RaSeRec": "stage 2 on DuoRec: CE"}

TRAINING_FREE = ("Popularity", "ItemTransition")  # one deterministic run each, no seed, no training

def model_table(runs: dict[tuple[str, str], list[dict]], metrics=TABLE_METRICS) -> pd.DataFrame:
    """One row per (dataset, model): seeds, loss, then mean and std over seeds of every metric. `runs`:
    {(dataset, model): records of its seeds}, in the order of the table; models without records are rows
    with 0 seeds (not run yet) and no numbers."""
    rows = []
    for (dataset, model), records in runs.items():
        row = {"dataset": dataset, "model": model, "loss": LOSSES.get(model, ""), "seeds": len(records)}
        for m in metrics:
            values = np.array([r["metrics"][m] for r in records])
            row[m] = values.mean() if len(values) else np.nan
            row[f"{m} std"] = spread(values) if len(values) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def ranked(table: pd.DataFrame, metric: str) -> pd.Series:
    """1 for the best mean of `metric` in each dataset, 2 for the second best, 0 otherwise."""
    order = table.groupby("dataset", sort=False)[metric].rank(ascending=False, method="min")
    return order.where(order <= 2, 0).fillna(0).astype(int)


def marked(table: pd.DataFrame, metrics=TABLE_METRICS, style: str = "markdown") -> pd.DataFrame:
    """The table for reading: "mean ± std" per metric (the mean alone for a single seed, whose spread is
    unknown, not zero), the best of each dataset in bold and the second underlined (Markdown: **x**, _x_;
    LaTeX: \\textbf, \\underline); '–' for a model not run yet."""
    bold, under = {"markdown": ("**{}**", "_{}_"), "latex": ("\\textbf{{{}}}", "\\underline{{{}}}")}[style]
    pm = " ± " if style == "markdown" else " $\\pm$ "
    out = table[["dataset", "model", "loss", "seeds"]].copy()
    if style == "latex":
        out["dataset"] = out["dataset"].str.replace("_", "\\_")
    for m in metrics:
        rank = ranked(table, m)
        cells = []
        for mean, std, seeds, r in zip(table[m], table[f"{m} std"], table["seeds"], rank):
            text = "–" if mean != mean else f"{mean:.4f}" if seeds < 2 else f"{mean:.4f}{pm}{std:.4f}"
            cells.append(bold.format(text) if r == 1 else under.format(text) if r == 2 else text)
        out[m] = cells
    return out


def improvement(runs: dict[tuple[str, str], list[dict]], user_ranks, metrics=TABLE_METRICS,
                model: str = "RaSeRec") -> pd.DataFrame:
    """`model`'s relative improvement over the strongest other model (best mean, per dataset and metric),
    with a paired permutation test over test users on the per-user metric averaged over seeds."""
    rows = []
    for dataset in dict.fromkeys(d for d, _ in runs):
        ours = runs.get((dataset, model), [])
        others = {name: recs for (d, name), recs in runs.items() if d == dataset and name != model and recs}
        if not ours or not others:
            continue
        for m in metrics:
            best = max(others, key=lambda name: np.mean([r["metrics"][m] for r in others[name]]))
            base_mean = np.mean([r["metrics"][m] for r in others[best]])
            our_mean = np.mean([r["metrics"][m] for r in ours])
            p = paired_permutation_test(user_metric(others[best], m, user_ranks), user_metric(ours, m, user_ranks))
            rows.append({"dataset": dataset, "metric": m, "strongest baseline": best,
                         "baseline seeds": len(others[best]), "baseline": base_mean, model: our_mean,
                         "seeds": len(ours), "improvement %": 100 * (our_mean / base_mean - 1), "p (paired)": p})
    return pd.DataFrame(rows)


def versus_published(table: pd.DataFrame) -> pd.DataFrame:
    """The kit's means beside the published numbers: the paper's RaSeRec row and the follow-up's
    baseline table (SASRec there is the BPR variant), with the relative difference."""
    rows = []
    for _, row in table.iterrows():
        published = dict(zip(FOLLOW_UP_METRICS, FOLLOW_UP.get(row["dataset"], {}).get(row["model"], (None,) * 4)))
        paper = PAPER.get((row["dataset"], "RaSeRec"), {}) if row["model"] == "RaSeRec" else {}
        for m in FOLLOW_UP_METRICS:
            for source, value in (("paper", paper.get(m)), ("follow-up table", published.get(m))):
                if value is not None:
                    rows.append({"dataset": row["dataset"], "model": row["model"], "metric": m, "source": source,
                                 "published": value, "kit": row[m], "seeds": row["seeds"],
                                 "difference %": 100 * (row[m] / value - 1)})  # NaN where not run yet
    return pd.DataFrame(rows)


def comparison_figure(table: pd.DataFrame, metric: str = "NDCG@10"):
    """Bars of `metric` per model (error bars: std over seeds), one panel per dataset, with the published
    numbers as black marks."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = table[table["dataset"] == name].reset_index(drop=True)
        x = np.arange(len(part))
        colors = ["tab:red" if m == "RaSeRec" else "tab:blue" if m not in TRAINING_FREE
                  else "tab:gray" for m in part["model"]]
        ax.bar(x, part[metric].fillna(0), yerr=part[f"{metric} std"].fillna(0), color=colors, capsize=2)
        index = FOLLOW_UP_METRICS.index(metric) if metric in FOLLOW_UP_METRICS else None
        published = [FOLLOW_UP.get(name, {}).get(m, (None,) * 4)[index] if index is not None else None
                     for m in part["model"]]
        ax.scatter(x, [np.nan if v is None else v for v in published], marker="_", s=250, color="black",
                   zorder=3, label="published")
        for xi, (value, seeds, model) in enumerate(zip(part[metric], part["seeds"], part["model"])):
            if model in TRAINING_FREE:
                ax.annotate("no training", (xi, value), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=6)
            elif seeds == 0:  # vertical, so that neighbouring labels do not run into each other
                ax.annotate("not run yet", (xi, 0), xytext=(0, 3), textcoords="offset points", ha="center",
                            va="bottom", rotation=90, fontsize=7, color="dimgray")
            else:
                ax.annotate(f"{seeds} seed{'s' if seeds > 1 else ''}", (xi, value), xytext=(0, 2),
                            textcoords="offset points", ha="center", fontsize=6)
        ax.set_xticks(x, part["model"], rotation=45, ha="right")
        ax.set(title=name, ylabel=f"test {metric}")
    axes[0][0].legend(fontsize=8)
    return fig


def backbone_table(pairs: list[tuple[dict, dict]], user_ranks, metrics=("HR@5", "HR@10", "NDCG@5", "NDCG@10")
                   ) -> pd.DataFrame:
    """Each backbone alone and with retrieval augmentation (stage 2 on it, frozen): means ± std over
    seeds, the relative improvement, the seeds that improved and a paired test over users. `pairs`:
    [(backbone record, RaSeRec-on-it record)] for every backbone, dataset and seed."""
    rows = []
    groups = dict.fromkeys((base["dataset"], base["model"]) for base, _ in pairs)
    for dataset, backbone in groups:
        mine = [(b, r) for b, r in pairs if (b["dataset"], b["model"]) == (dataset, backbone)]
        for m in metrics:
            cmp = paired([b for b, _ in mine], [r for _, r in mine], m, user_ranks)
            rows.append({"dataset": dataset, "backbone": backbone, "metric": m, "seeds": len(mine),
                         **{k.replace("augmented", "+RaSeRec"): v for k, v in cmp.items()}})
    return table_of(rows, ("dataset", "backbone", "metric", "seeds", "alone", "alone std", "+RaSeRec",
                           "+RaSeRec std", "improvement %", "seeds improved", "p (paired)"))


def backbone_figure(table: pd.DataFrame, metric: str = "NDCG@10"):
    """Bars: each backbone alone and with RaSeRec (error bars: std over seeds), one panel per dataset."""
    part_all = table[table["metric"] == metric]
    if part_all.empty:
        return empty_figure()
    fig, panels = dataset_panels(part_all, 3.4)
    for ax, name, part in panels:
        x = np.arange(len(part))
        paired_bars(ax, x, (part["alone"], part["alone std"], "backbone"),
                    (part["+RaSeRec"], part["+RaSeRec std"], "+ RaSeRec"), part["improvement %"],
                    part["+RaSeRec"] + part["+RaSeRec std"])
        ax.margins(y=0.12)
        ax.set_xticks(x, part["backbone"])
        ax.set(title=name, ylabel=f"test {metric}")
    panels[0][0].legend(fontsize=8)
    return fig
