"""Full-ranking evaluation: the rank of every target among all items, and HR/NDCG/MRR@K from ranks.

As in the official code, every real item is a candidate (padding id 0 is excluded) and the user's history
is not masked (`mask_history=True` masks it, never the target itself). Ties are counted against the
target: rank = number of items scoring at least as high as the target, itself included, so a constant
scorer gets the worst rank rather than a hit. Ranks are kept per instance so that group metrics and
paired tests can be computed later.

Scores are float32, and the same instance scored in batches of another shape (the chunk size) differs in
the last bits: where another item ties the target within rounding, the rank may move by one place. That
is the only way ranks depend on the chunk (tests/test_hardening.py checks it on a real encoder).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from rasekit.settings import METRIC_DEPTHS as KS


class NonFiniteScoresError(ValueError):
    """A model gave NaN or infinite scores: every comparison with NaN is false, so its ranks (all 1)
    would look perfect. Refused instead."""


ScoreFn = Callable[[np.ndarray], torch.Tensor]  # instance indices -> scores [b, n_items + 1]


@torch.no_grad()
def target_ranks(score_fn: ScoreFn, targets: np.ndarray, chunk: int = 1024,
                 history: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each target. `history` ([N, L] item ids, 0 = padding) enables history masking."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    ranks = np.empty(len(targets), dtype=np.int64)
    for lo in range(0, len(targets), chunk):
        index = np.arange(lo, min(lo + chunk, len(targets)))
        scores = score_fn(index).float().clone()  # masked in place below
        finite = torch.isfinite(scores[:, 1:]).all(1)  # column 0 is the padding id, never ranked
        if not bool(finite.all()):
            bad = index[~finite.cpu().numpy()]
            raise NonFiniteScoresError(f"{len(bad)} of {len(index)} instances in rows {index[0]}.."
                                       f"{index[-1]} have NaN or infinite scores (first: instance {bad[0]})")
        ranks[index] = rank_targets(scores, targets[index], None if history is None else history[index])
    return ranks


def rank_targets(scores: torch.Tensor, targets: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
    """The rule of `target_ranks` on one block of scores [b, n_items + 1] (changed in place): 1 + the
    number of other items scoring at least the target's; the padding id and, with `history`, the items
    seen are not counted; ties count against the target."""
    tgt = torch.as_tensor(targets, device=scores.device).unsqueeze(1)
    target_score = scores.gather(1, tgt)
    if history is not None:
        scores = scores.scatter(1, torch.as_tensor(history, device=scores.device), float("-inf"))
    scores[:, 0] = float("-inf")
    scores.scatter_(1, tgt, float("-inf"))  # count the other items only; the target is never masked
    return 1 + (scores >= target_score).sum(1).cpu().numpy()


def metrics(ranks: np.ndarray, ks=KS) -> dict[str, float]:
    """HR@K, NDCG@K and MRR@K averaged over instances (one target each, so HR@K = Recall@K)."""
    ranks = np.asarray(ranks)
    return {f"{name}@{k}": float(per_user(ranks, f"{name}@{k}").mean())
            for k in ks for name in ("HR", "NDCG", "MRR")}


def per_user(ranks: np.ndarray, metric: str) -> np.ndarray:
    """The per-instance value of one metric (e.g. 'NDCG@10'), for paired tests and group analyses."""
    name, k = metric.split("@")
    k = int(k)
    hit = ranks <= k
    if name == "HR":
        return hit.astype(float)
    if name == "NDCG":
        return np.where(hit, 1.0 / np.log2(ranks + 1), 0.0)
    if name == "MRR":
        return np.where(hit, 1.0 / ranks, 0.0)
    raise ValueError(f"unknown metric {metric!r} (expected HR@K, NDCG@K or MRR@K)")
