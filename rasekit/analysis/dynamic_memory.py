"""The dynamic-memory study (notebook 11): is a bank update worth what retraining is?

Models trained on older data (`rasekit.data.held_out`: each user's last h interactions held out, or a
share of users left out) are tested on the full data's test items, with the full data's inputs (the
newer interactions are read as input; no weight ever changes), under:
- **no update**: the bank as trained (the older data's training and validation memories);
- **bank update**: the interactions the older bank lacks enter it as new memories, keyed by the frozen
  encoder, then the same test;
- **retraining**: the official runs, trained on everything (the full data's test-time bank);
- **the backbone alone**: the older data's DuoRec, with the same newer inputs.
The first three are test-time variants of the older runs (`rasekit.stages.bank_update` computes them),
so their ranks are recorded in the ledger and the tables rebuild without the weights. The share of
retraining's gain that the update recovers is (update - no update) / (retraining - no update), per
metric."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.analysis.stats import paired_permutation_test
from rasekit.data.protocol import SplitData
from rasekit.evaluate import per_user
from rasekit.runs import experiments, variants

CONDITIONS = ("backbone alone", "no update", "bank update", "retraining")


def table(ranks: dict[str, list[np.ndarray]], members: np.ndarray | None = None,
          metrics=("HR@10", "NDCG@10")) -> pd.DataFrame:
    """One row per condition (`CONDITIONS`, its ranks per seed): the metric over seeds on the test users
    in `members` (default: all), then the bank update against no update and the share of retraining's
    gain it recovers, paired over users (each user's metric averaged over seeds)."""
    members = np.ones(len(next(iter(ranks.values()))[0]), bool) if members is None else members
    user = {c: {m: np.mean([per_user(r, m)[members] for r in rs], axis=0) for m in metrics}
            for c, rs in ranks.items()}
    rows = [{"condition": c, "seeds": len(ranks[c]), "users": int(members.sum()),
             **{m: float(user[c][m].mean()) for m in metrics}} for c in CONDITIONS if c in ranks]
    out = pd.DataFrame(rows)
    for m in metrics:
        if {"no update", "bank update", "retraining"} <= ranks.keys():
            none, update, again = (user[c][m].mean() for c in ("no update", "bank update", "retraining"))
            out.loc[out["condition"] == "bank update", f"{m} recovered %"] = (
                100 * (update - none) / (again - none) if again != none else np.nan)
            out.loc[out["condition"] == "bank update", f"p {m} vs no update"] = paired_permutation_test(
                user["no update"][m], user["bank update"][m])
            out.loc[out["condition"] == "bank update", f"p {m} vs retraining"] = paired_permutation_test(
                user["retraining"][m], user["bank update"][m])
    return out


def new_user_members(full: SplitData, older: SplitData) -> np.ndarray:
    """Which of the full data's test users the older data left out entirely."""
    return ~np.isin(full.test.users, np.concatenate([older.train.users, older.valid.users, older.test.users]))


def scenario(older: list[tuple[dict, dict]], official: list[dict], members: np.ndarray | None = None,
             log=print) -> pd.DataFrame:
    """`table` of one scenario: per seed, the older data's (DuoRec, RaSeRec) ledger records tested on the
    full data as test-time variants (reused when recorded, else evaluated from their weights), beside
    the official RaSeRec of the same seed (retraining); on the test users in `members` (default: all)."""
    full_test = variants.TestVariant(full_data=True)
    updated = variants.TestVariant(full_data=True, bank_update=True)
    ranks = {c: [] for c in CONDITIONS}
    for (duorec, raserec), again in zip(older, official):
        ranks["backbone alone"].append(experiments.ranks(variants.evaluate(duorec, full_test, log=log)))
        ranks["no update"].append(experiments.ranks(variants.evaluate(raserec, full_test, log=log)))
        ranks["bank update"].append(experiments.ranks(variants.evaluate(raserec, updated, log=log)))
        ranks["retraining"].append(experiments.ranks(again))
    return table(ranks, members)


def figure(results: pd.DataFrame, metric: str = "NDCG@10"):
    """Per dataset: the metric of each condition in each scenario, bars side by side."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(results["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = results[results["dataset"] == name]
        scenarios = list(dict.fromkeys(mine["scenario"]))
        x, width = np.arange(len(scenarios)), 0.8 / len(CONDITIONS)
        for i, condition in enumerate(CONDITIONS):
            values = [mine[(mine["scenario"] == s) & (mine["condition"] == condition)][metric].mean() for s in scenarios]
            ax.bar(x + (i - 1.5) * width, values, width, label=condition)
        ax.set_xticks(x, scenarios)
        ax.set(title=name, ylabel=f"test {metric}", xlabel="held out at training")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncol=len(CONDITIONS), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))  # the legend above the panels, clear of the bars
    return fig
