"""Stage 1 on its own (notebook 02): every stage-1 model's table, the stopping rule replayed on the
recorded validation curves, the Sports gap runs, and the validation curves beside the official log."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.analysis.published import OFFICIAL_DUOREC_CURVE, PAPER, REPORTED_DUOREC, SASREC_CE_REPORTED
from rasekit.analysis.stats import PAPER_METRICS, seed_summary, table_of


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
                         "epochs recorded": len(history), "valid at run's best": history[best][m],
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
