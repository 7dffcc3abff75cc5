"""The paper's main result (notebook 01): DuoRec against RaSeRec on it, per dataset and metric, with the
paired test, the paper's numbers and DuoRec's reported ones."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.analysis.published import PAPER, REPORTED_DUOREC
from rasekit.analysis.stats import PAPER_METRICS, dataset_panels, empty_figure, paired, paired_bars, table_of


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


def improvement_figure(table: pd.DataFrame):
    """Bars: DuoRec and RaSeRec per metric (error bars = std over seeds), one panel per dataset."""
    if table.empty:
        return empty_figure()
    fig, panels = dataset_panels(table, 3.2)
    for ax, name, part in panels:
        x = np.arange(len(part))
        ax.scatter(x + 0.2, part["paper RaSeRec"], marker="_", s=200, color="black", label="paper", zorder=3)
        # the gain above the RaSeRec bar, its error bar and the paper's mark, whichever is highest
        tops = np.fmax(part["RaSeRec"] + part["RaSeRec std"], part["paper RaSeRec"].astype(float))
        paired_bars(ax, x, (part["DuoRec"], part["DuoRec std"], "DuoRec"),
                    (part["RaSeRec"], part["RaSeRec std"], "RaSeRec"), part["improvement %"], tops)
        ax.margins(y=0.12)
        ax.set_xticks(x, part["metric"])
        seeds = int(part["seeds"].iloc[0])
        ax.set_title(f"{name} ({seeds} seed{'s' if seeds != 1 else ''})")
    panels[0][0].legend(fontsize=8)
    return fig
