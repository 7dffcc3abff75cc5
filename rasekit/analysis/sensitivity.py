"""Sensitivity and ablation of stage 2: each setting's grid points, the module's parts and two controls,
set beside the official RaSeRec with the seed spread and a paired test over users; and the recall of
approximate retrieval against exact search."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rasekit.analysis.stats import PAPER_METRICS, paired_permutation_test, user_metric
from rasekit.memory.bank import MemoryBank, encode_instances
from rasekit.runs import experiments, ledger, profiles, sweeps

TESTED = ("NDCG@10", "HR@10")  # the metrics each row is tested on against the official run


def point_table(groups: dict[tuple, list[dict]], official: dict[str, list[dict]], user_ranks,
                columns: tuple[str, ...], metrics=PAPER_METRICS) -> pd.DataFrame:
    """One row per group of runs (the seeds of one setting, keyed by `columns` whose first is the
    dataset): mean and spread over seeds (NaN for one seed), the change against the official runs of the
    same dataset and seeds, and a paired test over users on TESTED (per-user metric averaged over seeds;
    NaN for the official runs themselves)."""
    rows = []
    for labels, records in groups.items():
        seeds = sorted(r["seed"] for r in records)
        same = [r for r in official[labels[0]] if r["seed"] in seeds]
        row = dict(zip(columns, labels), seeds=len(seeds))
        for m in metrics:
            values = np.array([r["metrics"][m] for r in records])
            row[m], row[f"{m} std"] = values.mean(), values.std(ddof=1) if len(values) > 1 else np.nan
        itself = {r["key"] for r in records} == {r["key"] for r in same}
        for m in TESTED:
            reference = np.mean([r["metrics"][m] for r in same])
            row[f"{m} vs official %"] = 100 * (row[m] / reference - 1)
            row[f"p {m}"] = np.nan if itself else paired_permutation_test(
                user_metric(same, m, user_ranks), user_metric(records, m, user_ranks))
        rows.append(row)
    return pd.DataFrame(rows)


def official_runs(records: list[dict]) -> dict[str, list[dict]]:
    """The official RaSeRec runs (no setting changed) among `records`, by dataset."""
    out: dict[str, list[dict]] = {}
    for r in {r["key"]: r for r in records if r["model"] == "RaSeRec(DuoRec)"}.values():
        out.setdefault(r["dataset"], []).append(r)
    return out


def sweep_figure(table: pd.DataFrame, test_time: pd.DataFrame | None = None, metrics=TESTED, title: str = ""):
    """Metric against value: one column of panels per parameter, one row per metric (each its own
    scale), the seed spread as a band, the official value dotted; on K's panels, dashed, the official
    model evaluated at each K at test time."""
    names = list(dict.fromkeys(table["parameter"]))
    fig, axes = plt.subplots(len(metrics), len(names), figsize=(3.0 * len(names), 2.4 * len(metrics)),
                             squeeze=False, sharey="row")
    for col, name in enumerate(names):
        part = table[table["parameter"] == name]
        x = np.arange(len(part))
        for row, m in enumerate(metrics):
            ax = axes[row][col]
            mean, std = part[m].to_numpy(float), np.nan_to_num(part[f"{m} std"].to_numpy(float))
            ax.plot(x, mean, "o-", color="C0", label="trained at each value")
            ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.2, lw=0)
            if name == "k" and test_time is not None and len(test_time):
                same = test_time.set_index("value").reindex(part["value"])[m].to_numpy(float)
                ax.plot(x, same, "s--", color="C1", label="K = 20 model, K at test time")
            for i in np.nonzero(part["official"].to_numpy())[0]:
                ax.axvline(i, color="grey", ls=":", lw=1)
            ax.set_xticks(x, [str(v) for v in part["value"]])
            ax.set(xlabel=name if row == len(metrics) - 1 else None, ylabel=m if col == 0 else None)
        axes[0][col].set_title(f"{name} (official dotted)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablation_figure(table: pd.DataFrame, metric: str = "NDCG@10", title: str = ""):
    """Bars: each ablation row's `metric` with its seed spread, the official row marked by a line."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    y = np.arange(len(table))
    ax.barh(y, table[metric], xerr=np.nan_to_num(table[f"{metric} std"]), color="C0", alpha=0.8)
    official = table[table["row"] == "channel 1 only (official)"][metric]
    if len(official):
        ax.axvline(float(official.iloc[0]), color="grey", ls=":", lw=1)
    ax.set_yticks(y, table["row"])
    ax.invert_yaxis()
    ax.set(xlabel=f"test {metric}", title=title)
    fig.tight_layout()
    return fig


def recall_at_k(found: np.ndarray, exact: np.ndarray, exact_mask: np.ndarray | None = None) -> float:
    """Mean over queries of the share of exact search's top K (its unmasked ids) that `found` holds."""
    exact_mask = exact >= 0 if exact_mask is None else exact_mask
    hit = ((found[:, :, None] == exact[:, None, :]) & (found[:, :, None] >= 0)).any(1) & exact_mask
    wanted = exact_mask.sum(1)
    return float(np.mean(hit.sum(1)[wanted > 0] / wanted[wanted > 0]))


def index_recall(parent: dict, indexes: dict[str, dict] | None = None) -> dict[str, float]:
    """Recall@K of each index's filtered top K (test queries, test-time bank of train and validation
    memories, as the official test) against exact search, for the trained stage-2 run `parent`."""
    indexes = sweeps.INDEXES if indexes is None else indexes
    base = ledger.get(parent["config"]["backbone_key"])
    data = experiments.load_data(parent["config"], profiles.get(parent["profile"]))
    train, valid, test = encode_instances(experiments.load_pretrained(base, "cpu"), [data.train, data.valid,
                                                                                     data.test])
    banks: dict[tuple, MemoryBank] = {}  # one per index built (nprobe is only a search setting)
    found = {}
    for name, change in {**indexes, "exact search": {"index": "exact"}}.items():
        ram = {**parent["config"]["ram"], **change}
        built = (ram["index"], ram["nlist"], ram.get("retrain_for_test", True))
        if built not in banks:
            banks[built] = test_time_bank(train, valid, data, *built)
        banks[built].set_nprobe(ram["nprobe"])
        found[name] = banks[built].search(test, data.test.users, data.test.lengths, ram["k"]).ids
    exact = found.pop("exact search")
    return {name: recall_at_k(ids, exact) for name, ids in found.items()}


def test_time_bank(train, valid, data, kind: str, nlist: int, retrain: bool = True) -> MemoryBank:
    """The official test-time bank over the train and validation keys (keys stand for values: only the
    search is wanted). With `retrain`, the index is built once on all keys, which is what growing the
    train bank with retraining gives (an HNSW graph costs minutes to build on one thread)."""
    bank = MemoryBank.from_arrays(train, train, data.train, "train", "exact" if retrain else kind, nlist)
    bank.add(valid, valid, data.valid, "valid")
    if retrain and kind != "exact":
        bank.kind = kind
        bank.reindex()
    return bank


def collect(runs: dict[tuple, list], reuse_only: bool = False, log=print) -> dict[tuple, list[dict]]:
    """The ledger records of each group of `spec.Run`s (trained now unless `reuse_only`); runs the
    ledger lacks are listed and left out, and so is a group left with none."""
    from rasekit.runs import spec
    groups = {labels: spec.records_of(group, reuse_only, log) for labels, group in runs.items()}
    return {labels: records for labels, records in groups.items() if records}


def test_time_groups(parents: list[dict], changes: dict, log=print) -> dict[tuple, list[dict]]:
    """Test-time variants of the official runs `parents`, by (dataset, change name): `changes` maps a name
    to a `variants.TestVariant`. A run whose variants cannot be had here is listed and left out."""
    from rasekit.runs import variants
    groups: dict[tuple, list[dict]] = {}
    for parent in parents:
        if not variants.available(parent, list(changes.values())):
            log(f"left out (no trained weights here, variants not recorded): {parent['model']} on "
                f"{parent['dataset']} seed {parent['seed']}")
            continue
        for name, variant in changes.items():
            groups.setdefault((parent["dataset"], name), []).append(
                variants.evaluate(parent, variant, log=lambda *_: None))
    return groups
