"""The results ledger: one JSON record per finished run, named by the hash of its configuration, so that
notebooks share runs instead of repeating them and a rerun of the batch skips what is done.

A record is only replaced by a run of an equal or larger profile: a smoke or default run can never
overwrite the result of a full run (their configurations differ anyway, so they hash apart)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from . import paths
from .profiles import PROFILE_ORDER


def _path(key: str) -> Path:
    return paths.ledger_dir() / f"{key}.json"


def get(key: str) -> dict | None:
    path = _path(key)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt ledger record ({err.msg}); delete it to rerun") from None


def put(record: dict) -> Path:
    """Write a record atomically. Refuses to replace a record of a larger profile."""
    for field in ("key", "dataset", "model", "seed", "profile", "metrics", "provenance"):
        if field not in record:
            raise ValueError(f"ledger record lacks {field!r}")
    old = get(record["key"])
    if old is not None and PROFILE_ORDER.index(old["profile"]) > PROFILE_ORDER.index(record["profile"]):
        raise ValueError(f"run {record['key']} already holds a {old['profile']} result; "
                         f"a {record['profile']} run may not overwrite it")
    path = _path(record["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def records() -> list[dict]:
    folder = paths.ledger_dir()
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def table(metrics=("HR@5", "HR@10", "NDCG@5", "NDCG@10")) -> pd.DataFrame:
    """One row per run: what, which seed and profile, the test metrics, when and where."""
    rows = [{"key": r["key"], "dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
             "profile": r["profile"], **{m: r["metrics"].get(m) for m in metrics},
             "best_epoch": r.get("best_epoch"), "commit": r["provenance"].get("git_commit", "")[:8],
             "device": r["provenance"].get("device"), "wall_s": r["provenance"].get("wall_time_s")}
            for r in records()]
    columns = ["key", "dataset", "model", "seed", "profile", *metrics, "best_epoch", "commit", "device",
               "wall_s"]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "model", "profile", "seed"],
                                                          ignore_index=True)


def summary(metrics=("HR@5", "HR@10", "NDCG@5", "NDCG@10")) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; blank for one seed) over the seeds of each dataset, model and
    profile, with the seeds listed."""
    runs = table(metrics)
    if runs.empty:
        return runs
    groups = runs.groupby(["dataset", "model", "profile"], sort=True)
    out = groups[list(metrics)].mean().join(groups[list(metrics)].std(ddof=1).add_suffix(" std"))
    out.insert(0, "seeds", groups["seed"].apply(lambda s: ",".join(map(str, sorted(s)))))
    return out[["seeds", *[c for m in metrics for c in (m, f"{m} std")]]].reset_index()
