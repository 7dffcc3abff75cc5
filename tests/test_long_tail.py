"""Long-tail groups on a hand-made dataset whose counts can be checked by hand."""
import numpy as np
import pytest

from rasekit.analysis import long_tail
from rasekit.data import split
from rasekit.evaluate import per_user
from rasekit.settings import SettingsError

# 6 users. Training parts (all but the last two items): item 1 five times, item 2 three times, item 3
# twice, items 4 and 9 once, items 5 and 6 never. Test targets (last items): 1, 1, 2, 3, 5, 6.
SEQUENCES = {1: [1, 2, 3, 9, 1], 2: [1, 2, 4, 9, 1], 3: [1, 2, 9, 2], 4: [1, 3, 9, 3], 5: [1, 9, 5],
             6: [9, 9, 6]}


@pytest.fixture
def data():
    return split("hand", SEQUENCES)


def test_training_popularity_leaves_out_validation_and_test(data):
    counts = long_tail.training_popularity(data)
    assert counts[1:7].tolist() == [5, 3, 2, 1, 0, 0] and counts[9] == 1  # only user 6's prefix holds 9


def test_groups_of_equal_test_instances_cut_between_items(data):
    groups = long_tail.item_groups(data, n_groups=3, rule="interactions")
    # by popularity: 1 (5), 2 (3), 3 (2), 4 and 9 (1), 5 to 8 (0); test instances: 1 twice, 2, 3, 5, 6
    assert groups[data.test.targets].tolist() == [0, 0, 1, 1, 2, 2]
    assert groups[0] == -1  # padding belongs to no group


def test_groups_of_equal_item_counts(data):
    groups = long_tail.item_groups(data, n_groups=3, rule="items")
    assert np.bincount(groups[1:]).tolist() == [3, 3, 3]  # 9 items, 3 per group, most popular first
    assert groups[1] == 0 and groups[6] == 2


def test_length_groups_keep_equal_lengths_together(data):
    assert data.test.lengths.tolist() == [4, 4, 3, 3, 2, 2]
    assert long_tail.length_groups(data, n_groups=3).tolist() == [2, 2, 1, 1, 0, 0]


def test_group_table_means_per_group_and_the_gain(data):
    groups = np.array([0, 0, 1, 1, 2, 2])
    ranks = {"a": np.array([1, 3, 1, 100, 2, 100]), "b": np.array([1, 1, 1, 1, 100, 100])}
    runs = {"DuoRec": [{"id": "a"}], "RaSeRec": [{"id": "b"}]}
    table = long_tail.group_table(runs, lambda r: ranks[r["id"]], groups, "HR@1")
    hr = table.set_index(["group", "model"])["HR@1"]
    assert hr[(0, "DuoRec")] == 0.5 and hr[(0, "RaSeRec")] == 1.0 and hr[(2, "DuoRec")] == 0.0
    gain = table.set_index(["group", "model"])["gain %"]
    assert gain[(0, "RaSeRec")] == pytest.approx(100.0) and gain[(1, "RaSeRec")] == pytest.approx(100.0)
    assert per_user(ranks["a"], "HR@1").mean() == pytest.approx(2 / 6)


def test_impossible_group_settings_are_refused(data):
    with pytest.raises(SettingsError, match="n_groups=99 is not allowed"):
        long_tail.item_groups(data, n_groups=99)
    with pytest.raises(SettingsError, match="rule='tail' is not allowed"):
        long_tail.item_groups(data, rule="tail")
