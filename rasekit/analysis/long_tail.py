"""Long-tail analysis (the paper's Fig. 4): metrics per group of test instances, the groups formed by the
training popularity of the target item (head to long tail) or by the length of the user's sequence.

The paper's grouping is unknown (docs/method.md §10.3 and §11.7); the kit's choice, each a parameter:
* popularity = the item's interactions in the training part (each user's sequence without its last two
  items), so that the test never informs the groups;
* `rule="interactions"` (default): groups of (nearly) equal numbers of test instances, cut between items
  sorted from most to least popular, so every group weighs the same in the metric; `rule="items"`: groups
  of equal numbers of items;
* a group's value is the per-instance metric averaged over its instances, then over seeds; the gain and a
  paired permutation test compare two models on the same instances (per-instance values averaged over
  seeds first)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit import settings
from rasekit.analysis.stats import paired_permutation_test, spread
from rasekit.data import SplitData
from rasekit.evaluate import per_user

RULES = settings.GROUP_RULES
COLORS = {"SASRec": "#4C72B0", "DuoRec": "#DD8452", "RaSeRec": "#55A868"}  # the same in every figure


def training_popularity(data: SplitData) -> np.ndarray:
    """Interactions per item id in the training part (index 0 = padding)."""
    train = [s[:-2] for s in data.sequences if len(s) > 2]
    return np.bincount(np.concatenate(train) if train else np.zeros(0, int), minlength=data.n_items + 1)


def item_groups(data: SplitData, n_groups: int = 5, rule: str = "interactions") -> np.ndarray:
    """Group of every item id, 0 = the most popular (head) to n_groups - 1 (long tail); -1 for padding."""
    settings.choice("rule", rule, RULES)
    settings.integer("n_groups", n_groups, 1, data.n_items)
    popularity = training_popularity(data)
    order = np.argsort(-popularity[1:], kind="stable") + 1  # item ids, most popular first
    if rule == "items":
        weight = np.ones(len(order))
    else:  # test instances per item
        weight = np.bincount(data.test.targets, minlength=data.n_items + 1)[order].astype(float)
    share = np.cumsum(weight) / weight.sum()
    groups = np.full(data.n_items + 1, -1)
    groups[order] = np.minimum((share * n_groups - 1e-9).astype(int), n_groups - 1)
    return groups


def length_groups(data: SplitData, n_groups: int = 5) -> np.ndarray:
    """Group of every test instance by the length of its input sequence, 0 = shortest, in (nearly) equal
    numbers of instances (an instance's length decides its group; equal lengths stay together)."""
    settings.integer("n_groups", n_groups, 1, len(data.test))
    lengths = data.test.lengths
    order = np.argsort(lengths, kind="stable")
    rank_of_length = {}
    for position, i in enumerate(order):  # the first position of each length decides its group
        rank_of_length.setdefault(lengths[i], position)
    return np.array([min(rank_of_length[v] * n_groups // len(lengths), n_groups - 1) for v in lengths])


def group_table(runs: dict[str, list[dict]], ranks_of, instance_groups: np.ndarray, metric: str = "NDCG@5",
                base: str = "DuoRec", augmented: str = "RaSeRec", labels=None) -> pd.DataFrame:
    """One row per group and model: instances, mean over seeds of the group's `metric` and its spread; and
    for `augmented` the gain over `base` in percent with a paired p-value. `runs` maps a model name to its
    records (one per seed); `ranks_of(record)` gives its per-instance test ranks."""
    n_groups = int(instance_groups.max()) + 1
    per_model = {model: np.array([per_user(ranks_of(r), metric) for r in records])
                 for model, records in runs.items() if records}
    rows = []
    for g in range(n_groups):
        member = instance_groups == g
        for model, values in per_model.items():
            per_seed = values[:, member].mean(axis=1)
            row = {"group": labels[g] if labels else g, "instances": int(member.sum()), "model": model,
                   "seeds": len(per_seed), metric: per_seed.mean(),
                   f"{metric} std": spread(per_seed)}
            if model == augmented and base in per_model:
                a, b = per_model[base][:, member].mean(0), values[:, member].mean(0)
                row["gain %"] = 100 * (b.mean() / a.mean() - 1) if a.mean() > 0 else np.nan
                row["p (paired)"] = paired_permutation_test(a, b) if member.any() else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def group_labels(values: np.ndarray, groups: np.ndarray) -> list[str]:
    """'<g> (<lo>-<hi>)' per group (1 = head or shortest), from the values of its members."""
    labels = []
    for g in range(int(groups.max()) + 1):
        member = values[groups == g]
        labels.append(f"{g + 1} ({member.min()}-{member.max()})" if len(member) else f"{g + 1} (empty)")
    return labels


def group_figure(table: pd.DataFrame, metric: str = "NDCG@5", title: str = "", xlabel: str = "",
                 gain_of: str = "RaSeRec"):
    """Bars: `metric` per group and model (error bars: std over seeds); line on a second axis: the
    augmented model's gain in percent."""
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(table["group"]))
    models = list(dict.fromkeys(table["model"]))
    x, width = np.arange(len(groups)), 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups)), 3.4))
    for i, model in enumerate(models):
        part = table[table["model"] == model].set_index("group").loc[groups]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, part[metric], width, yerr=part[f"{metric} std"],
               label=model, capsize=2, color=COLORS.get(model))
    ax.set_xticks(x, [g.replace(" (", "\n(") for g in groups], fontsize=8)
    ax.set(ylabel=metric, xlabel=xlabel)
    gains = table[table["model"] == gain_of].set_index("group").reindex(groups).get("gain %")
    if gains is not None and gains.notna().any():
        twin = ax.twinx()
        twin.plot(x, gains.to_numpy(), "o-", color="black", lw=1.2, label=f"{gain_of} gain")
        twin.axhline(0, color="grey", lw=0.6, ls=":")
        twin.set_ylabel(f"{gain_of} gain (%)")
        twin.grid(False)
    handles = [h for a in fig.axes for h in a.get_legend_handles_labels()[0]]
    labels = [lab for a in fig.axes for lab in a.get_legend_handles_labels()[1]]
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(labels), fontsize=8,
               frameon=False)
    ax.set_title(title, pad=22)
    return fig


def tables(data: SplitData, runs: dict[str, list[dict]], ranks_of, n_groups: int = 5,
           rule: str = "interactions", metric: str = "NDCG@5") -> dict[str, pd.DataFrame]:
    """The two tables of the notebook for one dataset: by item popularity and by sequence length."""
    settings.choice("metric", metric, settings.METRICS)
    by_item = item_groups(data, n_groups, rule)[data.test.targets]
    by_length = length_groups(data, n_groups)
    popularity = training_popularity(data)[data.test.targets]
    out = {"items": group_table(runs, ranks_of, by_item, metric, labels=group_labels(popularity, by_item)),
           "users": group_table(runs, ranks_of, by_length, metric,
                                labels=group_labels(data.test.lengths, by_length))}
    for name, table in out.items():
        table.insert(0, "dataset", data.name)
    return out
