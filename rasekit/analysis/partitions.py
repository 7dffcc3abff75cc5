"""Memory-bank partition ablation (the paper's Fig. 5): a trained RaSeRec tested with one partition of its
training memories removed, against the full bank ("All").

The paper's partitions are unknown (docs/method.md §10.4 and §11.8). The kit's choice, each a parameter:
* three dimensions, each cut into `n_parts` parts: the length of the memory's prefix (parts of about
  equal numbers of memories, uneven where lengths tie), the popularity of its target item (equal numbers
  of items, by quantiles of interactions per item) and the activity of its user (equal numbers of users,
  by quantiles of training instances per user); a removal that would leave fewer than K memories is
  skipped and listed;
* removal happens at test time on the trained module (a test-time variant, no retraining); the validation
  memories that join the bank for the test stay, as in the official code;
* a control per removal: the bank cut to the same size by a seeded random sample, so that a drop caused
  by what was removed can be told apart from a drop caused by a smaller bank."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit import settings
from rasekit.analysis.stats import paired_permutation_test, user_metric
from rasekit.data import SplitData
from rasekit.runs.variants import TestVariant

DIMENSIONS = ("length", "popularity", "activity")


def _cuts(values: np.ndarray, n_parts: int) -> list[float]:
    return [float(np.quantile(values, i / n_parts)) for i in range(1, n_parts)]


def removals(data: SplitData, n_parts: int = 3) -> list[tuple[str, str, TestVariant]]:
    """(dimension, part removed, variant) for every part of every dimension, after ("All", "none")."""
    settings.integer("n_parts", n_parts, 2, 10)
    out = [("All", "none", TestVariant())]
    lengths = data.train.lengths
    edges = [int(lengths.min())] + [int(np.ceil(c)) for c in _cuts(lengths, n_parts)] + [int(lengths.max()) + 1]
    for lo, hi in zip(edges, edges[1:]):
        if hi > lo:  # official semantics: lower <= length <= upper, inverted = the bank without them
            spec = {"by": "length", "lower": lo, "upper": hi - 1, "invert": True}
            out.append(("length", f"prefix {lo}-{hi - 1}", TestVariant(partition=spec)))
    names = {"popularity": ("most popular", "mid", "least popular"), "activity": ("most active", "mid",
                                                                                  "least active")}
    for dimension in ("popularity", "activity"):
        for i in range(n_parts):  # quantiles of items (popularity) or users (activity), top part first
            lower, upper = 1 - (i + 1) / n_parts, 1 - i / n_parts
            label = names[dimension][i] if n_parts == 3 else f"quantiles {lower:.2f}-{upper:.2f}"
            spec = {"by": dimension, "lower": round(lower, 6), "upper": round(upper, 6), "invert": True}
            out.append((dimension, f"{label} {'items' if dimension == 'popularity' else 'users'}",
                        TestVariant(partition=spec)))
    return out


def control(kept: int, full: int, seed: int = 0) -> TestVariant:
    """The bank cut to `kept` of its `full` memories at random (seeded)."""
    return TestVariant(partition={"by": "sample", "fraction": max(kept / full, 1e-6), "seed": seed})


def ablation_table(results: list[dict], metrics=("HR@5", "NDCG@5"), user_ranks=None) -> pd.DataFrame:
    """`results`: one dict per (seed, removal) with dimension, removed, seed, the variant record
    ("removed_record") and its random control ("control_record"). One row per removal: memories kept,
    each metric's mean over seeds and spread, the degradation against "All" in percent, and the same for
    the control of equal size. With `user_ranks` (record -> per-user test ranks), also paired tests over
    test users (per-user metric averaged over seeds) of each removal against "All" and against its
    control."""
    frame = pd.DataFrame([{"dimension": r["dimension"], "removed": r["removed"], "seed": r["seed"],
                           "memories": r["removed_record"]["bank_size"],
                           **{m: r["removed_record"]["metrics"][m] for m in metrics},
                           **{f"{m} control": (r["control_record"] or r["removed_record"])["metrics"][m]
                              for m in metrics}} for r in results])
    all_rows = frame[frame["dimension"] == "All"].set_index("seed")
    ranks_of = _read_once(user_ranks) if user_ranks is not None else None
    rows = []
    for (dimension, removed), part in frame.groupby(["dimension", "removed"], sort=False):
        row = {"dimension": dimension, "removed": removed, "seeds": len(part),
               "memories": int(part["memories"].mean())}
        for m in metrics:
            base = all_rows.loc[part["seed"], m].to_numpy()
            row[m] = part[m].mean()
            row[f"{m} std"] = part[m].std(ddof=1) if len(part) > 1 else 0.0
            row[f"{m} drop %"] = 100 * (1 - part[m].mean() / base.mean()) if base.mean() else np.nan
            row[f"{m} control drop %"] = 100 * (1 - part[f"{m} control"].mean() / base.mean()) \
                if base.mean() else np.nan
        if ranks_of is not None:
            row.update(_paired_tests(results, dimension, removed, metrics, ranks_of))
        rows.append(row)
    return pd.DataFrame(rows)


def _read_once(user_ranks):
    """`user_ranks` reading each record's ranks once: the "All" runs are tested against every removal."""
    loaded: dict[int, np.ndarray] = {}

    def ranks(record):
        if id(record) not in loaded:
            loaded[id(record)] = user_ranks(record)
        return loaded[id(record)]
    return ranks


def _paired_tests(results, dimension, removed, metrics, user_ranks) -> dict:
    """p-values of one removal against "All" of the same seeds and against its random control."""
    mine = [r for r in results if (r["dimension"], r["removed"]) == (dimension, removed)]
    if dimension == "All":
        return {f"{m} p {against}": np.nan for m in metrics for against in ("vs All", "vs control")}
    full = {r["seed"]: r["removed_record"] for r in results if r["dimension"] == "All"}
    out = {}
    for m in metrics:
        removed_u = user_metric([r["removed_record"] for r in mine], m, user_ranks)
        out[f"{m} p vs All"] = paired_permutation_test(user_metric([full[r["seed"]] for r in mine], m, user_ranks),
                                                       removed_u)
        out[f"{m} p vs control"] = paired_permutation_test(
            user_metric([r["control_record"] for r in mine], m, user_ranks), removed_u)
    return out


def ablation_figure(table: pd.DataFrame, metric: str = "NDCG@5", title: str = ""):
    """Bars: `metric` with each partition removed (and "All"); line on a second axis: the drop against
    "All" in percent, dashed for the random control of equal size."""
    import matplotlib.pyplot as plt

    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(table)), 3.6))
    colors = {"All": "#55A868", "length": "#4C72B0", "popularity": "#DD8452", "activity": "#8172B3"}
    ax.bar(x, table[metric], yerr=table[f"{metric} std"], capsize=2,
           color=[colors.get(d, "grey") for d in table["dimension"]])
    ticks = ["All\n(full bank)" if r == "none" else r.replace(" ", "\n", 1) for r in table["removed"]]
    ax.set_xticks(x, ticks, fontsize=7)
    ax.set(ylabel=f"{metric} without the partition", title=title)
    twin = ax.twinx()
    twin.plot(x, table[f"{metric} drop %"], "o-", color="black", lw=1.2, label="drop vs All")
    twin.plot(x, table[f"{metric} control drop %"], "x--", color="grey", lw=1, label="random, same size")
    twin.axhline(0, color="grey", lw=0.6, ls=":")
    twin.set_ylabel("drop against All (%)")
    twin.grid(False)
    twin.legend(loc="upper left", fontsize=7)
    return fig


def run_ablation(parent: dict, data: SplitData, n_parts: int = 3, log=print) -> list[dict]:
    """Every removal of `removals` and its random control, as test-time variants of the stage-2 run
    `parent` (each cached in the ledger: a second call only reads them back). Without the run's trained
    weights here, all of them must be recorded; else the run is listed and left out (no results)."""
    from rasekit.runs import variants

    try:
        return _removals_and_controls(parent, data, n_parts, log)
    except variants.MissingWeights as err:
        print(f"left out: {err}")
        return []


def _removals_and_controls(parent: dict, data: SplitData, n_parts: int, log) -> list[dict]:
    from rasekit.runs import variants

    results, full = [], None
    for dimension, removed, variant in removals(data, n_parts):
        try:
            record = variants.evaluate(parent, variant, log=log)
        except settings.SettingsError as err:  # ties can make a part hold (nearly) the whole bank
            print(f"skipped {dimension} without {removed} on {parent['dataset']} seed {parent['seed']}: {err}")
            continue
        full = full or record["bank_size"]  # "All" comes first
        same_size = None if dimension == "All" else variants.evaluate(
            parent, control(record["bank_size"], full), log=log)
        results.append({"dimension": dimension, "removed": removed, "seed": parent["seed"],
                        "dataset": parent["dataset"], "removed_record": record, "control_record": same_size})
    return results
