import numpy as np
import pytest

from rasekit.analysis import pretraining
from rasekit.analysis.main_results import main_table
from rasekit.analysis.stats import paired_permutation_test, seed_summary


def test_permutation_test_separates_real_and_null_differences():
    rng = np.random.default_rng(0)
    a = rng.random(2000)
    assert paired_permutation_test(a, a + 0.05, n_resamples=2000) < 0.01
    assert paired_permutation_test(a, a + rng.normal(0, 0.1, 2000), n_resamples=2000) > 0.01
    assert paired_permutation_test(a, a, n_resamples=99) == 1.0
    with pytest.raises(ValueError):
        paired_permutation_test(np.array([]), np.array([]))


def rec(model, seed, hr, dataset="Beauty"):
    return {"key": f"{model}{seed}", "dataset": dataset, "model": model, "seed": seed,
            "metrics": {"HR@5": hr, "HR@10": hr, "NDCG@5": hr / 2, "NDCG@10": hr / 2}}


def test_seed_summary_and_main_table():
    base = [rec("DuoRec", s, hr) for s, hr in ((1, 0.08), (2, 0.10))]
    ras = [rec("RaSeRec(DuoRec)", s, hr) for s, hr in ((1, 0.09), (2, 0.11))]
    summary = seed_summary(base + ras)
    duo = summary[summary.model == "DuoRec"].iloc[0]
    assert duo["seeds"] == 2 and duo["HR@10"] == pytest.approx(0.09)
    assert duo["HR@10 std"] == pytest.approx(np.std([0.08, 0.10], ddof=1))
    ranks = {"DuoRec1": np.array([1, 20]), "DuoRec2": np.array([2, 30]),
             "RaSeRec(DuoRec)1": np.array([1, 3]), "RaSeRec(DuoRec)2": np.array([1, 4])}
    table = main_table(list(zip(base, ras)), lambda r: ranks[r["key"]], metrics=("HR@10",))
    row = table.iloc[0]
    assert row["improvement %"] == pytest.approx(100 * (0.10 / 0.09 - 1))
    assert row["seeds improved"] == 2 and row["paper RaSeRec"] == 0.0860
    assert row["reported DuoRec"] == 0.0834  # the official Beauty log
    assert row["DuoRec vs reported %"] == pytest.approx(100 * (0.09 / 0.0834 - 1))


def test_stopping_replay_tells_which_epoch_each_metric_would_keep():
    history = [{"MRR@10": m, "HR@10": h} for m, h in [(0.01, 0.05), (0.02, 0.06), (0.019, 0.07), (0.018, 0.08)]]
    record = {"dataset": "Sports", "model": "DuoRec", "seed": 1, "best_epoch": 1, "history": history,
              "config": {"train": {"epochs": 4, "patience": 1, "valid_metric": "MRR@10"}}}
    table = pretraining.stopping_replay([record], metrics=("MRR@10", "HR@10")).set_index("stopping metric")
    assert table.loc["MRR@10", "kept epoch"] == 1 and table.loc["MRR@10", "rise after %"] == 0
    assert table.loc["HR@10", "kept epoch"] == 3  # still rising: the 4 epochs end that run too
    assert table.loc["HR@10", "rise after %"] == pytest.approx(100 * (0.08 / 0.06 - 1))


def test_the_gap_table_measures_each_run_against_its_published_number():
    official = [{**rec("DuoRec", s, hr, "Sports_and_Outdoors"), "best_epoch": e, "epochs_run": e + 11}
                for s, hr, e in ((1, 0.0450, 20), (2, 0.0460, 24))]
    longer = {**rec("DuoRec [valid_metric=HR@10]", 1, 0.0479, "Sports_and_Outdoors"), "best_epoch": 40,
              "epochs_run": 51}
    on_it = {**rec("RaSeRec(DuoRec [valid_metric=HR@10])", 1, 0.0497, "Sports_and_Outdoors"), "best_epoch": 9,
             "epochs_run": 20}
    table = pretraining.gap_table(official + [longer, on_it]).set_index("model")
    assert table.loc["DuoRec", "seeds"] == 2 and table.loc["DuoRec", "best epoch"] == 22
    assert table.loc["DuoRec", "HR@10 vs published %"] == pytest.approx(100 * (0.0455 / 0.0479 - 1))
    assert table.loc["DuoRec", "NDCG@10 vs published %"] == pytest.approx(100 * (0.02275 / 0.0248 - 1))
    assert table.loc["DuoRec [valid_metric=HR@10]", "HR@10 vs published %"] == pytest.approx(0.0)
    assert table.loc["DuoRec [valid_metric=HR@10]", "epochs run"] == 51
    ras = table.loc["RaSeRec(DuoRec [valid_metric=HR@10])"]  # against the paper's RaSeRec, 0.0497
    assert ras["measured against"] == "paper's RaSeRec" and ras["HR@10 vs published %"] == pytest.approx(0.0)
