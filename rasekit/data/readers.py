"""Readers for the three input formats. Each returns plain Python/pandas data and names the file (and
line) of anything malformed.

* S3-Rec sequence files: `<D>.txt`, one user per line, `user item item ...` in time order.
* RecBole atomic `.inter` files: a tab-separated header `user_id:token item_id:token ... timestamp:float`.
* Raw ratings CSV: `user,item,rating,timestamp` without header (the Amazon 2014 "ratings only" files).
"""
from __future__ import annotations

import csv
import io
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
    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory, not a data file")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: file is empty")
    return path


_INT = re.compile(r"-?[0-9]+")


def _text(path: Path) -> str:
    """The file as UTF-8 text; binary or mis-encoded content is refused with the line it starts on."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataFormatError(f"{path}:{line}: not UTF-8 text (byte {err.start}: {err.reason}); "
                              f"is this a data file of the expected format?") from None


def read_sequences(path: Path) -> dict[int, list[int]]:
    """S3-Rec `<D>.txt` -> {user id: [item ids in time order]}."""
    path = _open_nonempty(path)
    text = _text(path)
    lines = text.split("\n")
    if lines[-1]:  # S3-Rec files end every line with a newline; without one, the last number may be cut
        raise DataFormatError(f"{path}:{len(lines)}: the last line has no line end, so the file looks "
                              f"cut short (a truncated download or copy?)")
    sequences: dict[int, list[int]] = {}
    for lineno, line in enumerate(lines[:-1], start=1):
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
    distinct = len({item for items in sequences.values() for item in items})
    largest = max(max(items) for items in sequences.values())
    if largest > distinct:  # the model holds a row per id up to the largest: gaps would waste them
        raise DataFormatError(f"{path}: item ids must be numbered 1..N without gaps (the S3-Rec "
                              f"convention), but the largest is {largest} and only {distinct} distinct "
                              f"items appear")
    return sequences


def read_item_attributes(path: Path) -> dict[int, list[int]]:
    """`<D>_item2attributes.json` -> {item id: [attribute ids]}."""
    path = _open_nonempty(path)
    text = _text(path)
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


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _number(value: str, what: str, path: Path, lineno: int) -> float:
    if not _is_number(value):
        raise DataFormatError(f"{path}:{lineno}: non-numeric {what} {value!r}")
    return float(value)


def _rows(path: Path, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL):
    """(line number, fields) of a delimited text file, csv's own errors named by file and line."""
    reader = csv.reader(io.StringIO(_text(path), newline=""), delimiter=delimiter, quoting=quoting)
    try:
        for fields in reader:
            yield reader.line_num, fields
    except csv.Error as err:
        raise DataFormatError(f"{path}:{reader.line_num + 1}: {err}") from None


def _interactions(path: Path, rows, n_fields: int, user: int, item: int, timestamp: int,
                  expected: str, rating: int | None = None) -> pd.DataFrame:
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
        if rating is not None:  # implicit feedback drops it, but a non-number means a broken file
            _number(fields[rating], "rating", path, lineno)
        users.append(u)
        items.append(v)
        times.append(_number(fields[timestamp], "timestamp", path, lineno))
    if not users:
        raise DataFormatError(f"{path}: no interactions (expected lines of {expected})")
    return pd.DataFrame({"user": pd.Series(users, dtype=object), "item": pd.Series(items, dtype=object),
                         "timestamp": pd.Series(times, dtype="float64")})


def read_ratings_csv(path: Path) -> pd.DataFrame:
    """Amazon 2014 ratings-only CSV (`user,item,rating,timestamp`) -> user, item, timestamp. Amazon's
    files have no header; a first line whose rating and timestamp are both not numbers is taken as one."""
    path = _open_nonempty(path)

    def data_rows():
        for lineno, fields in _rows(path):
            header = lineno == 1 and len(fields) == 4 and not any(map(_is_number, fields[2:]))
            if not header:
                yield lineno, fields

    return _interactions(path, data_rows(), 4, 0, 1, 3, "user,item,rating,timestamp", rating=2)


def read_inter(path: Path) -> pd.DataFrame:
    """RecBole atomic `.inter` file -> user, item, timestamp (a rating, if any, is dropped: implicit
    feedback). Columns are found by name in the header, in any order."""
    path = _open_nonempty(path)
    rows = _rows(path, delimiter="\t", quoting=csv.QUOTE_NONE)
    _, header = next(rows, (1, []))
    columns = {c.split(":")[0].strip(): i for i, c in enumerate(header)}
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in columns]
    if missing:
        raise DataFormatError(f"{path}:1: header lacks {', '.join(missing)} (found {header})")
    return _interactions(path, rows, len(header), columns["user_id"], columns["item_id"],
                         columns["timestamp"], "\t".join(header))
