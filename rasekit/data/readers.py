"""Readers for the three input formats. Each returns plain Python/pandas data and names the file (and
line) of anything malformed.

* S3-Rec sequence files: `<D>.txt`, one user per line, `user item item ...` in time order.
* RecBole atomic `.inter` files: a tab-separated header `user_id:token item_id:token ... timestamp:float`.
* Raw ratings CSV: `user,item,rating,timestamp` without header (the Amazon 2014 "ratings only" files).
"""
from __future__ import annotations

import csv
import json
import math
import re
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


_INT = re.compile(r"-?[0-9]+")


def read_sequences(path: Path) -> dict[int, list[int]]:
    """S3-Rec `<D>.txt` -> {user id: [item ids in time order]}."""
    path = _open_nonempty(path)
    sequences: dict[int, list[int]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                raise DataFormatError(f"{path}:{lineno}: blank line")
            bad = next((t for t in tokens if not _INT.fullmatch(t)), None)
            if bad is not None:
                raise DataFormatError(f"{path}:{lineno}: non-integer token {bad!r}")
            ids = [int(t) for t in tokens]
            user, items = ids[0], ids[1:]
            if not items:
                raise DataFormatError(f"{path}:{lineno}: user {user} has no items")
            if min(ids) < 1:
                raise DataFormatError(f"{path}:{lineno}: id {min(ids)} is not positive (ids start at 1; "
                                      f"0 is the padding id)")
            if user in sequences:
                raise DataFormatError(f"{path}:{lineno}: user {user} is listed twice")
            sequences[user] = items
    return sequences


def read_item_attributes(path: Path) -> dict[int, list[int]]:
    """`<D>_item2attributes.json` -> {item id: [attribute ids]}."""
    path = _open_nonempty(path)
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(raw, dict):
        raise DataFormatError(f"{path}: expected a JSON object mapping item ids to attribute lists")

    def where(key: str) -> str:  # "file:line" of a key, for messages (computed only on error)
        return f"{path}:{text.count(chr(10), 0, max(text.find(json.dumps(key)), 0)) + 1}"

    attributes: dict[int, list[int]] = {}
    for key, value in raw.items():
        if not _INT.fullmatch(key.strip()):
            raise DataFormatError(f"{where(key)}: item id {key!r} is not an integer")
        if not isinstance(value, list) or not all(type(a) is int for a in value):
            raise DataFormatError(f"{where(key)}: item {key}: attributes must be a list of integers, "
                                  f"got {value!r}")
        attributes[int(key)] = value
    return attributes


def _timestamp(value: str, path: Path, lineno: int) -> float:
    try:
        ts = float(value)
    except ValueError:
        ts = math.nan
    if not math.isfinite(ts):
        raise DataFormatError(f"{path}:{lineno}: non-numeric timestamp {value!r}")
    return ts


def _interactions(path: Path, rows, n_fields: int, user: int, item: int, timestamp: int,
                  expected: str) -> pd.DataFrame:
    """(line number, fields) rows -> user, item, timestamp frame, checking every line."""
    users, items, times = [], [], []
    for lineno, fields in rows:
        if not fields:
            raise DataFormatError(f"{path}:{lineno}: blank line")
        if len(fields) != n_fields:
            raise DataFormatError(f"{path}:{lineno}: expected {n_fields} fields ({expected}), "
                                  f"found {len(fields)}")
        u, v = fields[user].strip(), fields[item].strip()
        if not u or not v:
            raise DataFormatError(f"{path}:{lineno}: empty user or item id")
        users.append(u)
        items.append(v)
        times.append(_timestamp(fields[timestamp], path, lineno))
    return pd.DataFrame({"user": pd.Series(users, dtype=object), "item": pd.Series(items, dtype=object),
                         "timestamp": pd.Series(times, dtype="float64")})


def read_ratings_csv(path: Path) -> pd.DataFrame:
    """Amazon 2014 ratings-only CSV (`user,item,rating,timestamp`, no header) -> user, item, timestamp."""
    path = _open_nonempty(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        rows = ((reader.line_num, fields) for fields in reader)
        return _interactions(path, rows, 4, 0, 1, 3, "user,item,rating,timestamp")


def read_inter(path: Path) -> pd.DataFrame:
    """RecBole atomic `.inter` file -> user, item, timestamp (a rating, if any, is dropped: implicit
    feedback). Columns are found by name in the header, in any order."""
    path = _open_nonempty(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        columns = {c.split(":")[0].strip(): i for i, c in enumerate(header)}
        missing = [c for c in ("user_id", "item_id", "timestamp") if c not in columns]
        if missing:
            raise DataFormatError(f"{path}:1: header lacks {', '.join(missing)} (found {header})")
        rows = ((reader.line_num, fields) for fields in reader)
        return _interactions(path, rows, len(header), columns["user_id"], columns["item_id"],
                             columns["timestamp"], "\t".join(header))
