"""The case study's users are chosen by a stated, seeded rule, and each case reads the model's own answers."""
import numpy as np
import pytest

from rasekit import RaSeRec
from rasekit.analysis import case_study

from .test_experiments import tiny  # noqa: F401
from .test_raserec import trained  # noqa: F401


def test_the_rule_picks_the_largest_moves_up_and_down_and_a_seeded_draw_of_the_rest():
    before = np.array([10, 100, 5, 1, 40, 7, 8, 9, 300, 2])
    after = np.array([10, 1, 80, 1, 40, 7, 8, 9, 3, 2])
    chosen = case_study.choose(before, after, n=2, seed=4)
    assert chosen["group"].tolist() == ["moved up most"] * 2 + ["moved down most"] * 2 + ["at random"] * 2
    assert chosen["instance"].tolist()[:4] == [1, 8, 2, 0]  # log2 moves: 6.6, 6.6 (tie: lower instance), -4, 0
    drawn = chosen["instance"].tolist()[4:]
    assert not set(drawn) & {1, 8, 2, 0} and drawn == case_study.choose(before, after, 2, 4)["instance"].tolist()[4:]
    assert (chosen["rank before"] == before[chosen["instance"]]).all()
    with pytest.raises(ValueError, match="cannot give"):
        case_study.choose(before[:5], after[:5], n=2)


def test_a_case_marks_the_memories_whose_target_is_the_true_next_item(trained):  # noqa: F811
    model = RaSeRec.load(trained["key"], device="cpu")
    row, memories = case_study.case(model, 3, {i: [i % 7] for i in range(1, model.data.n_items + 1)})
    target = int(model.data.test.targets[3])
    assert row["target"] == f"{target} [{target % 7}]" and row["instance"] == 3
    assert memories["is the target"].tolist() == (memories["target"] == target).tolist()
    assert row["memories with the target"] == int(memories["is the target"].sum())
    assert memories["rank"].tolist() == list(range(1, len(memories) + 1))
    table = case_study.memory_table({3: memories})
    assert table.columns[0] == "instance" and (table["instance"] == 3).all()
