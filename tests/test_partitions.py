"""Memory-bank partitions: the removals cover each dimension, the bank without a partition holds what it
should, and the ablation table's drops are computed against "All" of the same seed."""
import numpy as np
import pytest

from rasekit.analysis import partitions
from rasekit.data import split
from rasekit.memory import partitions as bank_partitions
from rasekit.memory.bank import MemoryBank
from rasekit.settings import SettingsError

# 8 users with sequences of lengths 4 to 11: 1 + 2 + ... + 8 = 36 training prefixes.
SEQUENCES = {u: [(u + i) % 9 + 1 for i in range(u + 3)] for u in range(1, 9)}


@pytest.fixture
def data():
    return split("hand", SEQUENCES)


@pytest.fixture
def bank(data):
    n = len(data.train)
    keys = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    import torch
    return MemoryBank.from_arrays(torch.as_tensor(keys), torch.as_tensor(keys), data.train, "train", "exact")


def test_removals_cover_every_dimension(data):
    found = partitions.removals(data, n_parts=3)
    assert found[0][:2] == ("All", "none") and found[0][2].changes() == {}
    assert [d for d, *_ in found[1:]].count("popularity") == 3 == [d for d, *_ in found[1:]].count("activity")
    lengths = [v.partition for d, _, v in found if d == "length"]
    covered = sorted(n for spec in lengths for n in range(spec["lower"], spec["upper"] + 1))
    assert covered == list(range(data.train.lengths.min(), data.train.lengths.max() + 1))  # no gap, no overlap


def test_without_a_partition_the_bank_keeps_exactly_the_rest(data, bank):
    for dimension, removed, variant in partitions.removals(data, n_parts=3)[1:]:
        spec = variant.partition
        kept = bank_partitions.bank_filter(spec, data)(bank)
        try:
            part = len(bank_partitions.bank_filter({**spec, "invert": False}, data)(bank))
        except SettingsError:  # popularity ties here (every item 6 or 7 times) leave the mid part empty
            part = 0
        assert len(kept) + part == len(bank), (dimension, removed)
    active = bank_partitions.active_users(data, 2 / 3, 1.0)
    assert set(active) <= {6, 7, 8}  # the users with the longest sequences


def test_the_drop_is_against_all_of_the_same_seed():
    def rec(hr, size):
        return {"metrics": {"HR@5": hr, "NDCG@5": hr / 2}, "bank_size": size}
    results = [{"dimension": "All", "removed": "none", "seed": 1, "removed_record": rec(0.10, 100),
                "control_record": None},
               {"dimension": "All", "removed": "none", "seed": 2, "removed_record": rec(0.20, 100),
                "control_record": None},
               {"dimension": "length", "removed": "short", "seed": 1, "removed_record": rec(0.05, 60),
                "control_record": rec(0.09, 60)},
               {"dimension": "length", "removed": "short", "seed": 2, "removed_record": rec(0.10, 60),
                "control_record": rec(0.18, 60)}]
    table = partitions.ablation_table(results).set_index("removed")
    assert table.loc["short", "HR@5 drop %"] == pytest.approx(50.0)
    assert table.loc["short", "HR@5 control drop %"] == pytest.approx(10.0)
    assert table.loc["none", "HR@5 drop %"] == pytest.approx(0.0) and table.loc["short", "memories"] == 60


def test_paired_tests_put_each_removal_against_all_and_against_its_control():
    ranks = {"all": np.array([1] * 50 + [100] * 50), "worse": np.array([1] * 20 + [100] * 80),
             "same": np.array([1] * 50 + [100] * 50)}

    def rec(name):
        return {"metrics": {"HR@5": float((ranks[name] <= 5).mean()), "NDCG@5": 0.0}, "bank_size": 10,
                "name": name}
    results = [{"dimension": "All", "removed": "none", "seed": 1, "removed_record": rec("all"),
                "control_record": None},
               {"dimension": "length", "removed": "long", "seed": 1, "removed_record": rec("worse"),
                "control_record": rec("same")}]
    table = partitions.ablation_table(results, ("HR@5",), user_ranks=lambda r: ranks[r["name"]])
    table = table.set_index("removed")
    assert table.loc["long", "HR@5 p vs All"] < 0.001 and table.loc["long", "HR@5 p vs control"] < 0.001
    assert np.isnan(table.loc["none", "HR@5 p vs All"])
    same = [dict(results[1], removed_record=rec("same"), control_record=rec("same"))]
    table = partitions.ablation_table(results[:1] + same, ("HR@5",), user_ranks=lambda r: ranks[r["name"]])
    assert table.set_index("removed").loc["long", "HR@5 p vs All"] == 1.0  # nothing changed: no evidence


def test_an_empty_partition_and_a_bad_part_count_are_refused(data, bank):
    with pytest.raises(SettingsError, match="the bank would be empty"):
        bank.subset(np.zeros(len(bank), dtype=bool))
    with pytest.raises(SettingsError, match="n_parts=1 is not allowed"):
        partitions.removals(data, n_parts=1)
