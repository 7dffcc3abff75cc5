"""Comparing runs: mean and spread over seeds, relative improvement, and a paired test over users."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.analysis.published import OFFICIAL_DUOREC_CURVE, PAPER, REPORTED_DUOREC, SASREC_CE_REPORTED
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


def main_table(pairs: list[tuple[dict, dict]], user_ranks, metrics=PAPER_METRICS) -> pd.DataFrame:
    """The DuoRec vs RaSeRec table: for each dataset and metric, both means ± std over seeds, the
    relative improvement, how many seeds improved, the paired p-value (per-user metric averaged over
    seeds), the paper's number, and DuoRec's reported number. `pairs` = [(base record, RaSeRec record)]
    for every seed; `user_ranks(record)` gives a run's per-user test ranks."""
    rows = []
    for dataset in dict.fromkeys(base["dataset"] for base, _ in pairs):
        mine = [(b, r) for b, r in pairs if b["dataset"] == dataset]
        for m in metrics:
            cmp = paired([b for b, _ in mine], [r for _, r in mine], m, user_ranks)
            paper = PAPER.get((dataset, "RaSeRec"), {}).get(m)
            reported = REPORTED_DUOREC.get(dataset, {}).get(m)
            rows.append({"dataset": dataset, "metric": m, "seeds": len(mine),
                         "DuoRec": cmp["alone"], "DuoRec std": cmp["alone std"],
                         "reported DuoRec": reported,
                         "DuoRec vs reported %": None if reported is None
                         else 100 * (cmp["alone"] / reported - 1),
                         "RaSeRec": cmp["augmented"], "RaSeRec std": cmp["augmented std"],
                         **{k: cmp[k] for k in ("improvement %", "seeds improved", "p (paired)")},
                         "paper RaSeRec": paper,
                         "vs paper %": None if paper is None else 100 * (cmp["augmented"] / paper - 1)})
    return table_of(rows, MAIN_COLUMNS)


MAIN_COLUMNS = ("dataset", "metric", "seeds", "DuoRec", "DuoRec std", "reported DuoRec", "DuoRec vs reported %",
                "RaSeRec", "RaSeRec std", "improvement %", "seeds improved", "p (paired)", "paper RaSeRec",
                "vs paper %")


def main_views(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`main_table` as two narrow tables for reading (the saved table keeps every column): the kit's
    comparison (mean ± std over seeds, the improvement and its paired test) and the kit against the
    published numbers."""
    def pm(model):
        return table[model].map("{:.4f}".format) + " ± " + table[f"{model} std"].map("{:.4f}".format)
    kit = table[["dataset", "metric", "seeds"]].assign(
        DuoRec=pm("DuoRec"), RaSeRec=pm("RaSeRec"), **{"improvement %": table["improvement %"].round(2),
                                                       "p (paired)": table["p (paired)"].round(4)})
    published = table[["dataset", "metric", "DuoRec", "reported DuoRec", "DuoRec vs reported %", "RaSeRec",
                       "paper RaSeRec", "vs paper %"]].round(4)
    return {"kit": kit, "published": published}


def spread(values: np.ndarray) -> float:
    """Standard deviation over seeds (ddof 1; 0 for a single seed)."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def improvement_figure(table: pd.DataFrame):
    """Bars: DuoRec and RaSeRec per metric (error bars = std over seeds), one panel per dataset."""
    import matplotlib.pyplot as plt

    if table.empty:
        return empty_figure()
    names = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = table[table["dataset"] == name]
        x = np.arange(len(part))
        ax.bar(x - 0.2, part["DuoRec"], 0.4, yerr=part["DuoRec std"], label="DuoRec", capsize=2)
        ax.bar(x + 0.2, part["RaSeRec"], 0.4, yerr=part["RaSeRec std"], label="RaSeRec", capsize=2)
        ax.scatter(x + 0.2, part["paper RaSeRec"], marker="_", s=200, color="black", label="paper", zorder=3)
        # the gain above the RaSeRec bar, its error bar and the paper's mark, whichever is highest
        tops = np.fmax(part["RaSeRec"] + part["RaSeRec std"], part["paper RaSeRec"].astype(float))
        for xi, top, gain in zip(x, tops, part["improvement %"]):
            ax.annotate(f"{gain:+.1f}%", (xi + 0.2, top), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=8)
        ax.margins(y=0.12)
        ax.set_xticks(x, part["metric"])
        seeds = int(part["seeds"].iloc[0])
        ax.set_title(f"{name} ({seeds} seed{'s' if seeds != 1 else ''})")
    axes[0][0].legend(fontsize=8)
    return fig


def stage1_table(records: list[dict], metrics=PAPER_METRICS) -> pd.DataFrame:
    """Stage-1 models: mean ± std over seeds, next to the reported DuoRec and (Beauty) SASRec-CE."""
    table = seed_summary(records, metrics)
    reference = {(dataset, "DuoRec"): values for dataset, values in REPORTED_DUOREC.items()}
    reference[("Beauty", "SASRec")] = SASREC_CE_REPORTED
    for m in metrics:
        table[f"{m} reported"] = [reference.get(run, {}).get(m)
                                  for run in zip(table["dataset"], table["model"])]
    return table


def stopping_replay(records: list[dict], metrics=("MRR@10", "NDCG@10", "HR@10")) -> pd.DataFrame:
    """Each run's recorded validation curve replayed under early stopping on each of `metrics` (the run's
    other settings kept): the epoch that rule keeps, or "trains on" where the curve ends before that rule
    would stop, and how much that metric rose after the run's own best epoch."""
    from rasekit.stages.loop import TrainConfig, replay_stopping

    rows = []
    for r in records:
        history, best = r["history"], r["best_epoch"]
        for m in metrics:
            kept = replay_stopping(history, TrainConfig.of({**r["config"]["train"], "valid_metric": m}))
            after = max(h[m] for h in history[best:])
            rows.append({"dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "stopping metric": m,
                         "kept epoch": "trains on" if kept is None else kept[0], "run's best epoch": best,
                         "epochs recorded": len(history), f"valid at run's best": history[best][m],
                         "valid best later": after, "rise after %": 100 * (after / history[best][m] - 1)})
    return table_of(rows, ("dataset", "model", "seed", "stopping metric", "kept epoch", "run's best epoch",
                           "epochs recorded", "valid at run's best", "valid best later", "rise after %"))


def gap_table(records: list[dict], metrics=PAPER_METRICS) -> pd.DataFrame:
    """The Sports-gap runs beside the official-protocol runs (`seed_summary` rows): the epoch each kept and
    the epochs it ran (means over seeds, epochs counted from 0), and each metric's distance from the
    published number the gap is measured against: the paper's RaSeRec for a stage-2 model, else the
    reported DuoRec."""
    table = seed_summary(records, metrics)
    epochs = pd.DataFrame([{"dataset": r["dataset"], "model": r["model"], "best epoch": r["best_epoch"],
                            "epochs run": r["epochs_run"]} for r in records])
    table = table.merge(epochs.groupby(["dataset", "model"], sort=False).mean().reset_index(),
                        on=["dataset", "model"])
    stage2 = table["model"].str.startswith("RaSeRec(")
    table["measured against"] = np.where(stage2, "paper's RaSeRec", "reported DuoRec")
    for m in metrics:
        published = [(PAPER.get((d, "RaSeRec"), {}) if ras else REPORTED_DUOREC.get(d, {})).get(m)
                     for d, ras in zip(table["dataset"], stage2)]
        table[f"{m} vs published %"] = [None if p is None else 100 * (v / p - 1)
                                        for v, p in zip(table[m], published)]
    return table


def curves_figure(records: list[dict], metric: str = "MRR@10"):
    """Validation `metric` per epoch of every run, with the official DuoRec log's points."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for r in records:
        epochs = [h["epoch"] for h in r["history"]]
        ax.plot(epochs, [h[metric] for h in r["history"]], lw=1, label=f"{r['model']} seed {r['seed']}")
    if any(r["model"] == "DuoRec" and r["dataset"] == "Beauty" for r in records):
        ax.plot(OFFICIAL_DUOREC_CURVE["epoch"], OFFICIAL_DUOREC_CURVE[metric], "k*", label="official DuoRec log")
    ax.set(xlabel="epoch", ylabel=f"valid {metric}", title="Stage-1 validation curves")
    if records:  # (every run may have been left out)
        ax.legend(fontsize=7)
    return fig


REFERENCE_LABEL = " (reference)"  # after the name of a model whose runs were taken from the reference
TAKEN = "taken from the reference, not trained here"  # the verdict table's word for such a run


def label(record: dict) -> str:
    """A run's model name, with REFERENCE_LABEL if it was taken from the reference (the default profile's
    stage-1 runs and training-free baselines), not trained here."""
    return record["model"] + (REFERENCE_LABEL if record.get("adopted") else "")


def mark_reference(table: pd.DataFrame, runs, column: str | None = "model") -> pd.DataFrame:
    """`table` with REFERENCE_LABEL after each name whose runs were all taken from the reference: names in
    `column`, or with None the column headers. `runs`: {name: records}, or records named by their model."""
    if not isinstance(runs, dict):
        grouped: dict[str, list] = {}
        for record in runs:
            grouped.setdefault(record["model"], []).append(record)
        runs = grouped
    taken = {name for name, records in runs.items() if records and all(r.get("adopted") for r in records)}
    if column is None:
        return table.rename(columns={name: name + REFERENCE_LABEL for name in taken})
    if column not in table:  # (an empty table without columns)
        return table
    return table.assign(**{column: [v + REFERENCE_LABEL if v in taken else v for v in table[column]]})


def _published(dataset: str, model: str) -> dict:
    """The paper's number for a model, where one is known (RaSeRec; DuoRec as reported)."""
    if model == "RaSeRec(DuoRec)":
        return PAPER.get((dataset, "RaSeRec"), {})
    return REPORTED_DUOREC.get(dataset, {}) if model == "DuoRec" else {}


# A metric moves by at most 1/n when one of n test users' rank moves. The same weights evaluated on a CPU
# of another generation move a few users (float rounding carries a query across an IVF cell border), so a
# difference of this many users' worth says nothing about the method.
ROUNDING_USERS = 5


def verdict(differences: list[float], spreads: list[float | None], floor: float = 0.0) -> str:
    """'same numbers'; 'same up to rounding' where no difference exceeds `floor` (ROUNDING_USERS test
    users' worth); 'within seed spread' (every difference within two standard deviations of the
    reference's seeds, or the floor); 'off' (beyond that) with the largest difference beyond and the
    standard deviation it is set against; or, where the reference has a single seed and so no spread,
    'differs (one reference seed)' with the largest difference, for the reader to judge."""
    if all(abs(d) <= 1e-12 for d in differences):
        return "same numbers"
    if all(abs(d) <= floor for d in differences):
        return f"same up to rounding (no more than {ROUNDING_USERS} test users' worth)"
    if any(s is None for s in spreads):
        return f"differs (one reference seed), by up to {max(abs(d) for d in differences):.4f}"
    beyond = [(abs(d), s) for d, s in zip(differences, spreads) if abs(d) > max(2 * s, floor)]
    if not beyond:
        return "within seed spread"
    difference, deviation = max(beyond)
    return f"off, by up to {difference:.4f} (standard deviation over the reference's seeds: {deviation:.4f})"


def rounding_floor(record: dict) -> float:
    """ROUNDING_USERS test users' worth of a metric for the user's run `record`: 0 when its test ranks
    are not in the user's store (nothing to count the users by)."""
    from rasekit.runs import store
    from rasekit.files import paths

    entry = record.get("ranks")
    if not entry or not (paths.output_dir() / entry["file"]).exists():
        return 0.0
    return ROUNDING_USERS / len(store.load_ranks(record, "test"))


def versus_reference(records: list[dict], metrics=PAPER_METRICS) -> pd.DataFrame | None:
    """The user's runs beside the reference run of the same configuration (same key) and the paper: one
    row per run and metric, with the difference, the spread over the seeds of the reference's runs of that
    model and profile, and a verdict per run. A run taken from the reference is named as such (`label`),
    with no verdict to give. None when the output root is the reference itself (nothing to compare)."""
    from rasekit.runs import ledger
    from rasekit.files import paths

    if paths.is_reference():
        return None
    reference = ledger.records(paths.reference_dir())
    by_key = {r["key"]: r for r in reference}
    rows = []
    for rec in records:
        ref = by_key.get(rec["key"])
        profile = (ref or rec)["profile"]  # a default run has the key of a full one: its spread is full's
        peers = [r for r in reference
                 if (r["dataset"], r["model"], r["profile"]) == (rec["dataset"], rec["model"], profile)]
        ref_spread = {m: spread(np.array([r["metrics"][m] for r in peers])) if len(peers) > 1 else None
                  for m in metrics}
        diffs = [rec["metrics"][m] - ref["metrics"][m] for m in metrics] if ref else []
        if rec.get("adopted"):
            judged = TAKEN
        else:
            floor = rounding_floor(rec)
            judged = verdict(diffs, [ref_spread[m] for m in metrics], floor) if ref else "no reference run"
        paper = _published(rec["dataset"], rec["model"])
        rows += [{"dataset": rec["dataset"], "model": label(rec), "seed": rec["seed"], "metric": m,
                  "yours": rec["metrics"][m], "reference": ref["metrics"][m] if ref else None,
                  "difference": rec["metrics"][m] - ref["metrics"][m] if ref else None,
                  "reference spread": ref_spread[m], "paper": paper.get(m), "verdict": judged} for m in metrics]
    return table_of(rows, ("dataset", "model", "seed", "metric", "yours", "reference", "difference",
                           "reference spread", "paper", "verdict"))
