"""How numbers read in the Markdown and LaTeX tables, while the CSV keeps full precision."""
import numpy as np
import pandas as pd

from rasekit import report
from rasekit.report import formats


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": ["Beauty", "Sports"], "seeds": [3, 1], "users": [22363, 35598],
        "HR@10": [0.087412345, 0.0456], "HR@10 std": [0.00123456, 0.0],
        "improvement %": [3.2562, -20.70271], "p (paired)": [0.000099990001, 0.04567],
        "NDCG@5 p vs control": [0.5, 1.0], "recall@K": [0.68484, 1.0], "sparsity": [99.92661, 99.95471],
        "kept epoch": [36.0, np.nan], "gap (pp)": [0.8655, -1.2], "gap std": [0.3119, np.nan]})


def test_each_kind_of_column_reads_as_a_person_expects():
    cells = formats.shown(_table())
    assert list(cells.iloc[0]) == ["Beauty", "3", "22,363", "0.0874", "0.0012", "3.3", "0.0001", "0.5",
                                   "68.5%", "99.93", "36", "0.9", "0.3"]
    assert list(cells.iloc[1]) == ["Sports", "1", "35,598", "0.0456", "–", "-20.7", "0.046", "1",
                                   "100.0%", "99.95", "–", "-1.2", "–"]


def test_a_spread_over_one_seed_is_a_dash_even_when_stored_as_zero():
    assert formats.shown(_table())["HR@10 std"].iloc[1] == formats.NOT_APPLICABLE


def test_p_values_have_two_significant_digits_and_differences_one_decimal():
    assert formats.pvalue(0.000099990001) == "0.0001" and formats.pvalue(0.04567) == "0.046"
    assert formats.pct(3.2562) == "+3.3%" and formats.pct(-20.7027) == "-20.7%"


def test_seed_counts_read_as_words():
    assert formats.seeds(1) == "1 seed" and formats.seeds(3.0) == "3 seeds"
    assert formats.seeds(pd.Series([3, 1, 3])) == "1 to 3 seeds"


def test_the_csv_keeps_full_precision_and_markdown_and_latex_the_shown_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path))
    report.save_table(_table(), "t", "smoke", {"commit": "x"})
    folder = tmp_path / "results" / "tables" / "smoke"
    back = pd.read_csv(folder / "t.csv")
    assert back["HR@10"].iloc[0] == 0.087412345 and back["p (paired)"].iloc[0] == 0.000099990001
    md, tex = (folder / "t.md").read_text(), (folder / "t.tex").read_text()
    assert "| Beauty | 3 | 22,363 | 0.0874 | 0.0012 | 3.3 | 0.0001 |" in md
    assert "68.5\\%" in tex and "0.087412345" not in tex


def test_a_measurement_in_a_unit_has_four_significant_digits_and_separators_from_a_thousand():
    table = pd.DataFrame({"build s": [0.008446, 8.4987], "users/s (batch 256)": [14984.69, 9962.1],
                          "index MB": [39.3667, 2560.0], "epochs run": [33.6667, 47.0],
                          "valid at run's best": [0.040431, 0.1]})  # "'s" is no unit: a metric
    cells = formats.shown(table)
    assert list(cells.iloc[0]) == ["0.008446", "14,985", "39.37", "33.67", "0.0404"]
    assert list(cells.iloc[1]) == ["8.499", "9,962", "2,560", "47", "0.1000"]
