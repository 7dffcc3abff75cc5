"""The comparison tables of notebooks 06 and 07 on hand-made records: means and spreads, the marks of the
best and second best, the strongest baseline and the improvement over it, the published numbers."""
import numpy as np
import pytest

from rasekit.analysis import comparison


def rec(dataset, model, seed, ndcg, hr=0.1):
    metrics = {m: hr for m in comparison.TABLE_METRICS if m.startswith("HR")}
    metrics.update({m: ndcg for m in comparison.TABLE_METRICS if m.startswith("NDCG")})
    return {"key": f"{model}{seed}", "dataset": dataset, "model": model, "seed": seed, "metrics": metrics,
            "ranks": np.array([1, 2, 30] if model == "RaSeRec" else [2, 3, 30])}


RUNS = {("Beauty", "Popularity"): [rec("Beauty", "Popularity", 0, 0.01)],
        ("Beauty", "SASRec (BPR)"): [rec("Beauty", "SASRec (BPR)", 1, 0.03)],
        ("Beauty", "BERT4Rec"): [],  # not run yet
        ("Beauty", "DuoRec"): [rec("Beauty", "DuoRec", 1, 0.040), rec("Beauty", "DuoRec", 2, 0.044)],
        ("Beauty", "RaSeRec"): [rec("Beauty", "RaSeRec", 1, 0.046), rec("Beauty", "RaSeRec", 2, 0.046)]}


def test_the_table_has_mean_std_and_seed_counts_and_marks_the_two_best():
    table = comparison.model_table(RUNS)
    duorec = table[table["model"] == "DuoRec"].iloc[0]
    assert duorec["seeds"] == 2 and duorec["NDCG@10"] == pytest.approx(0.042)
    assert duorec["NDCG@10 std"] == pytest.approx(np.std([0.040, 0.044], ddof=1))
    assert table[table["model"] == "BERT4Rec"].iloc[0]["seeds"] == 0
    assert comparison.ranked(table, "NDCG@10").tolist() == [0, 0, 0, 2, 1]
    marked = comparison.marked(table)
    assert marked.loc[4, "NDCG@10"] == "**0.0460 ± 0.0000**" and marked.loc[3, "NDCG@10"] == "_0.0420 ± 0.0028_"
    assert marked.loc[2, "NDCG@10"] == "–"
    assert marked.loc[1, "NDCG@10"] == "0.0300"  # one seed: no spread to show
    latex = comparison.marked(table, style="latex")
    assert latex.loc[4, "NDCG@10"] == "\\textbf{0.0460 $\\pm$ 0.0000}"


def test_the_improvement_is_over_the_strongest_other_model_with_a_paired_test():
    gain = comparison.improvement(RUNS, lambda r: r["ranks"])
    row = gain[gain["metric"] == "NDCG@10"].iloc[0]
    assert row["strongest baseline"] == "DuoRec" and row["baseline seeds"] == 2
    assert row["improvement %"] == pytest.approx(100 * (0.046 / 0.042 - 1))
    assert 0 < row["p (paired)"] <= 1


def test_published_numbers_stand_beside_the_same_model_and_typo_cells_are_left_out():
    published = comparison.versus_published(comparison.model_table(RUNS))
    bpr = published[(published["model"] == "SASRec (BPR)") & (published["metric"] == "NDCG@10")].iloc[0]
    assert bpr["published"] == 0.0281 and bpr["difference %"] == pytest.approx(100 * (0.03 / 0.0281 - 1))
    duorec_hr10 = published[(published["model"] == "DuoRec") & (published["metric"] == "HR@10")]
    assert duorec_hr10.empty  # the follow-up's cell repeats HR@5: a typo, not a number
    assert set(published[published["model"] == "RaSeRec"]["source"]) == {"paper", "follow-up table"}


def test_the_backbone_table_pairs_each_backbone_with_retrieval_on_it():
    pairs = [(rec("Beauty", "GRU4Rec", 1, 0.02), rec("Beauty", "RaSeRec", 1, 0.025))]
    table = comparison.backbone_table(pairs, lambda r: r["ranks"])
    row = table[table["metric"] == "NDCG@10"].iloc[0]
    assert row["backbone"] == "GRU4Rec" and row["improvement %"] == pytest.approx(25.0)
    assert row["seeds improved"] == 1
