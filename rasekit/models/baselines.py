"""Training-free baselines, scored over all items like every model of the kit (so the same full-ranking
evaluation applies):

* `Popularity`: the most frequent training targets, the same list for every user;
* `ItemTransition`: from the last `recent` items of the sequence, the items that followed them in the
  training sequences, within `hops` steps of the item-transition graph (weights `hop_weights`), plus
  `attribute_weight` times the cosine similarity of item attributes (`<D>_item2attributes.json`) with the
  last item, and the training popularity as a small tie-break. A benchmark audit reports that such a
  heuristic matches or beats many trained models on Amazon Sports, so the comparison table
  has to show where the trained models stand against it.

Transitions are counted on the training instances (the last item of each training prefix and its target),
so neither the validation nor the test item informs the validation scores; `valid_at_test` adds the
validation interactions for the test, as RaSeRec's test-time bank holds the validation memories."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rasekit import settings
from rasekit.data import SplitData

TIE_BREAK = 1e-6  # popularity's share of a score: orders items the graph does not reach


def training_popularity(data: SplitData) -> torch.Tensor:
    """Training targets per item id (padding 0 has none)."""
    return torch.as_tensor(np.bincount(data.train.targets, minlength=data.n_items + 1), dtype=torch.float32)


class Popularity:
    name = "Popularity"

    def __init__(self, data: SplitData):
        self.counts = training_popularity(data)

    def scores(self, seqs: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        return self.counts.expand(len(seqs), -1)


@dataclass(frozen=True)
class TransitionSettings:
    hops: int = 2                        # steps along the transition graph
    hop_weights: tuple = (1.0, 0.5)      # weight of each step's scores
    recent: int = 2                      # last items of the sequence the candidates start from
    recent_decay: float = 0.5            # weight of the i-th most recent item: decay ** i
    attribute_weight: float = 0.1        # weight of the attribute similarity with the last item
    normalise: bool = True               # transition counts divided by their row's total (False: raw)
    valid_at_test: bool = False          # at test time, count the validation part's transitions too

    def __post_init__(self):
        settings.integer("hops", self.hops, 1, 4)
        if not isinstance(self.hop_weights, (list, tuple)) or len(self.hop_weights) != self.hops:
            raise settings.SettingsError(f"hop_weights={self.hop_weights!r} is not allowed: expected "
                                         f"{self.hops} weights, one per hop")
        for w in self.hop_weights:
            settings.real("hop_weights", w, 0)
        settings.integer("recent", self.recent, 1, 50)
        settings.real("recent_decay", self.recent_decay, 0, 1)
        settings.real("attribute_weight", self.attribute_weight, 0)
        for name in ("normalise", "valid_at_test"):
            if not isinstance(getattr(self, name), bool):
                raise settings.SettingsError(f"{name}={getattr(self, name)!r} is not allowed: expected true or false")


def transition_matrix(data: SplitData, normalise: bool = True, parts=("train",)) -> torch.Tensor:
    """Counts of item -> next item in the instances of `parts` (each: the last item of its prefix and its
    target), divided by their row's total when `normalise`; sparse [n + 1, n + 1]."""
    instances = [getattr(data, part) for part in parts]
    last = np.concatenate([inst.seqs[np.arange(len(inst)), inst.lengths - 1] for inst in instances])
    targets = np.concatenate([inst.targets for inst in instances])
    n = data.n_items + 1
    pairs = torch.as_tensor(np.stack([last, targets]))
    counts = torch.sparse_coo_tensor(pairs, torch.ones(len(last)), (n, n), check_invariants=True).coalesce()
    if not normalise:
        return counts
    rows = torch.zeros(n).index_add_(0, counts.indices()[0], counts.values())
    values = counts.values() / rows[counts.indices()[0]]
    return torch.sparse_coo_tensor(counts.indices(), values, (n, n), check_invariants=True).coalesce()


def attribute_matrix(attributes: dict[int, list[int]] | None, n_items: int) -> torch.Tensor | None:
    """Items x attributes, rows L2-normalised (so a product of two rows is a cosine), sparse."""
    if not attributes:
        return None
    rows, cols = [], []
    for item, attrs in attributes.items():
        if 0 < item <= n_items:
            for a in set(attrs):
                rows.append(item)
                cols.append(a)
    if not rows:
        return None
    index = torch.as_tensor([rows, cols])
    norms = torch.zeros(n_items + 1).index_add_(0, index[0], torch.ones(len(rows))).sqrt()
    values = 1.0 / norms[index[0]]
    return torch.sparse_coo_tensor(index, values, (n_items + 1, max(cols) + 1), check_invariants=True).coalesce()


class ItemTransition:
    name = "ItemTransition"

    def __init__(self, data: SplitData, attributes: dict[int, list[int]] | None = None,
                 config: TransitionSettings = TransitionSettings(), parts=("train",)):
        """`parts`: the instances whose transitions are counted (("train", "valid") to score the test part
        with the validation interactions too)."""
        self.config, self.n = config, data.n_items + 1
        self.transitions = transition_matrix(data, config.normalise, parts).t().coalesce()  # columns = from
        self.attributes = attribute_matrix(attributes, data.n_items) if config.attribute_weight else None
        popularity = training_popularity(data)
        self.tie_break = TIE_BREAK * popularity / max(float(popularity.max()), 1.0)

    def scores(self, seqs: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        """Scores [B, n_items + 1] of the instances whose items are `seqs` (left-aligned) with `lengths`."""
        c = self.config
        start = torch.zeros(len(seqs), self.n)
        for i in range(c.recent):  # the i-th most recent item, where the sequence has one
            has = lengths > i
            rows = np.nonzero(has)[0]
            items = seqs[rows, lengths[rows] - 1 - i]
            start[torch.as_tensor(rows), torch.as_tensor(items)] += c.recent_decay ** i
        scores, frontier = torch.zeros_like(start), start.t()
        for weight in c.hop_weights:  # frontier after h hops: T^h applied to the start weights
            frontier = torch.sparse.mm(self.transitions, frontier)
            scores += weight * frontier.t()
        if self.attributes is not None:
            last = torch.as_tensor(seqs[np.arange(len(seqs)), lengths - 1])
            profile = torch.index_select(self.attributes, 0, last).to_dense()      # [B, n_attr]
            scores += c.attribute_weight * torch.sparse.mm(self.attributes, profile.t()).t()
        return scores + self.tie_break
