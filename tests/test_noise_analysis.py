"""The robustness tables of notebook 05 on hand-made runs: drops per seed against the same model's clean
score, models compared on the seeds they share, and RaSeRec's robustness gap with its paired test."""
import numpy as np
import pytest

from rasekit.analysis import noise
from rasekit.evaluate import per_user

RANKS = {  # (model, seed, ratio) -> test ranks of four users; rank 1 scores NDCG@10 = 1, rank 100 scores 0
    ("RaSeRec", 1, 0.0): [1, 1, 100, 100], ("RaSeRec", 1, 0.2): [1, 100, 100, 100],
    ("SASRec", 1, 0.0): [1, 1, 1, 100], ("SASRec", 1, 0.2): [1, 1, 100, 100],
    ("RaSeRec", 2, 0.0): [1, 1, 1, 100], ("RaSeRec", 2, 0.2): [1, 1, 1, 100],
    ("SASRec", 2, 0.0): [1, 1, 1, 1], ("SASRec", 2, 0.2): [1, 1, 100, 100],
}


def result(model, seed, ratio):
    ranks = np.array(RANKS[model, seed, ratio])
    record = {"key": f"{model}-{seed}-{ratio}", "ranks": ranks,
              "metrics": {m: per_user(ranks, m).mean() for m in ("HR@10", "NDCG@10")}}
    return {"model": model, "dataset": "Beauty", "seed": seed, "ratio": ratio, "record": record}


RESULTS = [result(*key) for key in RANKS]


def test_drops_are_per_seed_against_the_same_models_clean_score():
    table = noise.noise_table(RESULTS).set_index(["model", "ratio"])
    # RaSeRec loses 50% on seed 1 (0.5 -> 0.25) and nothing on seed 2; SASRec 1/3 and 1/2
    assert table.loc[("RaSeRec", 0.2), "NDCG@10 drop %"] == pytest.approx(25.0)
    assert table.loc[("SASRec", 0.2), "NDCG@10 drop %"] == pytest.approx(100 * (1 / 3 + 1 / 2) / 2)
    assert table.loc[("SASRec", 0.0), "NDCG@10 drop %"] == 0.0 and table.loc[("SASRec", 0.2), "seeds"] == 2


def test_the_gap_is_the_difference_of_drops_seed_by_seed_with_a_paired_test():
    gap = noise.robustness_gap(RESULTS, lambda record: record["ranks"]).iloc[0]
    assert (gap["versus"], gap["ratio"], gap["seeds"]) == ("SASRec", 0.2, 2)
    per_seed = np.array([50 - 100 / 3, 0 - 50])  # RaSeRec's drop minus SASRec's, seeds 1 and 2
    assert gap["gap (pp)"] == pytest.approx(per_seed.mean())
    assert gap["gap std"] == pytest.approx(per_seed.std(ddof=1))
    assert gap["seeds RaSeRec lost less"] == 1 and 0 < gap["p (paired)"] <= 1


def test_one_seed_has_no_spread_and_models_keep_only_the_seeds_they_share():
    one = noise.robustness_gap([r for r in RESULTS if r["seed"] == 1], lambda record: record["ranks"]).iloc[0]
    assert one["gap (pp)"] == pytest.approx(50 - 100 / 3) and np.isnan(one["gap std"])
    parents = {"SASRec": [{"dataset": "Beauty", "seed": s, "model": "SASRec"} for s in (1, 2, 3)],
               "RaSeRec": [{"dataset": "Beauty", "seed": s, "model": "RaSeRec"} for s in (1, 2)]}
    kept, left_out = noise.common_seeds(parents)
    assert [r["seed"] for r in kept["SASRec"]] == [1, 2] and [r["seed"] for r in kept["RaSeRec"]] == [1, 2]
    assert [(r["model"], r["seed"]) for r in left_out] == [("SASRec", 3)]
    parents["RaSeRec"].append({"dataset": "Sports", "seed": 3, "model": "RaSeRec"})  # no SASRec on Sports
    kept, left_out = noise.common_seeds(parents)
    assert [(r["dataset"], r["seed"]) for r in kept["RaSeRec"]] == [("Beauty", 1), ("Beauty", 2), ("Sports", 3)]
