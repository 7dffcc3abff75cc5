import math

import numpy as np
import pytest
import torch

from rasekit.evaluate import metrics, per_user, target_ranks


def fixed_scores(table):
    table = torch.tensor(table, dtype=torch.float32)
    return lambda index: table[torch.as_tensor(index)]


def test_ranks_on_a_hand_made_ranking_with_ties_and_padding():
    # columns: padding, items 1..4; padding's huge score must never count
    scores = fixed_scores([[9.0, 0.1, 0.5, 0.3, 0.2],    # target 2 is best -> rank 1
                           [9.0, 0.4, 0.4, 0.1, 0.4],    # target 1 ties with items 2 and 4 -> rank 3
                           [9.0, 0.9, 0.8, 0.7, 0.6]])   # target 4 is last -> rank 4
    ranks = target_ranks(scores, np.array([2, 1, 4]))
    assert ranks.tolist() == [1, 3, 4]


def test_metrics_from_ranks_match_hand_computation():
    ranks = np.array([1, 3, 6, 12])
    m = metrics(ranks, ks=(5, 10))
    assert m["HR@5"] == pytest.approx(2 / 4)
    assert m["HR@10"] == pytest.approx(3 / 4)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(7)) / 4)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)
    assert per_user(ranks, "NDCG@5")[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown metric"):
        per_user(ranks, "AUC@5")


def test_history_masking_never_masks_the_target():
    scores = fixed_scores([[0.0, 0.9, 0.8, 0.1]])
    history = np.array([[1, 2, 0]])  # item 1 was seen; item 2 is seen and is also the target
    assert target_ranks(scores, np.array([2])).tolist() == [2]
    assert target_ranks(scores, np.array([2]), history=history).tolist() == [1]


def test_ranks_do_not_depend_on_the_chunk_size():
    gen = torch.Generator().manual_seed(0)
    user = torch.randn(300, 16, generator=gen)
    items = torch.randn(51, 16, generator=gen)
    targets = np.random.default_rng(0).integers(1, 51, 300)
    score = lambda index: user[torch.as_tensor(index)] @ items.T  # noqa: E731
    reference = target_ranks(score, targets, chunk=300)
    for chunk in (1, 7, 64, 1000):
        assert np.array_equal(target_ranks(score, targets, chunk=chunk), reference)
    with pytest.raises(ValueError, match="chunk"):
        target_ranks(score, targets, chunk=0)
