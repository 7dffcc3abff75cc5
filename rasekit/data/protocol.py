"""The evaluation protocol of the official code (RecBole `TO_LS`): prefix instances capped at `max_len`
items, leave-one-out split, and DuoRec's same-target positives.

Each user with n interactions gives n-1 instances (s_1..s_t -> v_{t+1}). The last goes to test, the one
before to validation, the rest to training. Sequences are left-aligned and zero-padded at the end; an
instance whose prefix is longer than `max_len` keeps its last `max_len` items.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from rasekit.settings import SettingsError
from rasekit.data.readers import DataFormatError

MIN_INTERACTIONS = 3  # one validation and one test instance need at least three items


@dataclass
class Instances:
    """A set of (prefix -> next item) instances as aligned arrays."""
    seqs: np.ndarray     # int64 [N, max_len], left-aligned, 0 = padding
    lengths: np.ndarray  # int64 [N], number of real items (after the cap), >= 1
    targets: np.ndarray  # int64 [N], the next item
    users: np.ndarray    # int64 [N]
    steps: np.ndarray    # int64 [N], t: position of the target in the user's full sequence (1-based prefix length before the cap)

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: np.ndarray) -> "Instances":
        return Instances(self.seqs[index], self.lengths[index], self.targets[index],
                         self.users[index], self.steps[index])

    def last(self, n: int) -> "Instances":
        """The same instances with each input cut to its last `n` items (still left-aligned); targets,
        users and steps unchanged."""
        lengths = np.minimum(self.lengths, n)
        take = (self.lengths - lengths)[:, None] + np.arange(self.seqs.shape[1])  # columns to keep, shifted
        seqs = np.where(np.arange(self.seqs.shape[1]) < lengths[:, None],
                        np.take_along_axis(self.seqs, np.minimum(take, self.seqs.shape[1] - 1), 1), 0)
        return Instances(seqs, lengths, self.targets, self.users, self.steps)


@dataclass
class SameTargetIndex:
    """For every training instance, the other training instances with the same target (CSR layout)."""
    order: np.ndarray   # training instance ids sorted by target
    start: np.ndarray   # [n_items + 2]: order[start[v]:start[v+1]] are the instances with target v
    rank: np.ndarray    # position of each instance inside its target's group

    @classmethod
    def build(cls, targets: np.ndarray, n_items: int) -> "SameTargetIndex":
        order = np.argsort(targets, kind="stable")
        counts = np.bincount(targets, minlength=n_items + 1)
        start = np.zeros(n_items + 2, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order)) - start[targets[order]]
        return cls(order, start, rank)

    def positives_of(self, i: int, target: int) -> np.ndarray:
        group = self.order[self.start[target]:self.start[target + 1]]
        return group[group != i]

    def sample(self, index: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn same-target partner per instance; the instance itself when it is alone
        (DuoRec then falls back to a second dropout view)."""
        first = self.start[targets]
        others = self.start[targets + 1] - first - 1
        draw = np.floor(rng.random(len(index)) * np.maximum(others, 1)).astype(np.int64)
        draw += draw >= self.rank[index]  # skip the instance itself
        partner = self.order[first + np.minimum(draw, others)]
        return np.where(others > 0, partner, index)


@dataclass
class SplitData:
    """A dataset after the protocol: sequences plus train/valid/test instances."""
    name: str
    sequences: list[np.ndarray]  # per kept user, by increasing user id (users 1..N when none is dropped)
    n_items: int
    max_len: int
    train: Instances
    valid: Instances
    test: Instances
    dropped_users: int = 0
    extras: dict = field(default_factory=dict)

    @cached_property
    def same_target(self) -> SameTargetIndex:
        return SameTargetIndex.build(self.train.targets, self.n_items)

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def item_counts(self) -> np.ndarray:
        """Interactions per item id (index 0 = padding, always 0)."""
        return np.bincount(np.concatenate(self.sequences), minlength=self.n_items + 1)

    def statistics(self) -> dict:
        users, items, inter = self.n_users, self.n_items, self.n_interactions
        return {"dataset": self.name, "users": users, "items": items, "interactions": inter,
                "avg_length": round(inter / users, 4),
                "sparsity": round(100 * (1 - inter / (users * items)), 4),
                "train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def _instances(flat: np.ndarray, user_start: np.ndarray, user_ids: np.ndarray, ends: np.ndarray,
               owner: np.ndarray, max_len: int) -> Instances:
    """Instances whose target is flat[ends]; prefix = up to max_len items before it within the user."""
    start = np.maximum(user_start[owner], ends - max_len)
    lengths = ends - start
    cols = np.arange(max_len)
    idx = start[:, None] + cols[None, :]
    seqs = np.where(cols[None, :] < lengths[:, None], flat[np.minimum(idx, len(flat) - 1)], 0)
    return Instances(seqs.astype(np.int64), lengths.astype(np.int64), flat[ends].astype(np.int64),
                     user_ids[owner].astype(np.int64), (ends - user_start[owner]).astype(np.int64))


def split(name: str, sequences: dict[int, list[int]], max_len: int = 50,
          n_items: int | None = None) -> SplitData:
    """Apply the leave-one-out protocol. Users with fewer than three interactions cannot be split; they
    are dropped with a warning that gives their number."""
    if max_len < 1:
        raise SettingsError(f"max_len={max_len!r} is not allowed: expected an integer >= 1")
    users = sorted(sequences)
    short = [u for u in users if len(sequences[u]) < MIN_INTERACTIONS]
    if short:
        warnings.warn(f"{name}: dropped {len(short)} users with fewer than {MIN_INTERACTIONS} "
                      f"interactions (leave-one-out needs a validation and a test item)", stacklevel=2)
        users = [u for u in users if len(sequences[u]) >= MIN_INTERACTIONS]
    if not users:
        raise DataFormatError(f"{name}: no user has {MIN_INTERACTIONS} or more interactions")
    seq_arrays = [np.asarray(sequences[u], dtype=np.int64) for u in users]
    lens = np.array([len(s) for s in seq_arrays])
    flat = np.concatenate(seq_arrays)
    user_start = np.concatenate([[0], np.cumsum(lens)[:-1]])
    user_ids = np.asarray(users, dtype=np.int64)
    owner_all = np.repeat(np.arange(len(users)), lens)
    pos = np.arange(len(flat)) - user_start[owner_all]  # position inside the user's sequence
    n_of = lens[owner_all]
    is_test = pos == n_of - 1
    is_valid = pos == n_of - 2
    is_train = (pos >= 1) & (pos <= n_of - 3)
    parts = {}
    for part, mask in (("train", is_train), ("valid", is_valid), ("test", is_test)):
        ends = np.nonzero(mask)[0]
        parts[part] = _instances(flat, user_start, user_ids, ends, owner_all[ends], max_len)
    n_items = int(flat.max()) if n_items is None else n_items
    return SplitData(name, seq_arrays, n_items, max_len, dropped_users=len(short), **parts)
