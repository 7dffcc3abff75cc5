"""Training-free baselines on a hand-made dataset whose counts can be checked by hand, and as ledger runs."""
import numpy as np
import pytest
import torch

from rasekit.models import baselines
from rasekit.runs import experiments, ledger
from rasekit.data import split
from rasekit.settings import SettingsError

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)

# Training instances (prefix -> target), from each sequence without its last two items:
# user 1: 1 2 3 -> (1)->2, (1 2)->3;  user 2: 1 2 4 -> (1)->2, (1 2)->4;  user 3: 2 3 -> (2)->3
SEQUENCES = {1: [1, 2, 3, 5, 6], 2: [1, 2, 4, 5, 6], 3: [2, 3, 5, 6]}


@pytest.fixture
def data():
    return split("hand", SEQUENCES)


def test_popularity_counts_training_targets(data):
    counts = baselines.Popularity(data).scores(data.test.seqs[:1], data.test.lengths[:1])[0]
    assert counts.tolist() == [0, 0, 2, 2, 1, 0, 0]  # targets 2, 3, 4, 2, 3


def test_transitions_are_row_normalised_training_counts(data):
    t = baselines.transition_matrix(data).to_dense()
    assert t[1, 2] == 1.0                                  # 1 -> 2 twice, nothing else after 1
    assert t[2, 3] == pytest.approx(2 / 3) and t[2, 4] == pytest.approx(1 / 3)  # 2 -> 3 twice, 2 -> 4 once
    assert t[3].sum() == 0 and t[5].sum() == 0             # 3 -> 5 and 5 -> 6 are validation and test steps


def test_one_and_two_hops_from_the_last_items(data):
    one = baselines.ItemTransition(data, config=baselines.TransitionSettings(
        hops=1, hop_weights=(1.0,), recent=1, attribute_weight=0.0))
    seqs, lengths = np.array([[1, 0, 0]]), np.array([1])
    s = one.scores(seqs, lengths)[0] - one.tie_break
    assert s.tolist() == pytest.approx([0, 0, 1.0, 0, 0, 0, 0])
    two = baselines.ItemTransition(data, config=baselines.TransitionSettings(
        hops=2, hop_weights=(1.0, 0.5), recent=2, recent_decay=0.5, attribute_weight=0.0))
    seqs, lengths = np.array([[2, 1, 0]]), np.array([2])  # last item 1 (weight 1), before it 2 (weight 0.5)
    s = two.scores(seqs, lengths)[0] - two.tie_break
    # hop 1: from 1 -> 2 (1.0); from 2 -> 3 (0.5 * 2/3), 4 (0.5 * 1/3)
    # hop 2 (x 0.5): from 1 via 2 -> 3 (2/3), 4 (1/3); from 2 via 3 or 4 -> nothing
    assert s[2] == pytest.approx(1.0)
    assert s[3] == pytest.approx(0.5 * 2 / 3 + 0.5 * 2 / 3) and s[4] == pytest.approx(0.5 / 3 + 0.5 / 3)


def test_attribute_similarity_is_a_cosine_with_the_last_item(data):
    attrs = {1: [7], 2: [7, 8], 3: [8], 4: []}
    model = baselines.ItemTransition(data, attrs, baselines.TransitionSettings(
        hops=1, hop_weights=(0.0,), recent=1, attribute_weight=1.0))
    s = model.scores(np.array([[2, 0]]), np.array([1]))[0] - model.tie_break
    assert s[1] == pytest.approx(1 / np.sqrt(2)) and s[2] == pytest.approx(1.0) and s[4] == 0.0


def test_popularity_breaks_ties_among_items_the_graph_does_not_reach(data):
    model = baselines.ItemTransition(data, config=baselines.TransitionSettings(attribute_weight=0.0))
    s = model.scores(np.array([[6, 0]]), np.array([1]))[0]  # nothing follows 6 in training
    assert torch.argmax(s).item() in (2, 3) and s.max() < 1e-5


def test_bad_transition_settings_are_refused():
    with pytest.raises(SettingsError, match="hop_weights=.*expected 3 weights"):
        baselines.TransitionSettings(hops=3)
    with pytest.raises(SettingsError, match="recent=0 is not allowed"):
        baselines.TransitionSettings(recent=0)


def test_baselines_are_ledger_runs(tiny):  # noqa: F811
    pop = experiments.baseline("Beauty", "popularity", tiny, log=lambda *_: None)
    heur = experiments.baseline("Beauty", "transition", tiny, transition={"hops": 1, "hop_weights": [1.0]},
                                log=lambda *_: None)
    assert pop["model"] == "Popularity" and heur["model"].startswith("ItemTransition [")
    assert experiments.ranks(heur).shape == (300,)
    assert experiments.baseline("Beauty", "popularity", tiny, reuse_only=True) == pop
    assert {r["stage"] for r in ledger.records()} == {"baseline"}
    with pytest.raises(SettingsError, match="baseline='gru' is not allowed"):
        experiments.baseline("Beauty", "gru", tiny)
