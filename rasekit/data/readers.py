"""Readers for the three input formats. Each returns plain Python/pandas data and names the file (and
line) of anything malformed.

* S3-Rec sequence files: `<D>.txt`, one user per line, `user item item ...` in time order.
* RecBole atomic `.inter` files: a tab-separated header `user_id:token item_id:token ... timestamp:float`.
* Raw ratings CSV: `user,item,rating,timestamp` without header (the Amazon 2014 "ratings only" files).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file, the line and the problem."""


def _open_nonempty(path: Path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: file is empty")
    return path


def read_sequences(path: Path) -> dict[int, list[int]]:
    """S3-Rec `<D>.txt` -> {user id: [item ids in time order]}."""
    path = _open_nonempty(path)
    sequences: dict[int, list[int]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                raise DataFormatError(f"{path}:{lineno}: blank line")
            try:
                ids = [int(t) for t in tokens]
            except ValueError:
                bad = next(t for t in tokens if not t.lstrip("-").isdigit())
                raise DataFormatError(f"{path}:{lineno}: non-integer token {bad!r}") from None
            user, items = ids[0], ids[1:]
            if not items:
                raise DataFormatError(f"{path}:{lineno}: user {user} has no items")
            if min(ids) < 1:
                raise DataFormatError(f"{path}:{lineno}: ids must be positive (0 is the padding id)")
            if user in sequences:
                raise DataFormatError(f"{path}:{lineno}: user {user} is listed twice")
            sequences[user] = items
    return sequences


def read_item_attributes(path: Path) -> dict[int, list[int]]:
    """`<D>_item2attributes.json` -> {item id: [attribute ids]}."""
    path = _open_nonempty(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(raw, dict):
        raise DataFormatError(f"{path}: expected a JSON object mapping item ids to attribute lists")
    try:
        return {int(k): [int(a) for a in v] for k, v in raw.items()}
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: item ids and attribute ids must be integers") from None


def _checked_frame(frame: pd.DataFrame, path: Path, first_line: int) -> pd.DataFrame:
    """Reject missing or non-numeric timestamps, naming the first bad line."""
    ts = pd.to_numeric(frame["timestamp"], errors="coerce")
    bad = ts.isna() | frame["user"].isna() | frame["item"].isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataFormatError(f"{path}:{row + first_line}: missing field or non-numeric timestamp")
    frame = frame.assign(timestamp=ts)
    frame["user"] = frame["user"].astype(str)
    frame["item"] = frame["item"].astype(str)
    return frame


def read_ratings_csv(path: Path) -> pd.DataFrame:
    """Amazon 2014 ratings-only CSV (`user,item,rating,timestamp`, no header) -> user, item, timestamp."""
    path = _open_nonempty(path)
    frame = pd.read_csv(path, header=None, names=["user", "item", "rating", "timestamp"],
                        dtype={"user": str, "item": str}, on_bad_lines="error", engine="python")
    return _checked_frame(frame, path, first_line=1)[["user", "item", "timestamp"]]


def read_inter(path: Path) -> pd.DataFrame:
    """RecBole atomic `.inter` file -> user, item, timestamp (rating, if any, is dropped: implicit feedback)."""
    path = _open_nonempty(path)
    frame = pd.read_csv(path, sep="\t", dtype=str, engine="python")
    columns = {c.split(":")[0]: c for c in frame.columns}
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in columns]
    if missing:
        raise DataFormatError(f"{path}:1: header lacks {', '.join(missing)} (found {list(frame.columns)})")
    frame = frame.rename(columns={columns["user_id"]: "user", columns["item_id"]: "item",
                                  columns["timestamp"]: "timestamp"})
    return _checked_frame(frame, path, first_line=2)[["user", "item", "timestamp"]]
