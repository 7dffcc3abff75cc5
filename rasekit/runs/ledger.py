"""The results ledger: one JSON record per finished run, named by the hash of its configuration, so that
notebooks share runs instead of repeating them and a rerun of the batch skips what is done.

A record is only replaced by a run of an equal or larger profile: a smoke or default run can never
overwrite the result of a full run (their configurations differ anyway, so they hash apart)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a single writer at a time is then the user's care
    fcntl = None

import pandas as pd

from rasekit.files import atomic, paths
from rasekit.runs.profiles import PROFILE_ORDER

LOCK = ".lock"


class LedgerError(ValueError):
    """A ledger record is unreadable, or a write would replace a larger profile's result."""


def _path(key: str, root: Path | None = None) -> Path:
    return paths.ledger_dir(root) / f"{key}.json"


REQUIRED = ("key", "dataset", "model", "seed", "profile", "metrics", "provenance")
FILE_ENTRY = ("file", "sha256", "bytes")  # a record's "ranks" and "weights": a stored file and its hash


def _kind(value) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _malformed(record) -> str | None:
    """What makes a parsed record unusable, or None."""
    if not isinstance(record, dict):
        return f"it is {_kind(record)}, not an object"
    missing = [field for field in REQUIRED if field not in record]
    if missing:
        return f"it lacks {', '.join(map(repr, missing))}"
    for field in ("metrics", "provenance"):
        if not isinstance(record[field], dict):
            return f"its {field!r} is {_kind(record[field])}, not an object"
    for field in ("ranks", "weights"):  # optional
        entry = record.get(field)
        if entry and not (isinstance(entry, dict) and all(name in entry for name in FILE_ENTRY)):
            return f"its {field!r} is not an object with {', '.join(FILE_ENTRY)}"
    return None


def read(path: Path) -> dict:
    """A record file; refused, naming the file, if it is not JSON or not a well-formed record."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LedgerError(f"{path}: corrupt ledger record ({err}); delete it to rerun that run") from None
    problem = _malformed(record)
    if problem:
        raise LedgerError(f"{path}: not a ledger record: {problem}; delete it to rerun that run")
    return record


def get(key: str, root: Path | None = None) -> dict | None:
    """The record of run `key` in the ledger under `root` (default: the user's own), or None."""
    path = _path(key, root)
    return read(path) if path.exists() else None


@contextmanager
def _locked(folder: Path):
    """Hold the ledger's lock: writers take it in turn, so the profile check and the write are one step
    (without it two concurrent writers could both pass the check). Readers need no lock: a record
    appears whole, by rename."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def outranks(old: dict | None, new: dict) -> bool:
    """Whether a held record comes from a larger profile than a new one of the same key (which may then
    not replace it)."""
    return old is not None and PROFILE_ORDER.index(old["profile"]) > PROFILE_ORDER.index(new["profile"])


def put(record: dict, root: Path | None = None) -> Path:
    """Write a record atomically into the ledger under `root` (default: the user's own). Refuses to
    replace a record of a larger profile."""
    problem = _malformed(record)
    if problem:
        raise LedgerError(f"not a ledger record: {problem}")
    path = _path(record["key"], root)
    with _locked(path.parent):
        for stale in path.parent.glob(".*.tmp"):  # left by a killed writer: no writer is active now
            stale.unlink(missing_ok=True)
        old = get(record["key"], root)
        if outranks(old, record):
            raise LedgerError(f"run {record['key']} already holds a {old['profile']} result; "
                              f"a {record['profile']} run may not overwrite it")
        with atomic.replacing(path, text=True) as fh:
            json.dump(record, fh, indent=1, sort_keys=True)
    return path


def records(root: Path | None = None) -> list[dict]:
    """Every record under `root` (default: the user's own); refuses with one error that names every
    unreadable file."""
    folder = paths.ledger_dir(root)
    if not folder.exists():
        return []
    found, bad = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(read(path))
        except LedgerError as err:
            bad.append(str(err))
    if bad:
        raise LedgerError(f"{len(bad)} unreadable ledger file(s): " + "; ".join(bad))
    return found


def table(metrics=("HR@5", "HR@10", "NDCG@5", "NDCG@10"), root: Path | None = None) -> pd.DataFrame:
    """One row per run: what, which seed and profile, the test metrics, when and where, and the size of
    its stored trained weights in MB (blank for a run that keeps only its ranks)."""
    rows = [{"key": r["key"], "dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
             "profile": r["profile"], **{m: r["metrics"].get(m) for m in metrics},
             "best_epoch": r.get("best_epoch"), "commit": r["provenance"].get("git_commit", "")[:8],
             "device": r["provenance"].get("device"), "wall_s": r["provenance"].get("wall_time_s"),
             "weights_mb": r["weights"]["bytes"] / 1e6 if "weights" in r else None}
            for r in records(root)]
    columns = ["key", "dataset", "model", "seed", "profile", *metrics, "best_epoch", "commit", "device",
               "wall_s", "weights_mb"]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "model", "profile", "seed"],
                                                          ignore_index=True)


def summary(metrics=("HR@5", "HR@10", "NDCG@5", "NDCG@10"), root: Path | None = None) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; blank for one seed) over the seeds of each dataset, model and
    profile, with the seeds listed."""
    runs = table(metrics, root)
    if runs.empty:
        return runs
    groups = runs.groupby(["dataset", "model", "profile"], sort=True)
    out = groups[list(metrics)].mean().join(groups[list(metrics)].std(ddof=1).add_suffix(" std"))
    out.insert(0, "seeds", groups["seed"].apply(lambda s: ",".join(map(str, sorted(s)))))
    return out[["seeds", *[c for m in metrics for c in (m, f"{m} std")]]].reset_index()
