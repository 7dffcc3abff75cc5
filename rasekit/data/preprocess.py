"""From raw interactions to S3-Rec-style sequences: iterative k-core filtering, time ordering and
re-indexing of users and items to 1..N in order of first appearance (the S3-Rec convention)."""
from __future__ import annotations

import warnings

import pandas as pd

from rasekit.settings import SettingsError
from rasekit.data.readers import DataFormatError


def k_core(frame: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Drop users and items with fewer than k interactions until none is left (RecBole's
    `_filter_by_inter_num`, min_user_inter_num = min_item_inter_num = k)."""
    if k < 1:
        raise SettingsError(f"k={k!r} is not allowed: the k-core needs an integer >= 1")
    while True:
        user_counts = frame["user"].map(frame["user"].value_counts())
        item_counts = frame["item"].map(frame["item"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return frame
        frame = frame[keep]


DUPLICATES = ("keep", "drop")


def to_sequences(frame: pd.DataFrame, k: int = 5, duplicates: str = "keep",
                 path=None) -> dict[int, list[int]]:
    """Interactions (user, item, timestamp) -> {user id: [item ids by time]} with ids re-indexed from 1.

    A (user, item) pair that occurs more than once is kept by default, every occurrence an interaction
    that counts toward the k-core (a repeat purchase is a real event); `duplicates="drop"` keeps only
    its earliest occurrence. Either way the count is reported, never silently applied. `path`: the file
    the interactions come from, for messages."""
    if duplicates not in DUPLICATES:
        raise SettingsError(f"duplicates={duplicates!r} is not allowed: expected one of {DUPLICATES}")
    repeated = frame.duplicated(["user", "item"])
    if repeated.any():
        if duplicates == "drop":
            frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"])
            frame = frame.sort_index(kind="stable")
        verb = "dropped" if duplicates == "drop" else "kept, counting toward the k-core"
        warnings.warn(f"{int(repeated.sum())} repeated (user, item) interactions {verb} "
                      f"(duplicates={duplicates!r})")
    frame = k_core(frame, k)
    if frame.empty:
        raise DataFormatError(f"{path or 'the data'}: no interactions survive {k}-core filtering (every user "
                              f"and item needs at least {k} interactions)")
    # Users in order of first appearance, each user's items by time; the sorts are stable, so equal
    # timestamps keep the file order (as S3-Rec's data_process.py and RecBole do).
    frame = frame.assign(_user=pd.factorize(frame["user"])[0])
    frame = frame.sort_values("timestamp", kind="stable").sort_values("_user", kind="stable")
    users = frame["_user"].to_numpy() + 1
    items = pd.factorize(frame["item"])[0] + 1  # numbered in order of first appearance, user by user
    sequences: dict[int, list[int]] = {}
    for user, item in zip(users.tolist(), items.tolist()):
        sequences.setdefault(user, []).append(item)
    return sequences
