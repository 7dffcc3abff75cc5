"""Retrieval controls that no paper reports: K memories drawn at random instead of the K nearest.

If RaSeRec gains as much from random memories as from similar ones, the gain comes from the module's
extra parameters, not from retrieval. The draw is seeded and made once per instance (as the nearest
memories are computed once per instance), uniform over the memories the same-user filter keeps.
"""
from __future__ import annotations

import numpy as np
import torch

from rasekit.memory.bank import MemoryBank, Retrieved, _normalised, first_k, not_self_or_future

DRAWS_PER_K = 4  # candidates drawn per memory wanted: the filter drops few, duplicates fewer


def random_memories(bank: MemoryBank, queries: torch.Tensor | np.ndarray, users: np.ndarray,
                    lengths: np.ndarray, k: int, seed: int | list[int] = 0, same_user_filter: bool = True,
                    chunk: int = 2048) -> Retrieved:
    """K memories per query drawn uniformly without replacement from `bank` (seeded), after the
    same-user filter; their cosine similarity to the query is reported as retrieval reports it."""
    rng = np.random.default_rng(seed)
    x, keys = _normalised(queries), _normalised(bank.keys)
    users, lengths = np.asarray(users), np.asarray(lengths)
    parts = [_draw(bank, keys, x[lo:lo + chunk], users[lo:lo + chunk], lengths[lo:lo + chunk], k, rng,
                   same_user_filter) for lo in range(0, len(x), chunk)]
    if not parts:
        return Retrieved(np.empty((0, k), np.int64), np.empty((0, k), np.float32), np.empty((0, k), bool))
    return Retrieved(*(np.concatenate(a) for a in zip(*((p.ids, p.sims, p.mask) for p in parts))))


def _draw(bank: MemoryBank, keys: np.ndarray, x: np.ndarray, users, lengths, k: int,
          rng: np.random.Generator, same_user_filter: bool) -> Retrieved:
    draws = min(len(bank), DRAWS_PER_K * k)
    cand = rng.integers(0, len(bank), size=(len(x), draws))
    keep = not_self_or_future(cand, bank.users, bank.lengths, users, lengths, same_user_filter)
    keep &= ~_repeated(cand)
    sims = np.einsum("qd,qcd->qc", x, keys[cand])
    return Retrieved(*first_k(cand, sims, keep, k))


def _repeated(cand: np.ndarray) -> np.ndarray:
    """True where an id already occurred earlier in its row (draws are with replacement)."""
    order = np.argsort(cand, axis=1, kind="stable")
    ranked = np.take_along_axis(cand, order, 1)
    seen = np.zeros_like(cand, dtype=bool)
    seen[:, 1:] = ranked[:, 1:] == ranked[:, :-1]  # stable sort: the first occurrence stays unmarked
    out = np.empty_like(seen)
    np.put_along_axis(out, order, seen, 1)
    return out
