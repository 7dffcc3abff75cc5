"""The benchmark audit: the heuristic's tuning never reads the test part, its fast grid scores equal the
heuristic's own, the locality counts equal a direct count, truncation keeps the last items, and the
hybrid with weight 0 is RaSeRec itself."""
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from rasekit.analysis import audit
from rasekit.data.protocol import Instances
from rasekit.evaluate import metrics, target_ranks
from rasekit.models.baselines import ItemTransition, TransitionSettings
from rasekit.runs import experiments, loading, profiles
from rasekit.runs import variants

from .test_experiments import tiny  # noqa: F401
from .test_raserec import trained  # noqa: F401


@pytest.fixture(scope="module")
def small(data_dir):
    data = experiments.load_data("Beauty", profiles.Profile("s", ("Beauty",), (1,), users=400))
    return data, experiments.item_attributes("Beauty")


class Untouchable:
    """A part the code under test must never read."""

    def __getattr__(self, name):
        raise AssertionError(f"the test part was read ({name})")

    def __len__(self):
        raise AssertionError("the test part was read (len)")


def test_the_grids_scores_are_the_heuristics_own(small):
    data, attributes = small
    settings = [audit.grid()[i] for i in (0, 17, 60, 125)]
    models = {n: ItemTransition(data, attributes, replace(settings[0], normalise=n, attribute_weight=1.0))
              for n in (True, False)}
    seqs, lengths = data.valid.seqs[:64], data.valid.lengths[:64]
    parts = audit._components(models, seqs, lengths)
    for c in settings:
        direct = ItemTransition(data, attributes, c).scores(seqs, lengths)
        np.testing.assert_allclose(audit.combine(parts, c).numpy(), direct.numpy(), rtol=1e-5, atol=1e-6)


def test_tuning_never_reads_the_test_part_and_picks_the_best_validation_setting(small):
    data, attributes = small
    few = [audit.grid()[i] for i in (0, 5, 40, 90)]
    tuned = audit.tune(replace(data, test=Untouchable()), attributes, few)
    assert len(tuned) == 4 and tuned["valid NDCG@10"].is_monotonic_decreasing
    best = ItemTransition(data, attributes, TransitionSettings(**{k: v for k, v in audit.chosen(tuned).items()
                                                                   if k != "valid_at_test"}))
    ranks = target_ranks(lambda i: best.scores(data.valid.seqs[i], data.valid.lengths[i]),
                                     data.valid.targets)
    assert metrics(ranks)["NDCG@10"] == pytest.approx(tuned["valid NDCG@10"].iloc[0], abs=1e-9)
    assert audit.chosen(tuned)["valid_at_test"] is True


def test_locality_counts_equal_a_direct_count_of_the_training_transitions(small):
    data, _ = small
    tr = data.train
    pairs = Counter(zip(tr.seqs[np.arange(len(tr)), tr.lengths - 1].tolist(), tr.targets.tolist()))
    found, rank = audit.follows(data)
    te = data.test
    for i in range(len(te)):
        last, target = int(te.seqs[i, te.lengths[i] - 1]), int(te.targets[i])
        assert found[i] == ((last, target) in pairs)
        if found[i]:
            assert rank[i] == 1 + sum(1 for (a, _), c in pairs.items() if a == last and c > pairs[(last, target)])
    row = audit.locality(data)
    assert row["share of targets following the last item %"] == pytest.approx(100 * found.mean())
    assert row["transition pairs"] == len(pairs)


def test_truncation_keeps_the_last_items_left_aligned():
    inst = Instances(np.array([[1, 2, 3, 4, 0], [5, 6, 0, 0, 0]]), np.array([4, 2]), np.array([9, 9]),
                     np.array([1, 2]), np.array([5, 3]))
    cut = inst.last(3)
    assert cut.seqs.tolist() == [[2, 3, 4, 0, 0], [5, 6, 0, 0, 0]] and cut.lengths.tolist() == [3, 2]
    assert cut.targets.tolist() == [9, 9] and inst.seqs[0].tolist() == [1, 2, 3, 4, 0]  # the input unchanged


def test_a_truncation_longer_than_every_input_changes_nothing(trained):
    whole = variants.evaluate(trained, variants.TestVariant(truncate=50), log=lambda *_: None)
    assert np.array_equal(experiments.ranks(whole), experiments.ranks(trained))
    short = variants.evaluate(trained, variants.TestVariant(truncate=1), log=lambda *_: None)
    assert not np.array_equal(experiments.ranks(short), experiments.ranks(trained))


def test_the_hybrid_with_weight_0_is_raserec_itself(trained):
    task = loading.stage2_task(trained, device="cpu")
    data = task.data
    heuristic = ItemTransition(data, None, TransitionSettings(attribute_weight=0.0))
    table, plain, mixed = audit.hybrid([task], (heuristic, heuristic), weights=(0.0, 1.0))
    assert np.array_equal(plain[0], experiments.ranks(trained))
    assert table["chosen weight"].iloc[0] in (0.0, 1.0) and len(mixed) == 1
