"""Your runs beside the reference: the committed run of the same configuration, the spread over its
seeds, the paper's number, and a verdict per run; and the mark of runs taken from the reference."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit.analysis.published import PAPER, REPORTED_DUOREC
from rasekit.analysis.stats import PAPER_METRICS, spread, table_of


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
